"""Orthonormal DCT-II and its inverse along any axis in O(N log N) through the FFT (Makhoul 1980)."""

import math

import torch

from funcdiff._typing import Tensor


def _check(x: Tensor, dim: int) -> None:
    """Raise ``TypeError`` unless ``x`` is float32 or float64 (the FFT's real types on every device), ``ValueError``
    unless it is non-empty and ``dim`` is one of its axes."""
    if x.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"the DCT needs a float32 or float64 tensor, got {x.dtype}")
    if not -x.ndim <= dim < x.ndim or x.numel() == 0:
        raise ValueError(f"the DCT needs a non-empty tensor with an axis {dim}, got shape {tuple(x.shape)}")


def _scale(n: int, x: Tensor) -> Tensor:
    """The orthonormal DCT-II's per-mode scale ``s_k`` (``sqrt(1/n)`` for k = 0, ``sqrt(2/n)`` after)."""
    scale = torch.full((n,), math.sqrt(2.0 / n), device=x.device, dtype=x.dtype)
    scale[0] = math.sqrt(1.0 / n)
    return scale


def _phase(n: int, x: Tensor, sign: float) -> Tensor:
    """``exp(sign * i pi k / 2n)`` for ``k = 0..n-1``."""
    k = torch.arange(n, device=x.device, dtype=x.dtype)
    return torch.polar(torch.ones_like(k), sign * math.pi * k / (2 * n))


def dct(x: Tensor, dim: int = -1) -> Tensor:
    """Orthonormal DCT-II of ``x`` along ``dim``: ``X_k = s_k sum_n x_n cos(pi k (2n + 1) / 2N)``."""
    _check(x, dim)
    x = x.movedim(dim, -1)
    n = x.shape[-1]
    v = torch.cat([x[..., ::2], x[..., 1::2].flip(-1)], dim=-1)
    spectrum = torch.fft.fft(v, dim=-1) * _phase(n, x, -1.0)
    return (spectrum.real * _scale(n, x)).movedim(-1, dim).contiguous()


def idct(X: Tensor, dim: int = -1) -> Tensor:
    """Inverse of `dct` (the orthonormal DCT-III) along ``dim``."""
    _check(X, dim)
    X = X.movedim(dim, -1)
    n = X.shape[-1]
    y = X / _scale(n, X)
    # With W_k = exp(-i pi k / 2n) FFT(v)_k, Re W_k = y_k and Im W_k = -y_{n-k} because v is real.
    mirrored = torch.cat([torch.zeros_like(y[..., :1]), y[..., 1:].flip(-1)], dim=-1)
    v = torch.fft.ifft(torch.complex(y, -mirrored) * _phase(n, X, 1.0), dim=-1).real
    x = torch.empty_like(v)
    half = (n + 1) // 2
    x[..., ::2] = v[..., :half]
    x[..., 1::2] = v[..., half:].flip(-1)
    return x.movedim(-1, dim).contiguous()
