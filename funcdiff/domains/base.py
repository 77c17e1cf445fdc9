"""The Domain protocol: where functions live and how they are discretised."""

from abc import abstractmethod
from typing import Literal, Protocol, runtime_checkable

import torch

from funcdiff._typing import DenseField
from funcdiff.points import Points

SubsampleScheme = Literal["uniform", "stratified"]


@runtime_checkable
class Domain(Protocol):
    """A family of functions ``[0, 1]^d -> R^c`` held on regular grids of any shape."""

    ndim: int
    channels: int
    value_range: tuple[float, float]

    @abstractmethod
    def grid_shape(self, resolution: int | tuple[int, ...]) -> tuple[int, ...]:
        """The spatial grid shape at ``resolution`` (one size for every axis, or one per axis)."""

    @abstractmethod
    def subsample(
        self, x: DenseField, n: int | float, *, generator: torch.Generator | None = None, scheme: SubsampleScheme = "uniform"
    ) -> Points:
        """Draw ``n`` distinct points per example (a count, or a fraction of the grid)."""

    @abstractmethod
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
        """Discrete white noise of shape ``(batch, *shape)`` with per-point variance ``prod(N / N_ref)`` (MATH.md §2)."""
