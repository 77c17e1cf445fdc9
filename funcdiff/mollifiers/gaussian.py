"""Gaussian mollifier diagonalised by the DCT-II (reflecting boundaries), and the identity mollifier."""

import math
from typing import final

import torch
from beartype import beartype
from jaxtyping import jaxtyped

from funcdiff._typing import DenseField, Float, Tensor
from funcdiff.mollifiers.base import Mollifier, check_inv_snr
from funcdiff.mollifiers.dct import dct, idct
from funcdiff.registry import component_dict, register


def _check_field(x: Tensor, name: str) -> None:
    """Raise ``ValueError`` unless ``x`` is a field with a batch, a channel and at least one spatial axis, none empty."""
    if x.ndim < 3 or 0 in x.shape:
        raise ValueError(f"{name} must be a dense field (b, c, *spatial) with no empty axis, got shape {tuple(x.shape)}")


def _spectral_multiply(x: Tensor, gain: Tensor) -> Tensor:
    """``IDCT(gain * DCT(x))`` over the spatial axes of ``x``, computed in at least float32."""
    dtype = x.dtype
    work = x.float() if dtype in (torch.float16, torch.bfloat16) else x
    axes = range(2, x.ndim)
    for axis in axes:
        work = dct(work, dim=axis)
    work = work * gain.to(work.dtype)
    for axis in axes:
        work = idct(work, dim=axis)
    return work.to(dtype)


@register("gaussian")
@final
class GaussianMollifier(Mollifier):
    """Gaussian blur of standard deviation ``sigma`` in domain units with reflecting boundaries (docs/math.md §1).

    ``T`` is diagonal in the DCT-II basis with eigenvalue ``g(k) = exp(-(pi |k|)^2 sigma^2 / 2)``, so it is
    exact, self-adjoint, costs O(N log N) per axis and works on grids of any dimension and shape. A blur of
    one pixel at resolution 256 is ``sigma = 1 / 256``.

    Args:
        sigma: standard deviation of the Gaussian in domain units (the domain is ``[0, 1]^d``); must be > 0.
    """

    def __init__(self, sigma: float) -> None:
        if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not math.isfinite(sigma) or sigma <= 0:
            raise ValueError(f"sigma must be a finite number > 0 (in domain units), got {sigma!r}")
        self.sigma = float(sigma)

    def __repr__(self) -> str:
        return f"GaussianMollifier(sigma={self.sigma:g})"

    def gain(self, n: int, *, device: torch.device | str | None = None) -> Float[Tensor, " n"]:
        """Eigenvalues ``exp(-(pi k)^2 sigma^2 / 2)`` of ``T`` along one axis of ``n`` cells, ``k = 0..n-1`` (float64)."""
        k = torch.arange(n, dtype=torch.float64, device=device)
        return torch.exp(-((math.pi * k * self.sigma) ** 2) / 2)

    def spectrum(self, shape: tuple[int, ...], *, device: torch.device | str | None = None) -> Tensor:
        """Eigenvalues ``g(k)`` of ``T`` on a grid of spatial ``shape``, one per DCT mode (float64)."""
        g = torch.ones((), dtype=torch.float64, device=device)
        for axis, n in enumerate(shape):
            view = [1] * len(shape)
            view[axis] = -1
            g = g * self.gain(n, device=device).view(view)
        return g

    @jaxtyped(typechecker=beartype)
    def mollify(self, x: DenseField) -> DenseField:
        """Apply ``T`` over every spatial axis of a dense field ``(b, c, *spatial)``."""
        _check_field(x, "x")
        return _spectral_multiply(x, self.spectrum(tuple(x.shape[2:]), device=x.device))

    @jaxtyped(typechecker=beartype)
    def unmollify(self, y: DenseField, inv_snr: float = 0.05) -> DenseField:
        """Wiener inverse ``W y = IDCT(g / (g^2 + inv_snr^2) * DCT(y))`` (docs/math.md §1)."""
        _check_field(y, "y")
        check_inv_snr(inv_snr)
        g = self.spectrum(tuple(y.shape[2:]), device=y.device)
        return _spectral_multiply(y, g / (g**2 + inv_snr**2))

    def to_dict(self) -> dict:
        """The JSON-safe configuration that rebuilds this mollifier."""
        return component_dict(self.kind, sigma=self.sigma)


@register("identity")
@final
class IdentityMollifier(Mollifier):
    """``T = I``: turns the mollified process into plain white-noise diffusion (docs/math.md §7)."""

    def __repr__(self) -> str:
        return "IdentityMollifier()"

    @jaxtyped(typechecker=beartype)
    def mollify(self, x: DenseField) -> DenseField:
        """Return ``x`` unchanged."""
        _check_field(x, "x")
        return x

    @jaxtyped(typechecker=beartype)
    def unmollify(self, y: DenseField, inv_snr: float = 0.05) -> DenseField:
        """Return ``y`` unchanged: there is no blur to invert (``inv_snr`` is checked, then unused)."""
        _check_field(y, "y")
        check_inv_snr(inv_snr)
        return y

    def to_dict(self) -> dict:
        """The JSON-safe configuration that rebuilds this mollifier."""
        return component_dict(self.kind)
