"""The DiffusionProcess protocol and the callable types that processes and samplers accept."""

from abc import abstractmethod
from typing import Protocol, runtime_checkable

import torch

from funcdiff._typing import DenseField, Float, Int, PointValues, Tensor
from funcdiff.points import Points


@runtime_checkable
class PointModel(Protocol):
    """A network on points: ``(y_t at points, t in [0, 1], cond) -> output at the same points``."""

    def __call__(self, points: Points, t: Float[Tensor, " b"], cond: Tensor | None) -> PointValues: ...


@runtime_checkable
class DenseModel(Protocol):
    """A network on dense fields: ``(y_t, t in [0, 1], cond) -> output`` of the same shape."""

    def __call__(self, y: DenseField, t: Float[Tensor, " b"], cond: Tensor | None) -> DenseField: ...


@runtime_checkable
class DiffusionProcess(Protocol):
    """A forward noising process with closed-form posterior; it owns no network and no loop state."""

    @abstractmethod
    def q_sample(self, x0: DenseField, t: Int[Tensor, " b"], noise: DenseField) -> DenseField:
        """Draw ``y_t`` given clean data ``x0`` and white noise."""

    @abstractmethod
    def posterior(self, x0: DenseField, y_t: DenseField, t: Int[Tensor, " b"]) -> tuple[DenseField, Float[Tensor, " b"]]:
        """Mean and variance factor of ``q(y_{t-1} | y_t, x0)``."""

    @abstractmethod
    def loss(
        self, model: PointModel, x0: DenseField, *, points: int | float, generator: torch.Generator | None, cond: Tensor | None = None
    ) -> Float[Tensor, ""]:
        """The subsampled Monte-Carlo training loss."""

    @abstractmethod
    def prior(
        self, batch: int, shape: tuple[int, ...], reference_shape: tuple[int, ...], *, generator: torch.Generator | None
    ) -> DenseField:
        """A draw of ``y_T``."""
