"""ConvNeXt-like sparse residual blocks (Liu et al. 2022) with modulated LayerNorm, as in the official ∞-Diff.

docs/reference-differences.md §2 describes the official block; docs/math.md §8 the kernel integral inside it.
"""

import math
from dataclasses import dataclass

import torch
from torch import nn

from funcdiff._typing import Float, Int, Tensor
from funcdiff.operators.kernels.backends import BackendName, ConvPlan
from funcdiff.operators.layers.chunking import pointwise
from funcdiff.operators.compiling import CompileMode, run_part
from funcdiff.operators.layers.conv import SparseDepthwiseConv
from funcdiff.operators.layers.kernel_resampling import Resampling
from funcdiff.operators.layers.modulation import Modulation
from funcdiff.points import Points


@dataclass(frozen=True, eq=False)
class Layout:
    """Where the features of one forward pass live: a subset of a grid (with its plan), or every point of it.

    Attributes:
        index: lattice positions of the points (row-major over the grid when ``plan`` is None).
        shape: the grid.
        plan: the sparse convolution plan; None means every point is present and the dense convolution is used.
        chunk: evaluate per-point layers in chunks of this many points (None: all at once).
    """

    index: Int[Tensor, "b n d"]
    shape: tuple[int, ...]
    plan: ConvPlan | None = None
    chunk: int | None = None

    def conv(self, conv: SparseDepthwiseConv, h: Float[Tensor, "b n c"]) -> Float[Tensor, "b n c"]:
        """The kernel integral of ``h`` at the layout's points."""
        if self.plan is not None:
            return conv(Points(h, self.index, self.shape), self.plan)
        b, n, c = h.shape
        rows = None if self.chunk is None else max(1, self.chunk // math.prod(self.shape[1:]))
        field = h.reshape(b, *self.shape, c).movedim(-1, 1)
        return conv.forward_dense(field, chunk_rows=rows).movedim(1, -1).reshape(b, n, c)


class SparseBlock(nn.Module):
    """``x = fuse([x, skip])``; ``x += conv(mod(LN(x)))``; ``x += MLP(mod(LN(x)))`` at every point.

    ``mod`` scales and shifts by the time embedding and scales by the latent (`Modulation`); without either
    (the encoder) the LayerNorm's own affine parameters remain. The MLP expands by ``mlp_ratio``.
    """

    def __init__(
        self, channels: int, *, kernel_size: int, reference_shape: tuple[int, ...], time_dim: int, z_dim: int,
        mlp_ratio: int, skip: bool, backend: BackendName,
        resampling: Resampling = "bandlimited",
    ) -> None:
        super().__init__()
        self.fuse = nn.Linear(2 * channels, channels) if skip else None
        self.norm1, self.mod1 = nn.LayerNorm(channels), Modulation(channels, time_dim, z_dim)
        self.conv = SparseDepthwiseConv(
            channels, kernel_size, ndim=len(reference_shape), reference_shape=reference_shape, backend=backend,
            resampling=resampling,
        )
        self.norm2, self.mod2 = nn.LayerNorm(channels), Modulation(channels, time_dim, z_dim)
        hidden = mlp_ratio * channels
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.GELU(), nn.Linear(hidden, channels))
        self.compile_mode: CompileMode | None = None  # `funcdiff.operators.compile_operator`

    def forward(
        self, x: Float[Tensor, "b n c"], skip: Float[Tensor, "b n c"] | None, emb: Tensor | None, z: Tensor | None, layout: Layout
    ) -> Float[Tensor, "b n c"]:
        """One block at the layout's points."""
        mod1, mod2 = self.mod1(emb, z), self.mod2(emb, z)
        if self.fuse is not None:
            x = pointwise(lambda a, s: self.fuse(torch.cat([a, s], dim=-1)), x, skip, chunk=layout.chunk)
        h = pointwise(lambda a: run_part(self, _normed, a, mod1), x, chunk=layout.chunk)
        y = layout.conv(self.conv, h)
        return pointwise(lambda a, b: run_part(self, _mlp_residual, a, b, mod2), y, x, chunk=layout.chunk)


# The per-point work of a block, as functions of the block that `run_part` may compile (`funcdiff.operators.compiling`).

def _modulate(h: Tensor, mod: tuple[Tensor, Tensor] | None) -> Tensor:
    return h if mod is None else h * mod[0].unsqueeze(1) + mod[1].unsqueeze(1)


def _normed(block: SparseBlock, x: Tensor, mod: tuple[Tensor, Tensor] | None) -> Tensor:
    return _modulate(block.norm1(x), mod)


def _mlp_residual(block: SparseBlock, y: Tensor, x: Tensor, mod: tuple[Tensor, Tensor] | None) -> Tensor:
    x = y + x  # the convolution's residual
    return x + block.mlp(_modulate(block.norm2(x), mod))
