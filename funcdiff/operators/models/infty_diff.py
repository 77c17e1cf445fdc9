"""The ∞-Diff denoiser: sparse blocks, a grid U-Net, sparse blocks (Bond-Taylor & Willcocks 2024; docs/reference-differences.md §2-3)."""

from typing import Any, final

import torch
from beartype import beartype
from jaxtyping import jaxtyped
from torch import nn

from funcdiff._typing import Float, Tensor
from funcdiff.operators.kernels.backends import BackendName
from funcdiff.operators.base import NeuralOperator
from funcdiff.operators.layers.blocks import Layout
from funcdiff.operators.models.builders import layout_for, sparse_stack, unet_for
from funcdiff.operators.layers.chunking import pointwise
from funcdiff.operators.models.config import OperatorConfig
from funcdiff.operators.layers.interpolate import dct_reader, grid_to_points, knn_to_grid
from funcdiff.operators.layers.modulation import TimeEmbedding, position_features
from funcdiff.points import Points, grid_index
from funcdiff.registry import register


@register("infty_diff")
@final
class InftyDiffOperator(nn.Module, NeuralOperator):
    """Point-wise denoiser on any subset of any grid: ``linear_in``, sparse blocks, points to a fixed grid (K nearest,
    inverse squared distance), grid U-Net, back to the points (the grid's cosine interpolant, `dct_reader`;
    multilinear with ``config.resampling="linear"``), sparse blocks with skips, ``linear_out``.

    Time ``t`` is continuous in ``[0, 1]`` (embedded after scaling by 1000); ``cond`` is the latent ``z`` of a diffusion
    autoencoder when ``config.z_dim > 0`` and must be None otherwise.

    Args:
        config: the architecture; ``InftyDiffOperator(config)`` rebuilds the same parameters.
        backend: the sparse convolution backend (`funcdiff.operators.kernels.backends`): a choice of this machine, not of
            the architecture, so it is not saved with the config.
    """

    def __init__(self, config: OperatorConfig, *, backend: BackendName = "auto") -> None:
        super().__init__()
        self.config = config
        width, unet = config.width, config.unet_channels
        self.time = TimeEmbedding(config.time_dim, config.time_dim)
        self.linear_in = nn.Linear(config.channels + 2 * config.position_features * config.ndim, width)
        self.down = sparse_stack(config, time_dim=config.time_dim, z_dim=config.z_dim, skip=False, backend=backend)
        self.to_grid = nn.Linear(width, unet)
        self.unet = unet_for(config, time_dim=config.time_dim, z_dim=config.z_dim, decoder=True)
        self.from_grid = nn.Linear(unet, width)
        self.up = sparse_stack(config, time_dim=config.time_dim, z_dim=config.z_dim, skip=True, backend=backend)
        self.linear_out = nn.Linear(width, config.channels)

    def _check(self, values: Tensor, channels: int, ndim: int, cond: Tensor | None) -> None:
        batch, parameters = values.shape[0], self.linear_in.weight
        mixed = values.dtype in (torch.float16, torch.bfloat16) and torch.is_autocast_enabled(values.device.type)
        if values.dtype != parameters.dtype and not mixed:
            raise TypeError(f"input is {values.dtype} but the operator's parameters are {parameters.dtype}; convert one (.to)")
        if channels != self.config.channels:
            raise ValueError(f"input has {channels} channels, the operator expects {self.config.channels}")
        if ndim != self.config.ndim:
            raise ValueError(f"input lives on a {ndim}-d grid, the operator is {self.config.ndim}-d")
        if (cond is None) != (self.config.z_dim == 0):
            got = None if cond is None else tuple(cond.shape)
            raise ValueError(f"cond must be a (b, {self.config.z_dim}) latent iff config.z_dim > 0, got {got}")
        if cond is not None and cond.shape != (batch, self.config.z_dim):
            raise ValueError(f"cond must have shape ({batch}, {self.config.z_dim}), got {tuple(cond.shape)}")

    def _body(self, points: Points, t: Tensor, cond: Tensor | None, layout: Layout) -> Tensor:
        emb = self.time(t)
        count = self.config.position_features

        def read_input(values: Tensor, index: Tensor) -> Tensor:
            features = [values, position_features(index, points.shape, count, values.dtype)] if count else [values]
            return self.linear_in(torch.cat(features, dim=-1))

        h = pointwise(read_input, points.values, points.index, chunk=layout.chunk)
        skips = []
        for block in self.down:
            h = block(h, None, emb, cond, layout)
            skips.append(h)
        features = points.with_values(pointwise(self.to_grid, h, chunk=layout.chunk))
        grid = knn_to_grid(features, self.config.unet_shape, k=self.config.knn)
        grid = self.unet(grid, emb, cond)
        if self.config.resampling == "bandlimited":  # docs/math.md §16: the U-Net's band and no images of it
            read = dct_reader(grid, points.index.shape[1], points.shape, bounded=layout.chunk is not None)
        else:
            size = torch.tensor(points.shape, dtype=grid.dtype, device=grid.device)
            def read(index: Tensor) -> Tensor:
                return grid_to_points(grid, (index.to(grid.dtype) + 0.5) / size)

        def read_grid(index: Tensor) -> Tensor:
            return self.from_grid(read(index))

        h = pointwise(read_grid, points.index, chunk=layout.chunk)
        for block in self.up:
            h = block(h, skips.pop(), emb, cond, layout)
        return pointwise(self.linear_out, h, chunk=layout.chunk)

    @jaxtyped(typechecker=beartype)
    def forward(self, points: Points, t: Float[Tensor, " b"], cond: Float[Tensor, "b z"] | None = None) -> Float[Tensor, "b n c"]:
        """The prediction at the given points of a grid of any shape (kernels resampled from the reference shape)."""
        if not isinstance(points, Points):
            raise TypeError(f"the ∞-Diff operator's sparse convolutions need points on a grid (Points), got {type(points).__name__}: "
                            "read scattered points with the Fourier neural operator (--operator fno, docs/math.md §20)")
        self._check(points.values, points.values.shape[-1], points.ndim, cond)
        if t.shape[0] != points.values.shape[0]:
            raise ValueError(f"t must have one time per example ({points.values.shape[0]}), got {tuple(t.shape)}")
        return self._body(points, t, cond, layout_for(points, self.down[0].conv, None))

    @jaxtyped(typechecker=beartype)
    def forward_dense(
        self, x: Float[Tensor, "b c *spatial"], t: Float[Tensor, " b"], cond: Float[Tensor, "b z"] | None = None, *,
        chunk_points: int | None = None,
    ) -> Float[Tensor, "b c *spatial"]:
        """The prediction at every point of a grid of any shape, in chunks of ``chunk_points`` points for bounded memory.

        Equal to `forward` on all points; the sparse convolutions run as dense ones in slabs of whole rows.
        """
        b, c, *spatial = x.shape
        self._check(x, c, len(spatial), cond)
        if chunk_points is not None and chunk_points < 1:
            raise ValueError(f"chunk_points must be >= 1 or None, got {chunk_points}")
        shape = tuple(spatial)
        points = Points(x.flatten(2).transpose(1, 2), grid_index(b, shape, device=x.device), shape)
        out = self._body(points, t, cond, Layout(points.index, shape, None, chunk_points))
        return out.transpose(1, 2).reshape(b, self.config.channels, *shape)

    @property
    def reference_shape(self) -> tuple[int, ...]:
        """The training grid, where white noise is N(0, I) and kernels have their reference size."""
        return self.config.reference_shape

    def to_dict(self) -> dict[str, Any]:
        """The JSON-safe configuration that rebuilds this operator's architecture (`funcdiff.registry.build`)."""
        return {"kind": self.kind, **self.config.to_dict()}

    @classmethod
    def from_dict(cls, settings: dict[str, Any]) -> "InftyDiffOperator":
        """The operator (freshly initialised) that `to_dict`'s settings describe."""
        return cls(OperatorConfig.from_dict(settings))
