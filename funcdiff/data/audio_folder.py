"""Audio folders: any tree of WAV/FLAC/OGG files, at any rate and channel count, as mono clips of fixed duration."""

import logging
import math
from itertools import islice
from pathlib import Path
from typing import final

import numpy as np
import soundfile
import torch
from beartype import beartype
from jaxtyping import jaxtyped

from funcdiff._typing import Float, Tensor
from funcdiff.data.audio import AudioDataset, input_frames, peak_normalize, resample, resample_bytes
from funcdiff.data.split import Split, split_indices
from funcdiff.registry import register

logger = logging.getLogger(__name__)

EXTENSIONS = frozenset({".wav", ".flac", ".ogg"})
TEST_FRACTION = 0.1
"""The share of files held out, by a fixed hash (seed 0) of each relative path."""
MAX_RATE = 1_000_000
"""The highest sample rate a file may claim, in Hz: above ultrasound recorders (500 kHz); a header claiming 2 GHz made
the resampler ask for 16 GB."""
MAX_CHANNELS = 64
"""The most channels a file may claim: microphone arrays and ambisonics stay within it (libsndfile allows 1024)."""
MAX_DECODED_BYTES = 2**31
"""The most memory (2 GiB) one clip may take to decode, from the header's values, checked before any read: its frames
read as float64 (all channels) plus what `resample` takes to bring them to the training rate (`resample_bytes`). A
second of a 1 MHz, 64-channel file at 16 kHz takes about 1 GiB; a mono second at up to 192 kHz, under 0.25 GiB."""


@register("audio-folder")
@final
class AudioFolder(AudioDataset):
    """Every audio file below ``root`` (recursive) as a mono field ``(1, resolution * duration)``, peak-normalised to 0.9.

    Each file is read with libsndfile (the ``soundfile`` package), its channels averaged, resampled band-limited
    (`funcdiff.data.audio.resample`) to ``resolution`` Hz, and cut to its first ``duration`` seconds or
    zero-padded at the end. Files that libsndfile cannot open, that hold no frames, or whose header claims a sample
    rate over `MAX_RATE`, more than `MAX_CHANNELS` channels, or a clip that takes more than `MAX_DECODED_BYTES` to
    decode are skipped when indexing (from the header: no audio is read), listed in `skipped`, and counted with
    their reasons in one warning.

    Args:
        root: the folder; files in subfolders count too.
        resolution: the sample rate in Hz (as for every audio data set: a resolution is a rate).
        split: "train" or "test" (about 10 % of the files), by a fixed hash of each relative path.
        duration: seconds per clip; ``resolution * duration`` must be a whole number of samples.
        limit: use only the first ``limit`` readable files of the split (sorted by path; later files go unchecked).

    Raises:
        FileNotFoundError: if ``root`` is not a folder.
        ValueError: if an argument is out of range, or the split holds no readable file (naming how many were skipped and why).
    """

    def __init__(
        self, root: str | Path, *, resolution: int, split: Split = "train", duration: float = 1.0, limit: int | None = None
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"audio folder {self.root} does not exist")
        if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1:
            raise ValueError(f"resolution (the sample rate in Hz) must be a positive int, got {resolution!r}")
        if not duration > 0 or not math.isfinite(duration):
            raise ValueError(f"duration must be a positive number of seconds, got {duration!r}")
        samples = resolution * duration
        if abs(samples - round(samples)) > 1e-9 * samples or round(samples) < 1:
            raise ValueError(f"resolution * duration must be a whole number of samples, got {resolution} * {duration} = {samples}")
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be a positive int or None, got {limit}")
        self.shape = (1, round(samples))
        self.duration = float(duration)
        paths = sorted(p for p in self.root.rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file())
        keys = [p.relative_to(self.root).as_posix() for p in paths]
        chosen = [paths[i] for i in split_indices(keys, split, fraction=TEST_FRACTION, seed=0)]
        problems: dict[Path, tuple[str, str]] = {}

        def usable(path: Path) -> bool:
            problem = _problem(path, self.shape[1], round(self.sample_rate))
            if problem is not None:
                problems[path] = problem
            return problem is None

        self.paths = list(islice(filter(usable, chosen), limit))  # checks only as many as it needs
        self.skipped: list[Path] = list(problems)
        reasons = _summary(problems, self.root)
        if problems:
            logger.warning("skipped %d unreadable audio file(s) in %s: %s", len(problems), self.root, reasons)
        if not self.paths:
            raise ValueError(f"no readable audio files in the {split!r} split of {self.root} (extensions {sorted(EXTENSIONS)})"
                             + (f"; skipped {len(problems)}: {reasons}" if problems else ""))

    def __len__(self) -> int:
        """The number of files."""
        return len(self.paths)

    @jaxtyped(typechecker=beartype)
    def __getitem__(self, index: int) -> Float[Tensor, "1 n"]:
        """File ``index`` as a mono field in ``[-1, 1]``."""
        path = self.paths[index]
        n, rate = self.shape[1], round(self.sample_rate)
        with soundfile.SoundFile(str(path)) as file:
            source_rate = file.samplerate
            audio = file.read(input_frames(n, source_rate, rate), dtype="float64", always_2d=True)
        clip = resample(audio.mean(axis=1), source_rate, rate, length=n)  # past a short file's end: zeros (and its tail)
        return torch.from_numpy(peak_normalize(clip).astype(np.float32))[None]


def _problem(path: Path, length: int, rate: int) -> tuple[str, str] | None:
    """Why ``path`` cannot give a clip of ``length`` samples at ``rate`` Hz, as (kind, this file's value), from its
    header alone; None if it can."""
    try:
        info = soundfile.info(str(path))
    except soundfile.LibsndfileError as error:
        return "that libsndfile cannot open", error.error_string
    if not 1 <= info.samplerate <= MAX_RATE:
        return f"with a sample rate outside [1, {MAX_RATE}] Hz", f"{info.samplerate} Hz"
    if not 1 <= info.channels <= MAX_CHANNELS:
        return f"with a channel count outside [1, {MAX_CHANNELS}]", f"{info.channels} channels"
    if info.frames < 1:
        return "with no audio frames", f"{info.frames} frames"
    read = 8 * min(info.frames, input_frames(length, info.samplerate, rate)) * info.channels  # float64, every channel
    size = read + resample_bytes(length, info.samplerate, rate)
    if size > MAX_DECODED_BYTES:
        return f"that would take more than {MAX_DECODED_BYTES} bytes to decode", f"{size} bytes"
    return None


def _summary(problems: dict[Path, tuple[str, str]], root: Path) -> str:
    """The skipped files counted by kind of problem, each kind with its first file (relative to ``root``) and value."""
    kinds: dict[str, list[tuple[Path, str]]] = {}
    for path, (kind, value) in problems.items():
        kinds.setdefault(kind, []).append((path, value))
    return ", ".join(f"{len(files)} {kind} (e.g. {files[0][0].relative_to(root).as_posix()}: {files[0][1]})"
                     for kind, files in kinds.items())
