"""The built-in ``digits`` data set: the words "zero" to "nine" spoken by eSpeak NG voices (an SC09-like set)."""

import io
import subprocess
from pathlib import Path
from typing import final

import numpy as np
import soundfile
from jaxtyping import Int16

from funcdiff._typing import Float
from funcdiff.data.audio import MasterClips, find_program, fit, quantize, render_all, resample
from funcdiff.data.split import Split, split_indices
from funcdiff.registry import register

MASTER_RATE = 16000
"""Digits are resampled to this rate in Hz (eSpeak writes 22,050 Hz); every rate that divides it is exact."""
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
VOICES = ("en-us", "en-gb", "en-gb-scotland", "en-029")
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5")
SPEAKERS = tuple(f"{voice}+{variant}" for voice in VOICES for variant in VARIANTS)
"""eSpeak NG voices with a variant each, ``"en-us+f3"``: 48 speakers."""
TAKES = 2
"""Takes per speaker and digit, each at its own pitch and speed (`take_settings`)."""
TEST_FRACTION = 0.1
"""The share of speakers held out, all their words together; fixed (seed 0)."""
SILENCE = 0.01
"""Samples below this share of a word's peak before its first and after its last loud sample are trimmed."""


def take_settings(speaker: int, take: int) -> tuple[int, int]:
    """eSpeak's pitch (0-99) and speed (words a minute) for take ``take`` of speaker number ``speaker``: spread
    over pitch 25-84 and speed 120-199 by two coprime strides, so neighbours differ."""
    k = TAKES * speaker + take
    return 25 + 37 * k % 60, 120 + 53 * k % 80


@register("digits")
@final
class SpokenDigits(MasterClips):
    """Spoken digits as mono fields ``(1, n)`` over 1 s, each clip peak-normalised to 0.9, word centred.

    Every speaker (`SPEAKERS`) says every digit in `TAKES` takes (`take_settings`). eSpeak NG's
    22,050 Hz output is resampled band-limited to 16 kHz, trimmed of silence, centred in the 1 s clip (cut at
    the end if longer) and cached as int16 masters (peak at full scale) in ``<cache_dir>/audio/digits-16000.npz``;
    clips missing from the cache are rendered and added. The field at ``n`` samples is the box-average of the
    master (float64) scaled by 0.9 over the master's peak, so the data at ``n`` is the 2-block average of the data
    at ``2n`` up to float32 rounding. eSpeak's amplitude is not varied: peak normalisation would undo it. Items
    run through speakers, then digits, then takes.

    Args:
        resolution: samples per clip, equal to the sample rate in Hz; must divide 16000.
        split: "train" (about 90 % of the speakers) or "test" (the held-out speakers), by a fixed hash.
        limit: use only the first ``limit`` clips of the split.
        cache_dir: the cache root; default `default_cache_dir`.
        progress: show a progress bar while rendering; None shows one only on a terminal.

    Attributes:
        labels: the digit of each item (0-9), an index into `DIGITS`.
        vocabulary: ``{"digit": DIGITS}``, the labels' names (`funcdiff.data.labelled`).
        label_rows: ``labels`` as a column ``(n, 1)``.
        speakers: the speaker of each item, ``"voice+variant"``.
        keys: ``"speaker/digit/take"`` of each item, its name in the cache.
        cache_path: the cache file.
        duration: seconds per clip (1.0).

    Raises:
        DatasetNotFoundError: if clips must be rendered and eSpeak NG is absent (``apt-get install -y espeak-ng``).
    """

    def __init__(
        self,
        *,
        resolution: int,
        split: Split = "train",
        limit: int | None = None,
        cache_dir: str | Path | None = None,
        progress: bool | None = None,
    ) -> None:
        self._check(resolution, MASTER_RATE, limit)
        clips = [(speaker, digit, take) for speaker in SPEAKERS for digit in range(len(DIGITS)) for take in range(TAKES)]
        chosen = split_indices([speaker for speaker, _, _ in clips], split, fraction=TEST_FRACTION, seed=0)[:limit]
        self.speakers = [clips[i][0] for i in chosen]
        self.labels = np.array([clips[i][1] for i in chosen], dtype=np.int64)
        self.vocabulary, self.label_rows = {"digit": DIGITS}, self.labels[:, None]
        self.keys = [f"{speaker}/{digit}/{take}" for speaker, digit, take in (clips[i] for i in chosen)]
        self._load(cache_dir, "digits", MASTER_RATE, lambda keys: render_digits(keys, progress))


def render_digits(keys: list[str], progress: bool | None = None) -> Int16[np.ndarray, "k 16000"]:
    """Speak the clips named ``"voice+variant/digit/take"`` with eSpeak NG: int16 masters, 1 s at 16 kHz.

    One eSpeak process per clip (about 10 ms each), one at a time per CPU.

    Raises:
        DatasetNotFoundError: if eSpeak NG is absent.
    """
    espeak = find_program("espeak-ng", "espeak-ng")
    jobs = []
    for key in keys:
        speaker, digit, take = key.split("/")
        pitch, speed = take_settings(SPEAKERS.index(speaker), int(take))
        command = [espeak, "--stdout", "-v", speaker, "-p", str(pitch), "-s", str(speed), DIGITS[int(digit)]]
        jobs.append(lambda command=command: _speak(command))
    return quantize(np.stack(render_all(jobs, progress=progress, desc="speaking digits")))


def _speak(command: list[str]) -> Float[np.ndarray, " 16000"]:
    """Run one eSpeak command, resample its WAV to 16 kHz, trim the silence and centre the word in 1 s."""
    wav = subprocess.run(command, check=True, capture_output=True).stdout
    audio, rate = soundfile.read(io.BytesIO(wav), dtype="float64")
    word = resample(audio, rate, MASTER_RATE)
    loud = np.flatnonzero(np.abs(word) > SILENCE * np.abs(word).max())
    return fit(word[loud[0] : loud[-1] + 1] if len(loud) else word, MASTER_RATE, centre=True)
