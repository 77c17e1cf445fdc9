"""Independent reference computations used by the mathematical tests."""

import math

import torch


def dct_matrix(n: int) -> torch.Tensor:
    """The orthonormal DCT-II as an explicit ``n x n`` float64 matrix (rows are modes)."""
    i = torch.arange(n, dtype=torch.float64)
    m = torch.cos(math.pi * i[:, None] * (2 * i[None, :] + 1) / (2 * n)) * math.sqrt(2 / n)
    m[0] /= math.sqrt(2)
    return m


def mollifier_matrix(shape: tuple[int, ...], sigma: float) -> torch.Tensor:
    """``T`` of docs/math.md §1 on a grid of ``shape`` as a dense float64 matrix acting on row-major vectors."""
    total = torch.ones(1, 1, dtype=torch.float64)
    for n in shape:
        c = dct_matrix(n)
        g = torch.exp(-((math.pi * torch.arange(n, dtype=torch.float64) * sigma) ** 2) / 2)
        total = torch.kron(total, c.T @ torch.diag(g) @ c)
    return total


def gaussian_conv_symmetric(x: torch.Tensor, sigma_px: float) -> torch.Tensor:
    """Direct convolution of a 1-D signal with a sampled, normalised Gaussian, half-sample symmetric padding."""
    radius = int(math.ceil(6 * sigma_px))
    taps = torch.exp(-(torch.arange(-radius, radius + 1, dtype=torch.float64) ** 2) / (2 * sigma_px**2))
    taps = taps / taps.sum()
    n = x.shape[-1]
    idx = torch.arange(-radius, n + radius)
    idx = torch.where(idx < 0, -idx - 1, idx)
    idx = torch.where(idx >= n, 2 * n - idx - 1, idx)
    padded = x[..., idx]
    return padded.unfold(-1, 2 * radius + 1, 1) @ taps


def sample_moments(samples: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and covariance of ``(num, dim)`` samples in float64."""
    s = samples.double()
    mean = s.mean(0)
    centred = s - mean
    return mean, centred.T @ centred / (s.shape[0] - 1)


def grid_of(process, steps):
    """The time grid of ``steps``: explicit integer steps of a DDPM (a list), a number of evenly spaced steps, or
    (None) every step of a DDPM."""
    from funcdiff.sampling import step_grid, uniform_t

    if steps is None:
        return uniform_t(process, getattr(process, "num_steps", None))
    return step_grid(process, steps) if isinstance(steps, (list, tuple)) else uniform_t(process, steps)
