"""What the audio data sets share: the rate check, band-limited resampling, peak normalisation, int16 masters
and their exact box-averaging, parallel rendering, and the check for the programs that render.

An audio example is a dense field ``(1, n)`` in ``[-1, 1]``: mono, ``n`` samples over a clip of ``duration``
seconds. Built-in sets cache clips as int16 masters (each quantised with its peak at full scale) and turn a
master into a field by box-averaging in float64 and scaling its peak to `PEAK`, so the data at ``r`` samples is
the 2-block average of the data at ``2r`` up to float32 rounding.
"""

import math
import os
import shutil
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from beartype import beartype
from jaxtyping import Int16, jaxtyped
from torch.utils.data import Dataset
from tqdm import tqdm

from funcdiff._typing import Float, Tensor
from funcdiff.data.fashion_mnist import DatasetNotFoundError
from funcdiff.data.icons import cached_rows, default_cache_dir

PEAK = 0.9
"""Every clip's largest absolute value, a margin below full scale (silent clips stay zero)."""
ZEROS = 32
"""Zero crossings of the resampler's windowed sinc on each side: its half-width, in periods of the lower rate."""
ROLLOFF = 0.94
"""The resampler's cut-off as a share of the lower Nyquist frequency (the rest is its transition band)."""
BETA = 9.0
"""The Kaiser window's shape: about 90 dB of stop-band attenuation."""
BLOCK = 8192
"""Output samples `resample` computes at once: it gathers a ``(BLOCK, taps)`` block of its input."""

Result = TypeVar("Result")


class AudioDataset(Dataset):
    """Base of the audio data sets: mono fields ``(1, n)`` over `duration` seconds, ``shape = (1, n)``."""

    shape: tuple[int, int]
    duration: float

    @property
    def sample_rate(self) -> float:
        """Samples per second, ``resolution / duration``."""
        return self.shape[1] / self.duration


class MasterClips(AudioDataset):
    """Base of the built-in audio sets: 1 s clips named by `keys`, cached as int16 masters, served by `master_field`."""

    duration = 1.0
    keys: list[str]
    factor: int
    _masters: Int16[np.ndarray, "k m"]

    def _check(self, resolution: int, master_rate: int, limit: int | None) -> None:
        """Set `shape` and the box-averaging `factor` for ``resolution``, after checking it and ``limit``."""
        self.factor = check_resolution(resolution, master_rate)
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be a positive int or None, got {limit}")
        self.shape = (1, resolution)

    def _load(self, cache_dir: str | Path | None, name: str, master_rate: int, render: Callable[[list[str]], np.ndarray]) -> None:
        """Read the masters of `keys` from ``<cache_dir>/audio/<name>-<master_rate>.npz`` (raw), rendering the missing."""
        root = default_cache_dir() if cache_dir is None else Path(cache_dir)
        self.cache_path = root / "audio" / f"{name}-{master_rate}.npz"
        self._masters = cached_rows(self.cache_path, self.keys, render, what=name, compress=False)

    def __len__(self) -> int:
        """The number of clips."""
        return len(self.keys)

    @jaxtyped(typechecker=beartype)
    def __getitem__(self, index: int) -> Float[Tensor, "1 n"]:
        """Clip ``index`` as a mono field in ``[-1, 1]``."""
        return master_field(self._masters[index], self.factor)


def divisors(n: int) -> list[int]:
    """The positive divisors of ``n``, ascending."""
    return [d for d in range(1, n + 1) if n % d == 0]


def check_resolution(resolution: int, master: int) -> int:
    """The box-averaging factor from ``master`` samples a clip to ``resolution`` samples.

    Raises:
        ValueError: if ``resolution`` is not a positive divisor of ``master`` (the message lists them).
    """
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1 or master % resolution:
        raise ValueError(f"resolution (samples per clip) must divide {master}: one of {divisors(master)}, got {resolution!r}")
    return master // resolution


def peak_normalize(x: Float[np.ndarray, "*batch n"]) -> Float[np.ndarray, "*batch n"]:
    """Scale each clip (last axis) so its largest absolute value is `PEAK`; silent clips stay zero."""
    peak = np.abs(x).max(axis=-1, keepdims=True)
    return x * np.divide(PEAK, peak, out=np.zeros_like(peak, dtype=np.float64), where=peak > 0)


def quantize(clips: Float[np.ndarray, "k n"]) -> Int16[np.ndarray, "k n"]:
    """Each clip as int16 with its peak at full scale (32767), the most precise master a clip can have."""
    return np.round(peak_normalize(clips) * (32767 / PEAK)).astype(np.int16)


def master_field(master: Int16[np.ndarray, " m"], factor: int) -> Float[Tensor, "1 n"]:
    """A master clip box-averaged over ``factor`` samples (in float64) with its master peak scaled to `PEAK`.

    The scale comes from the master, not from the average, so it is the same at every rate and the rates nest.
    """
    peak = int(np.abs(master.astype(np.int32)).max())
    means = master.reshape(-1, factor).mean(axis=1, dtype=np.float64)
    return torch.from_numpy((means * (PEAK / peak if peak else 0.0)).astype(np.float32))[None]


def find_program(name: str, packages: str) -> str:
    """The path of the executable ``name``.

    Raises:
        DatasetNotFoundError: if it is not on ``PATH``; the message says ``apt-get install -y <packages>``.
    """
    path = shutil.which(name)
    if path is None:
        raise DatasetNotFoundError(f"{name} is not installed (not on PATH); install it with `apt-get install -y {packages}`")
    return path


def render_all(jobs: Sequence[Callable[[], Result]], *, progress: bool | None, desc: str) -> list[Result]:
    """Run ``jobs`` (each mostly waiting on a subprocess) on one thread per CPU, results in order, with a progress bar."""
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        done = pool.map(lambda job: job(), jobs)
        return list(tqdm(done, total=len(jobs), desc=desc, unit="job", disable=None if progress is None else not progress))


def fit(x: Float[np.ndarray, " m"], n: int, *, centre: bool) -> Float[np.ndarray, " n"]:
    """``x`` cut to its first ``n`` samples, or zero-padded to ``n`` at the end (``centre``: on both sides)."""
    if len(x) >= n:
        return x[:n]
    before = (n - len(x)) // 2 if centre else 0
    return np.pad(x, (before, n - len(x) - before))


def input_frames(length: int, source_rate: int, target_rate: int) -> int:
    """How many input samples `resample` reads to compute its first ``length`` outputs."""
    return math.ceil(length * source_rate / target_rate) + math.ceil(_half_width(source_rate, target_rate)) + 1


def resample_bytes(length: int, source_rate: int, target_rate: int) -> int:
    """An upper bound, measured, of the memory `resample` takes for ``length`` outputs from at most `input_frames`
    samples: its zero-padded input (as long as the outputs span, however short the input), eight arrays of ``length``,
    ten tables of weights (one row of taps per phase: the table and the temporaries computing it), two gathered blocks
    of input and weights, all of 8-byte values, and 64 KiB of small arrays."""
    if source_rate == target_rate:
        return 8 * length + 2**16
    up = target_rate // math.gcd(source_rate, target_rate)
    taps = 2 * math.ceil(_half_width(source_rate, target_rate)) + 1
    table, block = min(up, length) * taps, min(BLOCK, length) * taps
    padded = math.ceil(length * source_rate / target_rate) + 3 * taps
    return 8 * (padded + 8 * length + 10 * table + 2 * block) + 2**16


def _half_width(source_rate: int, target_rate: int) -> float:
    """The resampler's half-width in input samples."""
    return ZEROS / (ROLLOFF * min(1.0, target_rate / source_rate))


def resample(
    x: Float[np.ndarray, " m"], source_rate: int, target_rate: int, *, length: int | None = None
) -> Float[np.ndarray, " n"]:
    """Band-limited resampling by a Kaiser-windowed sinc, evaluated at each output time (float64).

    The low-pass cuts at `ROLLOFF` of the lower Nyquist frequency; samples outside ``x`` count as zero.

    Args:
        x: the signal at ``source_rate`` Hz.
        source_rate: its rate in Hz.
        target_rate: the output rate in Hz.
        length: how many output samples; default all of ``ceil(len(x) * target_rate / source_rate)``.

    Raises:
        ValueError: if a rate is not a positive int.
    """
    for name, rate in (("source_rate", source_rate), ("target_rate", target_rate)):
        if isinstance(rate, bool) or not isinstance(rate, int) or rate < 1:
            raise ValueError(f"{name} must be a positive int (Hz), got {rate!r}")
    n = math.ceil(len(x) * target_rate / source_rate) if length is None else length
    if source_rate == target_rate or n == 0:
        return fit(np.asarray(x, dtype=np.float64), n, centre=False)
    g = math.gcd(source_rate, target_rate)
    up, down = target_rate // g, source_rate // g
    scale = ROLLOFF * min(1.0, up / down)
    half = _half_width(source_rate, target_rate)
    taps = np.arange(-math.ceil(half), math.ceil(half) + 1)
    # Output m lies at input time m * down / up = base + phase / up; only `up` phases occur, so weigh each once.
    position = np.arange(n, dtype=np.int64) * down
    base, phase = position // up, position % up
    phases, which = np.unique(phase, return_inverse=True)
    offset = taps[None, :] - phases[:, None] / up
    window = np.i0(BETA * np.sqrt(np.clip(1 - (offset / half) ** 2, 0, None))) / np.i0(BETA)
    weights = scale * np.sinc(scale * offset) * window * (np.abs(offset) <= half)
    padded = np.pad(np.asarray(x, dtype=np.float64), (len(taps), max(0, int(base[-1]) + 2 * len(taps) - len(x))))
    out = np.empty(n)
    for start in range(0, n, BLOCK):  # bounds the gathered (rows, taps) block to BLOCK x taps values
        rows = slice(start, start + BLOCK)
        out[rows] = np.einsum("ij,ij->i", padded[base[rows, None] + taps + len(taps)], weights[which[rows]])
    return out
