"""The NeuralOperator protocol: a network that maps a function at some points of a grid to a prediction there."""

from abc import abstractmethod
from typing import Any, Protocol, runtime_checkable

from funcdiff._typing import Float, Tensor
from funcdiff.points import Points


@runtime_checkable
class NeuralOperator(Protocol):
    """What the diffusion processes and samplers call (`docs/extending.md`, the protocol table).

    Time ``t`` is continuous in ``[0, 1]``; ``cond`` is an optional latent ``(b, z)``. ``forward_dense`` on a whole grid
    must agree with ``forward`` on all of its points, at any resolution. ``reference_shape`` is the training grid
    (where white noise is N(0, I)); ``to_dict`` names the architecture for checkpoints (`funcdiff.registry.build`
    rebuilds it, freshly initialised, before the weights are loaded).
    """

    reference_shape: tuple[int, ...]

    @abstractmethod
    def forward(self, points: Points, t: Float[Tensor, " b"], cond: Float[Tensor, "b z"] | None = None) -> Float[Tensor, "b n c"]:
        """The prediction at the given points."""

    @abstractmethod
    def forward_dense(
        self, x: Float[Tensor, "b c *spatial"], t: Float[Tensor, " b"], cond: Float[Tensor, "b z"] | None = None, *,
        chunk_points: int | None = None,
    ) -> Float[Tensor, "b c *spatial"]:
        """The prediction at every point of a dense grid."""

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """The JSON-safe ``{"kind": ..., **settings}`` that rebuilds this operator's architecture."""


@runtime_checkable
class LatentEncoder(Protocol):
    """What a diffusion autoencoder encodes with (`funcdiff.operators.DiffusionAutoencoder`): a function seen at any
    points of any grid, or on a whole grid, to one latent ``(b, z)`` per example; ``to_dict`` as for operators."""

    @abstractmethod
    def forward(self, points: Points) -> Float[Tensor, "b z"]:
        """The latent of the function seen at ``points``."""

    @abstractmethod
    def forward_dense(self, x: Float[Tensor, "b c *spatial"], *, chunk_points: int | None = None) -> Float[Tensor, "b z"]:
        """The latent of a whole dense field (equal to `forward` on all its points)."""

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """The JSON-safe ``{"kind": ..., **settings}`` that rebuilds this encoder's architecture."""
