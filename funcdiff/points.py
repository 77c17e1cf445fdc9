"""Points: a function held at a subset of the cells of a regular grid on ``[0, 1]^d``."""

import math
from dataclasses import dataclass

import torch
from jaxtyping import jaxtyped
from beartype import beartype

from funcdiff._typing import Bool, DenseField, Float, Int, PointCoords, PointIndex, PointValues, Tensor


@jaxtyped(typechecker=beartype)
def flat_index(index: PointIndex, shape: tuple[int, ...]) -> Int[Tensor, "b n"]:
    """Row-major linear position of each lattice index on a grid of ``shape``."""
    flat = torch.zeros(index.shape[:2], dtype=torch.long, device=index.device)
    for axis, size in enumerate(shape):
        flat = flat * size + index[..., axis]
    return flat


@jaxtyped(typechecker=beartype)
def unflatten_index(flat: Int[Tensor, "b n"], shape: tuple[int, ...]) -> PointIndex:
    """Lattice index of each row-major linear position on a grid of ``shape`` (inverse of `flat_index`)."""
    axes = []
    rest = flat
    for size in reversed(shape):
        axes.append(rest % size)
        rest = torch.div(rest, size, rounding_mode="floor")
    return torch.stack(axes[::-1], dim=-1)


def check_shape(shape: object, name: str = "shape") -> None:
    """Raise ``ValueError`` unless ``shape`` is a non-empty tuple of positive ints."""
    if not isinstance(shape, tuple) or not shape or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape):
        raise ValueError(f"{name} must be a tuple of one or more positive ints, got {shape!r}")


def check_index(index: Tensor, shape: tuple[int, ...]) -> None:
    """Raise ``ValueError`` unless ``shape`` is positive and every lattice index lies in ``[0, shape)`` along its axis."""
    check_shape(shape)
    if index.numel() == 0:
        return
    low, high = torch.stack(index.reshape(-1, len(shape)).aminmax(dim=0)).tolist()  # one reduction, one sync
    for axis, (lo, hi, size) in enumerate(zip(low, high, shape)):
        if lo < 0 or hi >= size:
            raise ValueError(f"index along axis {axis} must lie in [0, {size}), got values in [{lo}, {hi}]")


@dataclass(frozen=True)
class Points:
    """Values of a function at ``n`` distinct cells of a grid of ``shape``, per example.

    Attributes:
        values: the function's values (cell averages), channels last.
        index: integer lattice position of each point on the grid.
        shape: the spatial shape of the grid the points live on.
    """

    values: PointValues
    index: PointIndex
    shape: tuple[int, ...]

    def __post_init__(self) -> None:
        if self.values.ndim != 3 or self.index.ndim != 3:
            raise ValueError(f"values must be (b, n, c) and index (b, n, d); got {tuple(self.values.shape)} and {tuple(self.index.shape)}")
        if self.values.shape[:2] != self.index.shape[:2]:
            raise ValueError(f"values {tuple(self.values.shape)} and index {tuple(self.index.shape)} disagree on (b, n)")
        if self.index.shape[-1] != len(self.shape):
            raise ValueError(f"index has d={self.index.shape[-1]} but shape {self.shape} has {len(self.shape)} axes")
        if self.index.dtype not in (torch.int32, torch.int64):
            raise TypeError(f"index must be an integer tensor, got {self.index.dtype}")
        if not self.values.dtype.is_floating_point:
            raise TypeError(f"values must be a floating tensor, got {self.values.dtype}")
        if 0 in self.values.shape:
            raise ValueError(f"points need at least one example, point and channel, got values of shape {tuple(self.values.shape)}")
        check_index(self.index, self.shape)

    @property
    def ndim(self) -> int:
        """Spatial dimension d of the domain."""
        return len(self.shape)

    @property
    def coords(self) -> PointCoords:
        """Cell-centre coordinates ``(index + 0.5) / shape`` in ``[0, 1]^d``."""
        size = torch.tensor(self.shape, dtype=self.values.dtype, device=self.values.device)
        return (self.index.to(self.values.dtype) + 0.5) / size

    @property
    def flat(self) -> Int[Tensor, "b n"]:
        """Row-major linear position of each point on the grid."""
        return flat_index(self.index.long(), self.shape)

    def with_values(self, values: Float[Tensor, "b n c2"]) -> "Points":
        """The same coordinates carrying other values."""
        return Points(values, self.index, self.shape)

    @staticmethod
    @jaxtyped(typechecker=beartype)
    def gather(x: DenseField, index: PointIndex) -> "Points":
        """Points of the dense field ``x`` at the lattice positions ``index``."""
        shape = tuple(x.shape[2:])
        if index.shape[-1] != len(shape):
            raise ValueError(f"index has d={index.shape[-1]} but x has {len(shape)} spatial axes")
        check_index(index, shape)
        flat = flat_index(index.long(), shape)
        values = x.flatten(2).gather(2, flat.unsqueeze(1).expand(-1, x.shape[1], -1)).transpose(1, 2)
        return Points(values, index, shape)

    @staticmethod
    @jaxtyped(typechecker=beartype)
    def from_dense(x: DenseField) -> "Points":
        """All points of the dense field ``x`` in row-major order."""
        return Points(x.flatten(2).transpose(1, 2), grid_index(x.shape[0], tuple(x.shape[2:]), device=x.device), tuple(x.shape[2:]))

    def to_dense(self) -> tuple[DenseField, Bool[Tensor, "b 1 *spatial"]]:
        """Scatter the points onto their grid: the field (zero where absent) and the presence mask."""
        b, n, c = self.values.shape
        size = math.prod(self.shape)
        flat = self.flat.unsqueeze(1)
        field = self.values.new_zeros(b, c, size).scatter(2, flat.expand(-1, c, -1), self.values.transpose(1, 2))
        mask = torch.zeros(b, 1, size, dtype=torch.bool, device=self.values.device).scatter(2, flat, True)
        return field.view(b, c, *self.shape), mask.view(b, 1, *self.shape)


def grid_index(batch: int, shape: tuple[int, ...], *, device: torch.device | str | None = None) -> Int[Tensor, "b n d"]:
    """Lattice index of every cell of a grid of ``shape`` in row-major order, repeated over the batch."""
    axes = torch.meshgrid(*[torch.arange(s, device=device) for s in shape], indexing="ij")
    index = torch.stack(axes, dim=-1).reshape(-1, len(shape))
    return index.unsqueeze(0).expand(batch, -1, -1)


@dataclass(frozen=True)
class Scattered:
    """Values of a function at ``n`` distinct positions anywhere in ``[0, 1]^d``, per example: observations that
    never lay on a grid (docs/math.md §20).

    Attributes:
        values: the function's values there, channels last.
        coords: each point's continuous coordinates in the closed unit cube.

    Raises:
        ValueError: for mismatched shapes, coordinates outside ``[0, 1]^d`` or not finite, or an example that holds
            the same position twice.
    """

    values: PointValues
    coords: PointCoords

    def __post_init__(self) -> None:
        if self.values.ndim != 3 or self.coords.ndim != 3 or self.values.shape[:2] != self.coords.shape[:2]:
            raise ValueError(f"values must be (b, n, c) and coords (b, n, d) with equal (b, n); got {tuple(self.values.shape)} "
                             f"and {tuple(self.coords.shape)}")
        if not self.values.dtype.is_floating_point or self.coords.dtype != self.values.dtype:
            raise TypeError(f"values and coords must be floating tensors of one dtype, got {self.values.dtype} and {self.coords.dtype}")
        if 0 in self.values.shape or self.coords.shape[-1] not in (1, 2, 3):
            raise ValueError(f"scattered points need at least one example, point and channel in 1 to 3 dimensions, got values "
                             f"{tuple(self.values.shape)} and coords {tuple(self.coords.shape)}")
        outside = ~(torch.isfinite(self.coords) & (self.coords >= 0) & (self.coords <= 1)).all(-1)
        if bool(outside.any()):
            b, i = (int(v) for v in outside.nonzero()[0])
            raise ValueError(f"coordinates must lie in the domain [0, 1]^{self.ndim}: example {b}, point {i} is at "
                             f"{[round(float(u), 6) for u in self.coords[b, i]]}")
        b, n, d = self.coords.shape
        order = torch.arange(n, device=self.coords.device).expand(b, n)
        for axis in reversed(range(d)):  # stable sorts from the last axis to the first: lexicographic order
            order = order.gather(1, self.coords[..., axis].gather(1, order).sort(dim=1, stable=True).indices)
        rows = self.coords.gather(1, order.unsqueeze(-1).expand(b, n, d))
        repeated = (rows[:, 1:] == rows[:, :-1]).all(-1).sum(1)
        if bool(repeated.any()):
            example = int(repeated.nonzero()[0])
            raise ValueError(f"the points of example {example} must be distinct: {int(repeated[example])} duplicate position(s)")

    @property
    def ndim(self) -> int:
        """Spatial dimension d of the domain."""
        return self.coords.shape[-1]

    def with_values(self, values: Float[Tensor, "b n c2"]) -> "Scattered":
        """The same positions carrying other values (the positions are not checked again)."""
        if values.shape[:2] != self.values.shape[:2] or values.dtype != self.coords.dtype or values.shape[2] == 0:
            raise ValueError(f"values must be (b, n, c) of {tuple(self.values.shape[:2])} points in {self.coords.dtype}, "
                             f"got {tuple(values.shape)} in {values.dtype}")
        points = object.__new__(Scattered)
        object.__setattr__(points, "values", values)
        object.__setattr__(points, "coords", self.coords)
        return points

    def to(self, device: torch.device | str) -> "Scattered":
        """Both tensors on ``device`` (these points themselves where they are there already)."""
        if self.values.device == torch.device(device) and self.coords.device == torch.device(device):
            return self
        return Scattered(self.values.to(device), self.coords.to(device))
