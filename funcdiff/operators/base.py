"""The NeuralOperator protocol: a network that maps a function at some points of a grid to a prediction there."""

from abc import abstractmethod
from typing import Protocol, runtime_checkable

from funcdiff._typing import Float, Tensor
from funcdiff.points import Points


@runtime_checkable
class NeuralOperator(Protocol):
    """What the diffusion processes and samplers call (ARCHITECTURE.md, "Protocols").

    Time ``t`` is continuous in ``[0, 1]``; ``cond`` is an optional latent ``(b, z)``. ``forward_dense`` on a whole grid
    must agree with ``forward`` on all of its points, at any resolution.
    """

    @abstractmethod
    def forward(self, points: Points, t: Float[Tensor, " b"], cond: Float[Tensor, "b z"] | None = None) -> Float[Tensor, "b n c"]:
        """The prediction at the given points."""

    @abstractmethod
    def forward_dense(
        self, x: Float[Tensor, "b c *spatial"], t: Float[Tensor, " b"], cond: Float[Tensor, "b z"] | None = None, *,
        chunk_points: int | None = None,
    ) -> Float[Tensor, "b c *spatial"]:
        """The prediction at every point of a dense grid."""
