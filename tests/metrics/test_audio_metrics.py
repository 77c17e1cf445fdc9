"""Audio set distances and clip checks against closed forms: a gain of 2 is 6.02 dB in every bin, a difference only
above a frequency shows only in that band, the pitch and harmonic-to-noise ratio of synthetic harmonic tones."""

import math

import numpy as np
import pytest
import torch

from funcdiff.metrics.audio import (
    FLOOR_DB, mean_log_spectrum, mel_frechet_distance, pitch_and_harmonicity, quiet_level, score_clips, spectral_distance,
)

RATE = 8000


def harmonic_tones(f0: float, count: int, *, noise: float = 0.0, seed: int = 0, partials: int = 4) -> torch.Tensor:
    """``count`` one-second clips of a tone at ``f0`` with partials of amplitude 0.4 / k, random phases, plus white
    noise of standard deviation ``noise``."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(RATE, dtype=torch.float64).view(1, 1, -1) / RATE
    phases = torch.rand(count, partials, 1, generator=g, dtype=torch.float64) * 2 * math.pi
    x = sum(0.4 / k * torch.sin(2 * math.pi * k * f0 * t + phases[:, k - 1: k]) for k in range(1, partials + 1))
    return (x + noise * torch.randn(count, 1, RATE, generator=g, dtype=torch.float64)).float()


def test_a_gain_of_two_is_six_decibels_everywhere() -> None:
    """Doubling every clip raises the mean power of every bin by 20 log10(2) dB, so the distance is 6.02 dB."""
    a = harmonic_tones(220.0, 4, noise=0.01)
    assert spectral_distance(2 * a, a, RATE) == pytest.approx(20 * math.log10(2), abs=1e-3)
    shift = mean_log_spectrum(2 * a, RATE) - mean_log_spectrum(a, RATE)
    torch.testing.assert_close(shift, torch.full_like(shift, 20 * math.log10(2)), atol=1e-6, rtol=0)


def test_a_difference_above_a_frequency_shows_only_in_that_band() -> None:
    """Sets that differ only by a 3 kHz partial: near 0 below 2 kHz, tens of dB above it."""
    a, b = harmonic_tones(200.0, 6, noise=0.01, seed=1), harmonic_tones(200.0, 6, noise=0.01, seed=2)
    t = torch.arange(RATE).view(1, 1, -1) / RATE
    b_bright = b + 0.2 * torch.sin(2 * math.pi * 3000 * t)
    low = spectral_distance(a, b_bright, RATE, band=(0, 2000))
    high = spectral_distance(a, b_bright, RATE, band=(2000, 4000))
    assert low < 0.5 and high > 3.0
    scores = score_clips(a, b_bright, RATE, band_from=2000)
    assert scores.high_band == pytest.approx(high) and scores.spectral > low
    assert score_clips(a, b, RATE).high_band is None


def test_mel_frechet_distance_is_small_between_draws_and_large_across_pitches() -> None:
    """Two draws of the same tones are closer than tones an octave apart, by orders of magnitude."""
    same = mel_frechet_distance(harmonic_tones(220.0, 16, noise=0.02, seed=3), harmonic_tones(220.0, 16, noise=0.02, seed=4),
                                sample_rates=(RATE, RATE), max_frequency=RATE / 2)
    octave = mel_frechet_distance(harmonic_tones(220.0, 16, noise=0.02, seed=3), harmonic_tones(440.0, 16, noise=0.02, seed=4),
                                  sample_rates=(RATE, RATE), max_frequency=RATE / 2)
    assert octave > 100 * max(same, 1e-3)


@pytest.mark.parametrize("f0", [65.0, 220.0, 440.0, 987.8])
def test_pitch_and_harmonicity_of_noisy_harmonic_tones(f0: float) -> None:
    """f0 within 0.5 %; HNR within 1.5 dB of the tone-to-noise power ratio (0.08 * sum 1/k^2 over noise^2)."""
    noise = 0.05
    pitch, hnr = pitch_and_harmonicity(harmonic_tones(f0, 4, noise=noise), RATE)
    assert torch.allclose(pitch, torch.full_like(pitch, f0), rtol=5e-3)
    expected = 10 * math.log10(0.08 * sum(1 / k**2 for k in range(1, 5)) / noise**2)
    assert torch.allclose(hnr, torch.full_like(hnr, expected), atol=1.5)


def test_noise_has_a_low_harmonicity() -> None:
    """White noise has no period: its HNR is far below that of a tone."""
    _, hnr = pitch_and_harmonicity(torch.randn(4, 1, RATE, generator=torch.Generator().manual_seed(0)), RATE)
    assert float(hnr.max()) < -5


def test_invalid_sets_are_refused() -> None:
    """One clip, stereo or NaN clips are refused by name."""
    good = harmonic_tones(220.0, 2)
    with pytest.raises(ValueError, match="samples must be at least 2 finite mono clips"):
        spectral_distance(good[:1], good, RATE)
    with pytest.raises(ValueError, match="reference must be at least 2 finite mono clips"):
        spectral_distance(good, torch.full_like(good, float("nan")), RATE)
    with pytest.raises(ValueError, match="holds no frequency"):
        spectral_distance(good, good, RATE, band=(5000, 6000))


def test_degenerate_clips_get_a_finite_positive_pitch() -> None:
    """Silence, a constant, a click and a slow swell have no period in range, but their estimates stay finite and
    positive (an autocorrelation without a peak in range once sent the parabola's vertex far off)."""
    clips = torch.zeros(4, 1, RATE)
    clips[1] = 0.5
    clips[2, 0, 100] = 1.0
    clips[3, 0] = torch.sin(torch.linspace(0, math.pi, RATE)) + 1e-3 * torch.linspace(-1, 1, RATE) ** 2
    pitch, hnr = pitch_and_harmonicity(clips, RATE)
    assert torch.isfinite(pitch).all() and (pitch > 0).all() and torch.isfinite(hnr).all()


def test_mirror_correlation_tells_images_of_a_band_from_their_absence() -> None:
    """Harmonic tones at 4 kHz (partials up to 1.6 kHz, a little noise) brought to 8 kHz: zero-stuffing mirrors their
    band about 2 kHz exactly (1.0), linear interpolation images it attenuated (above 0.8), band-limited resampling
    leaves only the resampler's rounding above 2 kHz (below 0.2), and a white-noise upper band is unrelated (below 0.2;
    one clip's chance correlation over the 63 bins has a spread of about 0.13, the median of 16 far less)."""
    from funcdiff.data.audio import resample
    from funcdiff.metrics.audio import mirror_correlation

    low = torch.stack([harmonic_tones(110.0 + 15 * i, 1, noise=0.003, seed=i, partials=8)[0, :, ::2] for i in range(16)])
    stuffed = torch.zeros(16, 1, RATE)
    stuffed[..., ::2] = 2 * low
    linear = torch.nn.functional.interpolate(low, scale_factor=2, mode="linear", align_corners=False)
    band = torch.from_numpy(np.stack([resample(c[0].double().numpy(), RATE // 2, RATE, length=RATE) for c in low])).float()[:, None]
    noisy = band + 0.01 * torch.randn(band.shape, generator=torch.Generator().manual_seed(0))
    assert mirror_correlation(stuffed, RATE, 2000) == pytest.approx(1.0, abs=1e-6)
    assert mirror_correlation(linear, RATE, 2000) > 0.8
    assert abs(mirror_correlation(band, RATE, 2000)) < 0.2
    assert abs(mirror_correlation(noisy, RATE, 2000)) < 0.2
    with pytest.raises(ValueError, match="edge"):
        mirror_correlation(linear, RATE, 3990)


def test_the_quiet_level_is_the_noise_floor_of_the_quiet_frames() -> None:
    """Clips loud for their first 0.8 s and then silent score -100 dB (exact silence, the floor); with white noise of
    standard deviation 0.01 in the silent part they score 20 log10(0.01) = -40 dB, whatever the loud part holds."""
    x = harmonic_tones(220.0, 4)
    x[..., int(0.8 * RATE):] = 0  # 20 % of every clip's frames
    assert quiet_level(x, RATE) == FLOOR_DB
    noisy = x.clone()
    noisy[..., int(0.8 * RATE):] = 0.01 * torch.randn(4, 1, RATE - int(0.8 * RATE), generator=torch.Generator().manual_seed(0))
    assert quiet_level(noisy, RATE) == pytest.approx(-40.0, abs=0.5)
    assert quiet_level(noisy, RATE, quantile=0.5) == pytest.approx(10 * math.log10(x[..., : int(0.8 * RATE)].square().mean().item()), abs=1.0)
    for bad in ({"quantile": 1.5}, {"window_seconds": 2.0}):
        with pytest.raises(ValueError, match="quantile"):
            quiet_level(x, RATE, **bad)
