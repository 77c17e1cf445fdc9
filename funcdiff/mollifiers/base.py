"""The Mollifier protocol: a linear smoothing operator T on dense fields, and its stable inverse."""

import math
from abc import abstractmethod
from typing import Protocol, runtime_checkable

from funcdiff._typing import DenseField


@runtime_checkable
class Mollifier(Protocol):
    """A linear, self-adjoint smoothing ``T`` defined in domain units, so the same ``T`` applies at every resolution."""

    @abstractmethod
    def mollify(self, x: DenseField) -> DenseField:
        """Apply ``T`` over every spatial axis of a dense field ``(b, c, *spatial)``."""

    @abstractmethod
    def unmollify(self, y: DenseField, inv_snr: float = 0.05) -> DenseField:
        """Apply a stable (Wiener) inverse of ``T`` with inverse signal-to-noise ratio ``inv_snr``."""

    @abstractmethod
    def to_dict(self) -> dict:
        """The JSON-safe configuration that rebuilds this mollifier (`funcdiff.registry.build`)."""


def check_inv_snr(inv_snr: object) -> None:
    """Raise ``ValueError`` unless ``inv_snr`` (a Wiener filter's inverse signal-to-noise ratio) is a finite number >= 0."""
    if isinstance(inv_snr, bool) or not isinstance(inv_snr, (int, float)) or not 0 <= inv_snr < math.inf:
        raise ValueError(f"inv_snr must be a finite number >= 0, got {inv_snr!r}")
