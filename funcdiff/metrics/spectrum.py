"""Radial log-power spectrum of an image set and the RMS distance between two sets' spectra in a frequency band
(Durall et al. 2020 style): catches blur and the missing detail of naive upsampling (shared/data/README.md §3)."""

import torch
from beartype import beartype
from jaxtyping import jaxtyped

from funcdiff._typing import Float, Tensor
from funcdiff.metrics._checks import check_images, check_pair


@jaxtyped(typechecker=beartype)
def radial_power_spectrum(x: Float[Tensor, "n c h w"]) -> Float[Tensor, " bins"]:
    """``log10`` of the mean ``|FFT2|^2`` per integer radial frequency (cycles per image, rounded), over images and channels.

    Each image's mean is subtracted first, so bin 0 holds no power; empty power is floored at the smallest positive
    float64 so that the logarithm stays finite.

    Raises:
        ValueError: on invalid images (`check_images`) or non-square images.
    """
    check_images(x, "x")
    if x.shape[-1] != x.shape[-2]:
        raise ValueError(f"x must hold square images, got {tuple(x.shape[-2:])}")
    h = x.shape[-1]
    x = x.double()
    power = torch.fft.fft2(x - x.mean(dim=(2, 3), keepdim=True)).abs().square().mean(dim=(0, 1))
    freq = torch.fft.fftfreq(h, d=1 / h, dtype=torch.float64, device=x.device)
    radius = torch.sqrt(freq[:, None] ** 2 + freq[None, :] ** 2).round().long().flatten()
    sums = torch.zeros(int(radius.max()) + 1, dtype=torch.float64, device=x.device).index_add_(0, radius, power.flatten())
    counts = torch.bincount(radius).double()
    return (sums / counts).clamp(min=torch.finfo(torch.float64).tiny).log10()


@jaxtyped(typechecker=beartype)
def spectrum_distance(
    x: Float[Tensor, "n c h w"], y: Float[Tensor, "m k p q"], *, band: tuple[float, float] = (0.25, 0.5)
) -> float:
    """RMS difference of the two sets' log10 radial spectra over radial frequencies in ``[band[0] h, band[1] h)``.

    The default band ``[h/4, h/2)`` is the upper half of the axis frequencies, where blur and upsampling show.

    Raises:
        ValueError: on invalid sets (`check_pair`), different or non-square resolutions, or a band with no bin.
    """
    check_pair(x, y, ("x", "y"))
    if x.shape[-2:] != y.shape[-2:]:
        raise ValueError(f"x and y must have the same resolution, got {tuple(x.shape[-2:])} and {tuple(y.shape[-2:])}")
    h = x.shape[-1]
    lo, hi = band
    sx, sy = radial_power_spectrum(x), radial_power_spectrum(y)
    bins = torch.arange(sx.shape[0], dtype=torch.float64)
    inside = (bins >= lo * h) & (bins < hi * h)
    if not 0 <= lo < hi or not inside.any():
        raise ValueError(
            f"band must satisfy 0 <= band[0] < band[1] and contain an integer frequency below {sx.shape[0]}, got {band}"
        )
    return float((sx - sy)[inside].square().mean().sqrt())
