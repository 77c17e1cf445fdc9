"""AudioDomain: rates as grids, the config round trip, what it writes (WAV at the right rate, spectrograms and
waveforms that show the signal), and a tiny 1-D model that trains on clips and samples at twice the rate."""

import math

import pytest
import torch

from funcdiff import AudioDomain, GaussianMollifier, MollifiedDDPM, cosine_schedule, operator_preset
from funcdiff.domains import log_power_spectrogram, read_png, read_wav, spectrogram_picture, waveform_picture
from funcdiff.registry import build
from funcdiff.sampling.sample import sample


def tone(frequency: float, rate: int, seconds: float = 1.0, amplitude: float = 0.5) -> torch.Tensor:
    """A sine of ``frequency`` Hz sampled at ``rate`` as one clip ``(1, 1, n)``."""
    t = torch.arange(round(rate * seconds), dtype=torch.float64) / rate
    return (amplitude * torch.sin(2 * math.pi * frequency * t)).float().view(1, 1, -1)


def test_a_resolution_is_a_sample_rate_and_the_config_round_trips() -> None:
    """Half-second clips: 8 kHz is a grid of 4000 samples; a shape passes through; labels are rates."""
    domain = AudioDomain(0.5, scheme="stratified")
    assert domain.grid_shape(8000) == (4000,) and domain.grid_shape((123,)) == (123,)
    assert domain.label((4000,)) == "8000Hz" and domain.sample_rate(4000) == 8000
    again = build(domain.to_dict())
    assert isinstance(again, AudioDomain) and again.to_dict() == domain.to_dict() and again.grid.scheme == "stratified"
    for bad in (0, -1, True):
        with pytest.raises(ValueError, match="sample rate must be a positive int"):
            domain.grid_shape(bad)
    with pytest.raises(ValueError, match="duration must be a positive number of seconds"):
        AudioDomain(0.0)


def test_white_noise_and_subsampling_are_those_of_a_1d_grid() -> None:
    """Per-sample variance N / N_ref (docs/math.md §2) and n distinct samples per clip."""
    domain = AudioDomain(1.0)
    noise = domain.white_noise(64, (1, 2000), (500,), generator=torch.Generator().manual_seed(0))
    assert abs(float(noise.var()) - 4.0) < 0.1
    index = domain.draw_index(3, (100,), 25, generator=torch.Generator().manual_seed(1))
    assert index.shape == (3, 25, 1) and all(len(set(row[:, 0].tolist())) == 25 for row in index)


def test_spectrogram_peaks_at_the_tone_and_is_black_above_nyquist() -> None:
    """A 1 kHz tone: the STFT's loudest bin is 1 kHz; drawn on a 0-4 kHz axis at 4 kHz (Nyquist 2 kHz) the upper half of
    the picture is black and the brightest row sits a quarter of the way up."""
    rate = 4000
    log_power = log_power_spectrogram(tone(1000.0, rate)[:, 0], rate)
    n_fft = 2 * (log_power.shape[1] - 1)
    assert int(log_power[0].mean(1).argmax()) == round(1000 * n_fft / rate)
    picture = spectrogram_picture(tone(1000.0, rate), rate, max_frequency=4000.0, height=101, pad=0)
    assert picture.shape[1] == 101
    brightness = picture.mean(dim=(0, 2))
    assert float(brightness[:50].max()) == pytest.approx((0 + 0 + 4) / 3 / 127.5 - 1, abs=1e-6)  # the map's darkest colour
    assert int(brightness.argmax()) == 100 - 25


def test_waveform_picture_lights_the_signal_level() -> None:
    """A constant clip at +0.5 lights one band a quarter of the way from the top, nothing else."""
    picture = waveform_picture(torch.full((1, 1, 1000), 0.5), width=100, height=41, pad=0)
    lit = (picture[0] > 0).nonzero()[:, 0].unique().tolist()
    assert lit == [10]


def test_save_samples_writes_wavs_at_the_rate_and_pictures(tmp_path) -> None:
    """Each clip becomes a WAV at samples / duration Hz; spectrograms and waveforms are written beside them."""
    domain = AudioDomain(0.5)
    clips = torch.cat([tone(440.0, 8000, 0.5), tone(880.0, 8000, 0.5)])
    path = domain.save_samples(clips, tmp_path, "8000Hz")
    signal, rate = read_wav(tmp_path / "8000Hz" / "0001.wav")
    assert rate == 8000 and signal.shape == (1, 4000)
    torch.testing.assert_close(signal, clips[1], atol=1 / 32767, rtol=0)
    assert path == tmp_path / "8000Hz.png" and read_png(path).shape[0] == 3
    assert (tmp_path / "8000Hz_waveforms.png").exists()
    with pytest.raises(ValueError, match=r"samples must have shape \(b, 1, n\)"):
        domain.save_samples(torch.zeros(2, 1, 4, 4), tmp_path, "x")


def test_a_tiny_1d_model_trains_on_clips_and_samples_at_twice_the_rate() -> None:
    """Tones at 1 kHz: a few steps lower the loss; samples at 2 and 4 kHz are finite, in range, of the right length."""
    torch.manual_seed(0)
    domain = AudioDomain(0.25)
    process = MollifiedDDPM(domain, cosine_schedule(100), GaussianMollifier(1.0 / 250), "x0")
    model = operator_preset("tiny", channels=1, resolution=(250,))
    phases = torch.rand(32, 1, 1) * 2 * math.pi
    data = 0.8 * torch.sin(2 * math.pi * 60 * torch.linspace(0, 0.25, 250).view(1, 1, -1) + phases)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for step in range(60):
        loss = process.loss(model, data[step % 4 * 8:(step % 4 + 1) * 8], points=0.5, generator=None)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    assert sum(losses[-10:]) < 0.7 * sum(losses[:10])
    model.eval()
    for rate in (1000, 2000):
        x = sample(model, process, rate, batch=2, steps=5, generator=torch.Generator().manual_seed(0))
        assert x.shape == (2, 1, domain.grid_shape(rate)[0]) and torch.isfinite(x).all() and x.abs().max() <= 1
