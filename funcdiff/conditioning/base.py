"""The conditioning protocol: an operator whose condition is encoded from the data itself (docs/math.md §9).

The trainer, the tasks and the commands call only what it declares, so any operator that encodes its condition from
the data (the diffusion autoencoder, or a user's) trains jointly, samples, reconstructs and inpaints through them.
"""

from abc import abstractmethod
from typing import Any, Protocol, runtime_checkable

from torch import nn

from funcdiff._typing import DenseField, Float, Tensor
from funcdiff.points import Points


@runtime_checkable
class EncodedConditioning(Protocol):
    """An operator conditioned on a code ``z`` of the data: its encoder, its conditional training call, and the
    parameter groups whose gradient norms are clipped apart."""

    @abstractmethod
    def encode(self, x: DenseField, *, chunk_points: int | None = None) -> Float[Tensor, "b z"]:
        """The condition of whole dense fields ``x``."""

    @abstractmethod
    def encode_points(self, points: Points) -> Float[Tensor, "b z"]:
        """The condition of the data seen at ``points`` only (e.g. the known pixels of an image to inpaint)."""

    @abstractmethod
    def training_inputs(self, source: Points) -> dict[str, Any]:
        """The keyword arguments of the conditional training call ``forward(points, t, **inputs)`` that encode the
        clean data ``source`` (seen at its own points) in the same call, so one backward trains encoder and decoder."""

    @abstractmethod
    def parameter_groups(self) -> list[list[nn.Parameter]]:
        """The groups of parameters whose gradient norms are clipped separately (the paper's encoder and decoder)."""
