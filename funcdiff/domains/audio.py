"""AudioDomain: clips as functions of time on ``[0, 1]``, discretised at a sample rate; written as WAV with pictures."""

from pathlib import Path
from typing import Any, final

import torch

from funcdiff._typing import DenseField, Float, PointIndex, Tensor
from funcdiff.domains.base import Domain, SubsampleScheme
from funcdiff.domains.grid import GridDomain
from funcdiff.domains.io import write_png, write_wav
from funcdiff.domains.sound_pictures import rate_comparison, spectrogram_picture, waveform_picture
from funcdiff.registry import component_dict, register


@register("audio")
@final
class AudioDomain(Domain):
    """Clips of ``duration`` seconds as functions ``[0, 1] -> R^channels`` of time; a grid is a sample rate.

    A resolution is a sample rate in Hz: the grid at rate ``f`` has ``round(f * duration)`` samples, each the average
    of the signal over its sample period, so rates nest by box-averaging as pixels do. Subsampling, white noise and
    mollifiers are those of a 1-D `GridDomain` (a mollifier's sigma is in units of the clip: ``sigma_ms / 1000 /
    duration``).

    Args:
        duration: the clip length in seconds.
        channels: 1 (mono) or more.
        value_range: the range samples lie in.
        scheme: how training points are drawn (see `GridDomain`).
    """

    unit = "Hz"

    def __init__(self, duration: float = 1.0, channels: int = 1, value_range: tuple[float, float] = (-1.0, 1.0),
                 scheme: SubsampleScheme = "uniform") -> None:
        if isinstance(duration, bool) or not isinstance(duration, (int, float)) or not 0 < duration < float("inf"):
            raise ValueError(f"duration must be a positive number of seconds, got {duration!r}")
        self.grid = GridDomain(1, channels, value_range, scheme)
        self.duration = float(duration)
        self.ndim, self.channels, self.value_range = 1, self.grid.channels, self.grid.value_range

    def __repr__(self) -> str:
        return f"AudioDomain(duration={self.duration}, channels={self.channels}, value_range={self.value_range}, scheme={self.grid.scheme!r})"

    def to_dict(self) -> dict[str, Any]:
        """The JSON-safe configuration that rebuilds this domain."""
        return component_dict(self.kind, duration=self.duration, channels=self.channels, value_range=self.value_range,
                              scheme=self.grid.scheme)

    def sample_rate(self, samples: int) -> float:
        """The rate in Hz of a clip held at ``samples`` points."""
        return samples / self.duration

    def label(self, shape: tuple[int, ...]) -> str:
        """The sample rate of the grid ``shape``, e.g. ``8000Hz``."""
        return f"{self.sample_rate(shape[0]):g}Hz"

    def grid_shape(self, resolution: int | tuple[int, ...]) -> tuple[int, ...]:
        """The grid of a sample rate in Hz (an int), or a grid given as its ``(samples,)`` shape."""
        if isinstance(resolution, tuple):
            return self.grid.grid_shape(resolution)
        if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1:
            raise ValueError(f"a sample rate must be a positive int (Hz), got {resolution!r}")
        samples = round(resolution * self.duration)
        if samples < 1:
            raise ValueError(f"{resolution} Hz gives no sample in {self.duration} s")
        return (samples,)

    def draw_index(self, batch: int, shape: tuple[int, ...], n: int | float, *, generator: torch.Generator | None = None,
                   device: torch.device | str | None = None) -> PointIndex:
        """Sample positions of ``n`` distinct samples per clip (see `GridDomain.draw_index`)."""
        return self.grid.draw_index(batch, shape, n, generator=generator, device=device)

    def white_noise(self, batch: int, shape: tuple[int, ...], reference_shape: tuple[int, ...], *,
                    generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32,
                    device: torch.device | str | None = None) -> DenseField:
        """White noise with per-sample variance ``N / N_ref`` (docs/math.md §2)."""
        return self.grid.white_noise(batch, shape, reference_shape, generator=generator, dtype=dtype, device=device)

    def comparison(self, batches: list[Float[Tensor, "_b _c _n"]]) -> tuple[Float[Tensor, "3 _h _w"], str] | None:
        """Spectrograms of the same seeds at each sample rate on one frequency axis (`rate_comparison`)."""
        if len(batches) < 2:
            return None
        return rate_comparison(batches, [self.sample_rate(b.shape[-1]) for b in batches]), "rates.png"

    def save_samples(self, samples: DenseField, directory: str | Path, prefix: str, *, individual: bool = True) -> Path:
        """Write ``<prefix>.png`` (spectrograms), ``<prefix>_waveforms.png`` and, with ``individual``, one WAV per clip
        in ``<prefix>/``; returns the spectrograms' path."""
        if samples.ndim != 3 or samples.shape[1] != self.channels:
            raise ValueError(f"samples must have shape (b, {self.channels}, n), got {tuple(samples.shape)}")
        directory, rate = Path(directory), self.sample_rate(samples.shape[-1])
        if individual:
            for i, clip in enumerate(samples):
                write_wav(clip, directory / prefix / f"{i:04d}.wav", sample_rate=round(rate))
        write_png(waveform_picture(samples), directory / f"{prefix}_waveforms.png")
        return write_png(spectrogram_picture(samples, rate), directory / f"{prefix}.png")
