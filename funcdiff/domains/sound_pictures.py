"""Pictures of clips: log-power spectrograms on a common frequency axis, and waveform envelopes."""

import math

import torch

from funcdiff._typing import Float, Tensor
from funcdiff.domains.io import image_grid

WINDOW_SECONDS = 0.032
"""The STFT window (32 ms at every rate, so that spectrograms at different rates have the same resolution in Hz)."""

_COLOURS = torch.tensor([[0, 0, 4], [80, 18, 123], [183, 55, 121], [252, 137, 97], [252, 253, 191]], dtype=torch.float32)
"""Anchors of a dark-to-bright colour map (black, purple, red, orange, pale yellow), as in the magma map."""


def power_spectrogram(clips: Float[Tensor, "b n"], sample_rate: float | int, *, window_seconds: float = WINDOW_SECONDS) -> Float[Tensor, "b f t"]:
    """Power of the short-time Fourier transform (Hann window of ``window_seconds``, hop a quarter of it), float64."""
    n_fft = max(8, 2 ** round(math.log2(window_seconds * sample_rate)))
    if clips.shape[-1] < n_fft:
        raise ValueError(f"clips of {clips.shape[-1]} samples are shorter than the {n_fft}-sample STFT window")
    window = torch.hann_window(n_fft, dtype=torch.float64, device=clips.device)
    spec = torch.stft(clips.double(), n_fft, hop_length=n_fft // 4, window=window, center=False, return_complex=True)
    return spec.abs().square() / window.square().sum()


def log_power_spectrogram(clips: Float[Tensor, "b n"], sample_rate: float | int, *, window_seconds: float = WINDOW_SECONDS) -> Float[Tensor, "b f t"]:
    """``log10`` of `power_spectrogram`, floored at 1e-12, as float32."""
    return power_spectrogram(clips, sample_rate, window_seconds=window_seconds).clamp_min(1e-12).log10().float()


def colour_map(values: Float[Tensor, "h w"]) -> Float[Tensor, "3 h w"]:
    """Values in ``[0, 1]`` as colours in ``[-1, 1]`` along the dark-to-bright map."""
    position = values.clamp(0, 1) * (len(_COLOURS) - 1)
    low = position.floor().long().clamp_max(len(_COLOURS) - 2)
    frac = (position - low).unsqueeze(-1)
    rgb = _COLOURS[low] * (1 - frac) + _COLOURS[low + 1] * frac
    return (rgb / 127.5 - 1).permute(2, 0, 1)


def spectrogram_picture(
    clips: Float[Tensor, "b c n"], sample_rate: float | int, *, max_frequency: float | int | None = None, per_row: int = 4,
    dynamic_range: float = 8.0, height: int = 128, pad: int = 2,
) -> Float[Tensor, "3 H W"]:
    """Spectrograms of the first channel of each clip, tiled ``per_row`` to a row, low frequencies at the bottom.

    The frequency axis runs from 0 to ``max_frequency`` (default the Nyquist frequency ``sample_rate / 2``) over
    ``height`` rows, so pictures of clips at different rates drawn with one ``max_frequency`` line up in Hz: above a
    clip's own Nyquist frequency the picture is black. Colours span ``dynamic_range`` decades of power (8 = 80 dB)
    below the loudest cell of all the clips.
    """
    nyquist = sample_rate / 2
    top = nyquist if max_frequency is None else max_frequency
    if top <= 0 or height < 2:
        raise ValueError(f"need max_frequency > 0 and height >= 2, got {max_frequency}, {height}")
    log_power = log_power_spectrogram(clips[:, 0], sample_rate)
    level = ((log_power - log_power.amax() + dynamic_range) / dynamic_range).clamp(0, 1)
    bins = level.shape[1]
    wanted = torch.linspace(0, top, height, dtype=torch.float64) / nyquist * (bins - 1)
    inside = wanted <= bins - 1
    rows = torch.zeros(level.shape[0], height, level.shape[2])
    rows[:, inside] = level[:, wanted[inside].round().long()]
    coloured = torch.stack([colour_map(r.flip(0)) for r in rows])
    return image_grid(coloured, nrow=min(per_row, len(coloured)), pad=pad, fill=1.0)


def waveform_picture(clips: Float[Tensor, "b c n"], *, width: int = 512, height: int = 48, pad: int = 2) -> Float[Tensor, "1 H W"]:
    """Each clip's first channel as a min-max envelope ``width`` columns wide (values in [-1, 1] bottom to top), one
    clip per row, white on black."""
    b, _, n = clips.shape
    columns = min(width, n)
    edges = torch.linspace(0, n, columns + 1).long()
    picture = torch.full((1, b * (height + pad) + pad, columns + 2 * pad), -1.0)
    rows = torch.arange(height, dtype=torch.float32).view(height, 1)
    for i, clip in enumerate(clips[:, 0].float().clamp(-1, 1)):
        low = torch.stack([clip[edges[j]: max(edges[j + 1], edges[j] + 1)].min() for j in range(columns)])
        high = torch.stack([clip[edges[j]: max(edges[j + 1], edges[j] + 1)].max() for j in range(columns)])
        lit = (rows >= (1 - high) / 2 * (height - 1) - 0.5) & (rows <= (1 - low) / 2 * (height - 1) + 0.5)
        picture[0, pad + i * (height + pad): pad + i * (height + pad) + height, pad: pad + columns] = lit.float() * 2 - 1
    return picture


def rate_comparison(batches: list[Float[Tensor, "_b c _n"]], sample_rates: list[float | int], *, count: int = 4) -> Float[Tensor, "3 H W"]:
    """One row per batch (e.g. per sample rate): spectrograms of its first ``count`` clips on one frequency axis, up to
    the highest rate's Nyquist frequency, so that what each rate adds above the others shows as a band."""
    if len(batches) != len(sample_rates) or not batches:
        raise ValueError(f"need one sample rate per batch, got {len(batches)} batches and {len(sample_rates)} rates")
    top = max(sample_rates) / 2
    rows = [spectrogram_picture(b[:count], rate, max_frequency=top, per_row=count) for b, rate in zip(batches, sample_rates)]
    width = max(r.shape[-1] for r in rows)
    rows = [torch.nn.functional.interpolate(r[None], size=(r.shape[1], width), mode="nearest")[0] for r in rows]
    return torch.cat(rows, dim=1)
