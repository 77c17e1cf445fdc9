"""GridDomain: functions on ``[0, 1]^d`` held on regular grids of any dimension and shape."""

import math
from typing import final

import torch
from beartype import beartype
from jaxtyping import jaxtyped

from funcdiff._typing import DenseField, Float, Tensor
from funcdiff.domains.base import Domain, SubsampleScheme
from funcdiff.points import Points, unflatten_index


def resolve_count(n: int | float, total: int, *, name: str = "points") -> int:
    """Turn a count or a fraction of ``total`` into a count in ``[1, total]``, or raise ``ValueError``."""
    if isinstance(n, bool) or not isinstance(n, (int, float)):
        raise TypeError(f"{name} must be an int count or a float fraction, got {type(n).__name__}")
    if isinstance(n, float):
        if not 0.0 < n <= 1.0:
            raise ValueError(f"{name} as a fraction must lie in (0, 1], got {n}")
        return max(1, round(n * total))
    if not 1 <= n <= total:
        raise ValueError(f"{name}={n} must lie in [1, {total}] (the number of grid points)")
    return n


@final
class GridDomain(Domain):
    """Functions ``[0, 1]^d -> R^channels`` on regular grids (d = 1 audio, 2 images, 3 volumes).

    Args:
        ndim: the spatial dimension d.
        channels: the number of channels c of each value.
        value_range: the range data lie in (``[-1, 1]`` by convention).
    """

    def __init__(self, ndim: int, channels: int, value_range: tuple[float, float] = (-1.0, 1.0)) -> None:
        if ndim < 1:
            raise ValueError(f"ndim must be >= 1, got {ndim}")
        if channels < 1:
            raise ValueError(f"channels must be >= 1, got {channels}")
        self.ndim = ndim
        self.channels = channels
        self.value_range = value_range

    def __repr__(self) -> str:
        return f"GridDomain(ndim={self.ndim}, channels={self.channels})"

    def grid_shape(self, resolution: int | tuple[int, ...]) -> tuple[int, ...]:
        """The spatial grid shape at ``resolution`` (one size for every axis, or one per axis)."""
        shape = (resolution,) * self.ndim if isinstance(resolution, int) else tuple(resolution)
        if len(shape) != self.ndim or any(not isinstance(s, int) or s < 1 for s in shape):
            raise ValueError(f"resolution must be a positive int or {self.ndim} positive ints, got {resolution}")
        return shape

    def check_field(self, x: torch.Tensor, *, name: str = "x") -> None:
        """Raise ``ValueError`` unless ``x`` is a dense field ``(b, channels, *spatial)`` of this domain."""
        if x.ndim != self.ndim + 2 or x.shape[1] != self.channels:
            raise ValueError(f"{name} must have shape (b, {self.channels}, {', '.join(['N'] * self.ndim)}), got {tuple(x.shape)}")

    @jaxtyped(typechecker=beartype)
    def subsample(
        self, x: DenseField, n: int | float, *, generator: torch.Generator | None = None, scheme: SubsampleScheme = "uniform"
    ) -> Points:
        """Draw ``n`` distinct points per example, a count or a fraction of the grid (MATH.md §5).

        ``"uniform"`` draws uniformly without replacement; ``"stratified"`` splits the row-major cells into ``n``
        equal runs and draws one cell uniformly from each (jittered sampling: no two points cluster along a row).
        Points are returned in row-major order.
        """
        self.check_field(x)
        shape = tuple(x.shape[2:])
        total = math.prod(shape)
        count = resolve_count(n, total)
        flat = self.draw_cells(x.shape[0], total, count, generator=generator, scheme=scheme, device=x.device)
        return Points.gather(x, unflatten_index(flat, shape))

    @staticmethod
    def draw_cells(
        batch: int, total: int, count: int, *, generator: torch.Generator | None, scheme: SubsampleScheme, device: torch.device
    ) -> torch.Tensor:
        """Row-major cell numbers ``(batch, count)``, distinct within each example and sorted."""
        if scheme == "uniform":
            keys = torch.rand(batch, total, generator=generator, device=device)
            return keys.topk(count, dim=1, sorted=False).indices.sort(dim=1).values
        if scheme == "stratified":
            edges = torch.arange(count + 1, device=device) * total // count
            width = (edges[1:] - edges[:-1]).unsqueeze(0)
            jitter = torch.rand(batch, count, generator=generator, device=device)
            return edges[:-1].unsqueeze(0) + (jitter * width).long().clamp_max(width - 1)
        raise ValueError(f"scheme must be 'uniform' or 'stratified', got {scheme!r}")

    def white_noise(
        self,
        batch: int,
        shape: tuple[int, ...],
        reference_shape: tuple[int, ...],
        *,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> DenseField:
        """White noise ``(batch, *shape)`` with per-point variance ``prod(N / N_ref)`` (MATH.md §2).

        ``shape`` is ``(channels, *spatial)``; ``reference_shape`` is the spatial shape at which the noise is N(0, I).
        """
        return white_noise(batch, shape, reference_shape, generator=generator, dtype=dtype, device=device)


def white_noise(
    batch: int,
    shape: tuple[int, ...],
    reference_shape: tuple[int, ...],
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> DenseField:
    """Resolution-consistent white noise (MATH.md §2): per-point variance ``prod(N_i / N_ref_i)``."""
    spatial = tuple(shape[1:])
    if len(spatial) != len(reference_shape):
        raise ValueError(f"shape {shape} is (channels, *spatial) and must have {len(reference_shape)} spatial axes like reference_shape")
    if any(s < 1 for s in shape) or any(r < 1 for r in reference_shape):
        raise ValueError(f"shape {shape} and reference_shape {reference_shape} must be positive")
    scale = math.sqrt(math.prod(s / r for s, r in zip(spatial, reference_shape)))
    return torch.randn(batch, *shape, generator=generator, dtype=dtype, device=device) * scale


def box_average(x: DenseField, factor: int) -> Float[Tensor, "b c *coarse"]:
    """Average a dense field over blocks of ``factor`` cells per axis (the nesting map between resolutions)."""
    if factor == 1:
        return x
    b, c, *spatial = x.shape
    if any(s % factor for s in spatial):
        raise ValueError(f"factor {factor} must divide every spatial size {tuple(spatial)}")
    view = [b, c]
    for s in spatial:
        view += [s // factor, factor]
    return x.reshape(view).mean(dim=tuple(range(3, 2 + 2 * len(spatial), 2)))
