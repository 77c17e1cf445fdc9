"""Radial power spectrum against a cosine's closed form, and the high-band distance on blurred, noised, shifted and
upsampled icons."""

import math

import pytest
import torch

from funcdiff.metrics import radial_power_spectrum, spectrum_distance
from tests.metrics.conftest import blur, icons, upsampled


def test_spectrum_of_a_cosine_is_its_closed_form() -> None:
    # cos(2 pi k x / h) has two FFT coefficients of magnitude h^2 / 2 at (0, +-k), both at radius k.
    h, k = 32, 5
    cols = torch.arange(h, dtype=torch.float64)
    x = torch.cos(2 * math.pi * k * cols / h).expand(2, 1, h, h)
    in_bin = sum(1 for i in range(h) for j in range(h) if round(math.hypot(min(i, h - i), min(j, h - j))) == k)
    spectrum = radial_power_spectrum(x)
    assert spectrum.shape == (round(math.hypot(h / 2, h / 2)) + 1,)
    assert spectrum[k].item() == pytest.approx(math.log10(2 * (h * h / 2) ** 2 / in_bin), rel=1e-12)
    others = torch.cat([spectrum[:k], spectrum[k + 1 :]])
    assert torch.isfinite(spectrum).all() and (others < spectrum[k] - 20).all()  # rounding error only, floored


def test_spectrum_ignores_the_mean_and_circular_shifts(real: torch.Tensor) -> None:
    torch.testing.assert_close(radial_power_spectrum(real + 0.3), radial_power_spectrum(real))
    assert spectrum_distance(torch.roll(real, (3, 5), (2, 3)), real) < 1e-10


def test_spectrum_real_vs_real_is_at_the_floor_and_corruptions_are_ordered(
    real: torch.Tensor, reference: torch.Tensor, noise: torch.Tensor
) -> None:
    floor = spectrum_distance(real, reference)
    assert floor < 0.05  # README §3: 0.016 at N=1000
    noisy = [spectrum_distance(real + s * noise, reference) for s in (0.02, 0.05, 0.1)]
    assert floor < noisy[0] < noisy[1] < noisy[2]
    blurred = [spectrum_distance(blur(real, k), reference) for k in (1, 2)]
    assert 10 * floor < blurred[0] < blurred[1]


def test_blur_loses_high_band_power(real: torch.Tensor) -> None:
    sharp, soft = radial_power_spectrum(real), radial_power_spectrum(blur(real, 1))
    assert (soft[8:16] < sharp[8:16] - 0.3).all()


def test_bicubic_upsampled_icons_are_far_from_real_ones_in_the_high_band(reference: torch.Tensor) -> None:
    up = torch.nn.functional.interpolate(icons("train", 16), size=32, mode="bicubic", align_corners=False).clamp(-1, 1)
    floor = spectrum_distance(icons("train", 32), reference)
    assert spectrum_distance(up, reference) > 0.5 > 10 * floor  # README §3: 1.17 against 0.016
    assert spectrum_distance(upsampled(icons("train", 32), 16), reference) > 0.5
    # Below the band that the 16 px icons resolve, the spectra agree far better.
    assert spectrum_distance(up, reference, band=(0.0, 0.2)) < 0.25 * spectrum_distance(up, reference)


@pytest.mark.parametrize(
    ("x", "y", "kwargs", "match"),
    [
        (torch.zeros(4, 1, 32, 32), torch.zeros(4, 1, 64, 64), {}, "same resolution"),
        (torch.zeros(4, 1, 32, 48), torch.zeros(4, 1, 32, 48), {}, "square"),
        (torch.zeros(4, 1, 32, 32), torch.zeros(4, 3, 32, 32), {}, "same number of channels"),
        (torch.zeros(4, 1, 32, 32), torch.zeros(4, 1, 32, 32), {"band": (0.5, 0.25)}, "band"),
        (torch.zeros(4, 1, 32, 32), torch.zeros(4, 1, 32, 32), {"band": (0.9, 1.0)}, "band"),
        (torch.zeros(4, 1, 32, 32), torch.full((4, 1, 32, 32), math.nan), {}, "NaN"),
    ],
)
def test_spectrum_distance_refuses_bad_input(x: torch.Tensor, y: torch.Tensor, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        spectrum_distance(x, y, **kwargs)
