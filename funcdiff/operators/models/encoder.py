"""The semantic encoder of the diffusion autoencoder: sparse blocks, the U-Net's down half, pooled to ``z`` (docs/reference-differences.md §3)."""

from typing import Any, final

from beartype import beartype
from jaxtyping import jaxtyped
from torch import nn

from funcdiff._typing import Float, Tensor
from funcdiff.operators.kernels.backends import BackendName
from funcdiff.operators.base import LatentEncoder
from funcdiff.operators.layers.blocks import Layout
from funcdiff.operators.models.builders import layout_for, sparse_stack, unet_for
from funcdiff.operators.layers.chunking import pointwise
from funcdiff.operators.models.config import OperatorConfig
from funcdiff.operators.layers.interpolate import knn_to_grid
from funcdiff.points import Points, grid_index
from funcdiff.registry import register


@register("sparse_encoder")
@final
class SparseEncoder(nn.Module, LatentEncoder):
    """``x0`` at any points of any grid to a latent ``z`` of size ``config.z_dim`` (Preechakul et al. 2022).

    ``linear_in``, unmodulated sparse blocks, K-nearest to the U-Net grid, the U-Net's down path and middle, a
    linear map to ``z_dim`` at the coarsest level, a spatial mean and a final linear layer. Kernels are resampled
    for the points' grid, so it works at any resolution and density.

    Args:
        config: an `OperatorConfig` with ``z_dim > 0``.
        backend: the sparse convolution backend (`funcdiff.operators.kernels.backends`).
    """

    def __init__(self, config: OperatorConfig, *, backend: BackendName = "auto") -> None:
        super().__init__()
        if config.z_dim < 1:
            raise ValueError(f"config.z_dim must be >= 1 for an encoder, got {config.z_dim}")
        self.config = config
        self.linear_in = nn.Linear(config.channels, config.width)
        self.blocks = sparse_stack(config, time_dim=0, z_dim=0, skip=False, backend=backend)
        self.to_grid = nn.Linear(config.width, config.unet_channels)
        self.unet = unet_for(config, time_dim=0, z_dim=0, decoder=False)
        self.to_latent = nn.Linear(self.unet.out_channels, config.z_dim)
        self.out = nn.Linear(config.z_dim, config.z_dim)

    def _body(self, points: Points, layout: Layout) -> Tensor:
        h = pointwise(self.linear_in, points.values, chunk=layout.chunk)
        for block in self.blocks:
            h = block(h, None, None, None, layout)
        features = points.with_values(pointwise(self.to_grid, h, chunk=layout.chunk))
        grid = knn_to_grid(features, self.config.unet_shape, k=self.config.knn)
        deep, _ = self.unet.encode(grid, None, None)
        tokens = deep.flatten(2).transpose(1, 2).contiguous()  # see `funcdiff.operators.layers.chunking.pointwise`
        return self.out(self.to_latent(tokens).mean(dim=1))

    @jaxtyped(typechecker=beartype)
    def forward(self, points: Points) -> Float[Tensor, "b z"]:
        """The latent of the function seen at ``points``."""
        if points.values.shape[-1] != self.config.channels or points.ndim != self.config.ndim:
            raise ValueError(f"points must carry {self.config.channels} channels on a {self.config.ndim}-d grid")
        return self._body(points, layout_for(points, self.blocks[0].conv, None))

    @jaxtyped(typechecker=beartype)
    def forward_dense(self, x: Float[Tensor, "b c *spatial"], *, chunk_points: int | None = None) -> Float[Tensor, "b z"]:
        """The latent of a whole dense field (equal to `forward` on all its points)."""
        b, c, *spatial = x.shape
        if c != self.config.channels or len(spatial) != self.config.ndim:
            raise ValueError(f"x must have shape (b, {self.config.channels}, *spatial) with {self.config.ndim} spatial axes")
        shape = tuple(spatial)
        points = Points(x.flatten(2).transpose(1, 2), grid_index(b, shape, device=x.device), shape)
        return self._body(points, Layout(points.index, shape, None, chunk_points))

    def to_dict(self) -> dict[str, Any]:
        """The JSON-safe configuration that rebuilds this encoder's architecture (`funcdiff.registry.build`)."""
        return {"kind": self.kind, **self.config.to_dict()}

    @classmethod
    def from_dict(cls, settings: dict[str, Any]) -> "SparseEncoder":
        """The encoder (freshly initialised) that `to_dict`'s settings describe."""
        return cls(OperatorConfig.from_dict(settings))
