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
from funcdiff.data.audio import AudioDataset, input_frames, peak_normalize, resample
from funcdiff.data.split import Split, split_indices
from funcdiff.registry import register

logger = logging.getLogger(__name__)

EXTENSIONS = frozenset({".wav", ".flac", ".ogg"})
TEST_FRACTION = 0.1
"""The share of files held out, by a fixed hash (seed 0) of each relative path."""


@register("audio-folder")
@final
class AudioFolder(AudioDataset):
    """Every audio file below ``root`` (recursive) as a mono field ``(1, resolution * duration)``, peak-normalised to 0.9.

    Each file is read with libsndfile (the ``soundfile`` package), its channels averaged, resampled band-limited
    (`funcdiff.data.audio.resample`) to ``resolution`` Hz, and cut to its first ``duration`` seconds or
    zero-padded at the end. Files libsndfile cannot open are skipped when indexing, listed in `skipped`, and
    counted in one warning.

    Args:
        root: the folder; files in subfolders count too.
        resolution: the sample rate in Hz (as for every audio data set: a resolution is a rate).
        split: "train" or "test" (about 10 % of the files), by a fixed hash of each relative path.
        duration: seconds per clip; ``resolution * duration`` must be a whole number of samples.
        limit: use only the first ``limit`` readable files of the split (sorted by path; later files go unchecked).

    Raises:
        FileNotFoundError: if ``root`` is not a folder.
        ValueError: if an argument is out of range, or the split holds no readable file.
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
        self.skipped: list[Path] = []
        paths = sorted(p for p in self.root.rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file())
        keys = [p.relative_to(self.root).as_posix() for p in paths]
        chosen = [paths[i] for i in split_indices(keys, split, fraction=TEST_FRACTION, seed=0)]
        self.paths = list(islice((p for p in chosen if self._readable(p)), limit))  # checks only as many as it needs
        if self.skipped:
            logger.warning("skipped %d unreadable audio file(s) in %s, e.g. %s", len(self.skipped), self.root, self.skipped[0])
        if not self.paths:
            raise ValueError(f"no readable audio files in the {split!r} split of {self.root} (extensions {sorted(EXTENSIONS)})")

    def _readable(self, path: Path) -> bool:
        """Whether libsndfile can open ``path``; if not, add it to `skipped`."""
        try:
            soundfile.info(str(path))
        except soundfile.LibsndfileError:
            self.skipped.append(path)
            return False
        return True

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
