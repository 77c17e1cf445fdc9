"""GridDomain: functions on ``[0, 1]^d`` held on regular grids of any dimension and shape."""

import math
from typing import Any, final, get_args

import torch

from funcdiff._typing import DenseField, Float, PointIndex, Tensor
from funcdiff.domains.base import Domain, SubsampleScheme
from funcdiff.points import check_shape, unflatten_index
from funcdiff.registry import component_dict, register


def check_positive_int(value: object, name: str) -> None:
    """Raise ``ValueError`` unless ``value`` is an int >= 1 (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


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


@register("grid")
@final
class GridDomain(Domain):
    """Functions ``[0, 1]^d -> R^channels`` on regular grids (d = 1 audio, 2 images, 3 volumes).

    Args:
        ndim: the spatial dimension d.
        channels: the number of channels c of each value.
        value_range: the range data lie in (``[-1, 1]`` by convention); samplers clip to it.
        scheme: how training points are drawn: ``"uniform"`` without replacement, or ``"stratified"`` (the row-major
            cells split into ``n`` equal runs with one cell drawn from each, so no two points cluster along a row).
    """

    def __init__(
        self, ndim: int, channels: int, value_range: tuple[float, float] = (-1.0, 1.0), scheme: SubsampleScheme = "uniform"
    ) -> None:
        check_positive_int(ndim, "ndim")
        check_positive_int(channels, "channels")
        if not isinstance(value_range, (tuple, list)) or len(value_range) != 2 or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value_range
        ):
            raise ValueError(f"value_range must be two numbers (low, high), got {value_range!r}")
        low, high = value_range
        if not low < high:
            raise ValueError(f"value_range must be (low, high) with low < high, got {value_range}")
        if scheme not in get_args(SubsampleScheme):
            raise ValueError(f"scheme must be one of {get_args(SubsampleScheme)}, got {scheme!r}")
        self.ndim = ndim
        self.channels = channels
        self.value_range = (float(low), float(high))
        self.scheme: SubsampleScheme = scheme

    def __repr__(self) -> str:
        return f"GridDomain(ndim={self.ndim}, channels={self.channels}, value_range={self.value_range}, scheme={self.scheme!r})"

    def to_dict(self) -> dict[str, Any]:
        """The JSON-safe configuration that rebuilds this domain."""
        return component_dict(self.kind, ndim=self.ndim, channels=self.channels, value_range=self.value_range, scheme=self.scheme)

    def grid_shape(self, resolution: int | tuple[int, ...]) -> tuple[int, ...]:
        """The spatial grid shape at ``resolution`` (one size for every axis, or one per axis)."""
        shape = (resolution,) * self.ndim if isinstance(resolution, int) else tuple(resolution)
        if len(shape) != self.ndim or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape):
            raise ValueError(f"resolution must be a positive int or {self.ndim} positive ints, got {resolution}")
        return shape

    def draw_index(
        self,
        batch: int,
        shape: tuple[int, ...],
        n: int | float,
        *,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> PointIndex:
        """Lattice positions of ``n`` distinct cells per example (a count or a fraction of the grid), row-major order."""
        check_positive_int(batch, "batch")
        self.grid_shape(shape)
        total = math.prod(shape)
        count = resolve_count(n, total)
        if self.scheme == "uniform":
            keys = torch.rand(batch, total, generator=generator, device=device)
            flat = keys.topk(count, dim=1, sorted=False).indices.sort(dim=1).values
        else:
            edges = torch.arange(count + 1, device=device) * total // count
            width = (edges[1:] - edges[:-1]).unsqueeze(0)
            jitter = torch.rand(batch, count, generator=generator, device=device)
            flat = edges[:-1].unsqueeze(0) + (jitter * width).long().clamp_max(width - 1)
        return unflatten_index(flat, shape)

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
        """White noise ``(batch, *shape)`` with per-point variance ``prod(N / N_ref)`` (docs/math.md §2).

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
    """Resolution-consistent white noise (docs/math.md §2): per-point variance ``prod(N_i / N_ref_i)``."""
    check_positive_int(batch, "batch")
    check_shape(shape)
    check_shape(reference_shape, "reference_shape")
    spatial = shape[1:]
    if len(spatial) != len(reference_shape):
        raise ValueError(f"shape {shape} is (channels, *spatial) and must have {len(reference_shape)} spatial axes like reference_shape")
    scale = math.sqrt(math.prod(s / r for s, r in zip(spatial, reference_shape)))
    return torch.randn(batch, *shape, generator=generator, dtype=dtype, device=device) * scale


def nested_white_noise(
    batch: int,
    shape: tuple[int, ...],
    reference_shape: tuple[int, ...],
    nest_shape: tuple[int, ...],
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> DenseField:
    """White noise at ``shape = (c, *spatial)`` made by box-averaging noise drawn at ``nest_shape`` (docs/math.md §2).

    Noise at a finer grid, box-averaged, has exactly the distribution of noise at the coarser one, so one seed
    and one ``nest_shape`` give the same underlying noise, hence (with a deterministic sampler) matching pictures,
    at every resolution that divides ``nest_shape``.
    """
    check_shape(shape)
    check_shape(nest_shape, "nest_shape")
    spatial = shape[1:]
    if len(nest_shape) != len(spatial):
        raise ValueError(f"nest_shape {nest_shape} must have one size per spatial axis of {spatial}")
    factors = {n // s for n, s in zip(nest_shape, spatial)}
    if len(factors) != 1 or any(n % s for n, s in zip(nest_shape, spatial)):
        raise ValueError(f"nest shape {nest_shape} must be the same integer multiple of every axis of {spatial}")
    fine = white_noise(batch, (shape[0], *nest_shape), reference_shape, generator=generator, dtype=dtype, device=device)
    return box_average(fine, factors.pop())


def box_average(x: DenseField, factor: int) -> Float[Tensor, "b c *coarse"]:
    """Average a dense field over blocks of ``factor`` cells per axis (the nesting map between resolutions)."""
    check_positive_int(factor, "factor")
    if x.ndim < 3:
        raise ValueError(f"x must be a dense field (b, c, *spatial) with at least one spatial axis, got shape {tuple(x.shape)}")
    if not x.dtype.is_floating_point:
        raise TypeError(f"x must be a floating tensor, got {x.dtype}")
    if factor == 1:
        return x
    b, c, *spatial = x.shape
    if any(s % factor for s in spatial):
        raise ValueError(f"factor {factor} must divide every spatial size {tuple(spatial)}")
    view = [b, c]
    for s in spatial:
        view += [s // factor, factor]
    return x.reshape(view).mean(dim=tuple(range(3, 2 + 2 * len(spatial), 2)))
