"""The sparse depthwise kernel integral of MATH.md §8, on any subset of any grid of dimension 1, 2 or 3."""

import math
from typing import final

import torch
import torch.nn.functional as F
from beartype import beartype
from jaxtyping import jaxtyped
from torch import nn

from funcdiff._typing import Float, Tensor
from funcdiff.operators.backends import BackendName, ConvPlan, make_plan, sparse_sum
from funcdiff.operators.chunking import fill_chunks
from funcdiff.operators.kernels import resample_kernel, resampled_shape
from funcdiff.points import Points

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


@final
class SparseDepthwiseConv(nn.Module):
    """Depthwise kernel integral over the present lattice neighbours, ``(k_ref^d / |N(u)|) sum kappa_N(u - w) v(w)``.

    The kernel is learnt at ``reference_shape`` and resampled (`resample_kernel`) on grids of other shapes, so its
    support keeps its size in domain units; the count normalisation makes the sum a Monte-Carlo estimate of the
    integral at any density, resolution and at the borders (MATH.md §8).

    Args:
        channels: number of channels c (one kernel each).
        kernel_size: taps per axis at the reference resolution (odd).
        ndim: spatial dimension d (1, 2 or 3).
        reference_shape: the grid shape at which the kernel has ``kernel_size`` taps per axis.
        backend: ``"auto"``, ``"dense"`` or ``"gather"`` (see `funcdiff.operators.backends`).
    """

    def __init__(
        self, channels: int, kernel_size: int, *, ndim: int, reference_shape: tuple[int, ...], backend: BackendName = "auto"
    ) -> None:
        super().__init__()
        if ndim not in (1, 2, 3):
            raise ValueError(f"ndim must be 1, 2 or 3, got {ndim}")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd int, got {kernel_size}")
        if len(reference_shape) != ndim:
            raise ValueError(f"reference_shape must have ndim={ndim} entries, got {reference_shape}")
        self.channels = channels
        self.kernel_size = kernel_size
        self.ndim = ndim
        self.reference_shape = tuple(reference_shape)
        self.backend = backend
        # Depthwise fan-in is k^d: at full density the normalised output then has variance ~1/3 of the input's.
        bound = 1.0 / math.sqrt(kernel_size**ndim)
        self.weight = nn.Parameter(torch.empty(channels, *(kernel_size,) * ndim).uniform_(-bound, bound))

    def extra_repr(self) -> str:
        return (
            f"{self.channels}, kernel_size={self.kernel_size}, ndim={self.ndim}, "
            f"reference_shape={self.reference_shape}, backend={self.backend!r}"
        )

    def kernel_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """Taps per axis on a grid of ``shape``."""
        return resampled_shape(self.kernel_size, shape, self.reference_shape)

    def kernel(self, shape: tuple[int, ...]) -> Float[Tensor, "c *taps"]:
        """The kernel resampled for a grid of ``shape`` (tap mean kept per channel)."""
        return resample_kernel(self.weight, self.kernel_shape(shape))

    def plan(self, points: Points) -> ConvPlan:
        """Neighbourhood data for ``points``; share it between convolutions with the same kernel size and backend."""
        if points.ndim != self.ndim:
            raise ValueError(f"points live on a {points.ndim}-d grid but this convolution has ndim={self.ndim}")
        kernel_shape = self.kernel_shape(points.shape)
        return make_plan(points.index, points.shape, kernel_shape, backend=self.backend, dtype=points.values.dtype)

    @jaxtyped(typechecker=beartype)
    def forward(self, points: Points, plan: ConvPlan | None = None) -> Float[Tensor, "b n c"]:
        """The normalised kernel integral at every point.

        Args:
            points: values ``(b, n, c)`` at distinct lattice positions of a grid of any shape.
            plan: a plan from `plan` for the same points (built here when omitted).
        """
        if points.values.shape[-1] != self.channels:
            raise ValueError(f"points carry {points.values.shape[-1]} channels, expected {self.channels}")
        plan = self.plan(points) if plan is None else plan
        if plan.kernel_shape != self.kernel_shape(points.shape):
            raise ValueError(f"plan is for kernel shape {plan.kernel_shape}, not {self.kernel_shape(points.shape)}")
        b, n, c = points.values.shape
        total = sparse_sum(points.values.reshape(b * n, c), self.kernel(points.shape).reshape(c, -1), plan)
        return (total * (self.kernel_size**self.ndim / plan.count)).view(b, n, c)

    @jaxtyped(typechecker=beartype)
    def forward_dense(self, x: Float[Tensor, "b c *spatial"], *, chunk_rows: int | None = None) -> Float[Tensor, "b c *spatial"]:
        """The same integral with every grid point present, by a dense convolution (in slabs of ``chunk_rows``).

        Args:
            x: a dense field on a grid of any shape; channels-last strides are kept and are fastest.
            chunk_rows: evaluate at most this many rows of the first spatial axis at a time (bounded memory).
        """
        shape = tuple(x.shape[2:])
        weight = self.kernel(shape)
        kernel_shape = tuple(weight.shape[1:])
        weight = weight.unsqueeze(1)
        pad = [k // 2 for k in kernel_shape]
        conv = _CONV[self.ndim]
        rows = shape[0] if chunk_rows is None else max(1, chunk_rows)
        scale = self.kernel_size**self.ndim / dense_count(shape, kernel_shape, dtype=x.dtype, device=x.device)

        def slab(start: int, stop: int) -> Tensor:
            lo, hi = max(0, start - pad[0]), min(shape[0], stop + pad[0])
            padded = F.pad(x[:, :, lo:hi], [0, 0] * (self.ndim - 1) + [pad[0] - (start - lo), pad[0] - (hi - stop)])
            return conv(padded, weight, padding=(0, *pad[1:]), groups=self.channels) * scale[start:stop]

        return fill_chunks(slab, shape[0], rows, dim=2)


def dense_count(
    shape: tuple[int, ...], kernel_shape: tuple[int, ...], *, dtype: torch.dtype, device: torch.device
) -> Float[Tensor, "*spatial"]:
    """The number of grid points in each point's window when all are present: a product of per-axis counts."""
    count = torch.ones((), dtype=dtype, device=device)
    for size, k in zip(shape, kernel_shape):
        pos = torch.arange(size, dtype=dtype, device=device)
        axis = pos.clamp(max=k // 2) + (size - 1 - pos).clamp(max=k // 2) + 1
        count = count.unsqueeze(-1) * axis
    return count
