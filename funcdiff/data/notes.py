"""The built-in ``notes`` data set: single notes of recorded instruments (FluidR3 General MIDI soundfont)."""

import math
import os
import struct
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import final

import numpy as np
from jaxtyping import Int16

from funcdiff.data.audio import MasterClips, find_program, quantize, render_all
from funcdiff.data.fashion_mnist import DatasetNotFoundError
from funcdiff.data.split import Split, split_indices
from funcdiff.registry import register

SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
INSTALL = "fluidsynth fluid-soundfont-gm"
MASTER_RATE = 32000
"""Notes are rendered at this rate in Hz; every rate that divides it is exact box-averaging away."""
PROGRAMS = {
    0: "acoustic grand piano", 4: "electric piano", 11: "vibraphone", 12: "marimba", 19: "church organ",
    24: "nylon guitar", 25: "steel guitar", 33: "finger bass", 40: "violin", 42: "cello", 48: "string ensemble",
    56: "trumpet", 65: "alto sax", 68: "oboe", 71: "clarinet", 73: "flute",
}
"""General MIDI programs (0-based) and their instruments."""
PITCHES = range(48, 85)
"""MIDI pitches C3 to C6 (60 is middle C, 261.6 Hz)."""
NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
VELOCITIES = (40, 80, 120)
TEST_FRACTION = 0.1
"""The share of (program, pitch) pairs held out, all velocities together; fixed (seed 0)."""
HOLD = 0.75
"""Seconds from note-on to note-off; the release tail sounds in the rest of the clip."""
SPACING_MS = 1250
"""Milliseconds between note onsets in a rendered MIDI file: a multiple of FluidSynth's 64-sample block at
32 kHz (2 ms), so every onset lands at the same offset into its clip."""
RUN = 400
"""Notes rendered by one FluidSynth process at most (about 130 MB of raw output)."""


@register("notes")
@final
class NoteDataset(MasterClips):
    """Single notes (program, pitch, velocity) as mono fields ``(1, n)``, each clip peak-normalised to 0.9.

    Each clip lasts 1 s from the note-on; the note is held 0.75 s and its release tail fills the rest. Notes
    are rendered by FluidSynth (reverb and chorus off) from ``/usr/share/sounds/sf2/FluidR3_GM.sf2`` at 32 kHz,
    mixed to mono and cached as int16 masters (peak at full scale) in ``<cache_dir>/audio/notes-32000.npz``;
    notes missing from the cache are rendered and added to it. The field at ``n`` samples is the box-average of
    the master (in float64) scaled by 0.9 over the master's peak, so the data at ``n`` is the 2-block average of
    the data at ``2n`` up to float32 rounding. Items run through `PROGRAMS`, then `PITCHES`, then `VELOCITIES`.

    Args:
        resolution: samples per clip, equal to the sample rate in Hz; must divide 32000.
        split: "train" (about 90 % of the (program, pitch) pairs) or "test" (the rest), by a fixed hash.
        limit: use only the first ``limit`` notes of the split.
        programs: General MIDI programs to use, a subset of `PROGRAMS`; default all 16.
        cache_dir: the cache root; default `default_cache_dir`.
        progress: show a progress bar while rendering; None shows one only on a terminal.

    Attributes:
        notes: ``(program, pitch, velocity)`` of each item.
        keys: ``"program-pitch-velocity"`` of each item, its name in the cache.
        vocabulary: ``{"instrument": ..., "pitch": ...}``, the names of every instrument of `PROGRAMS` and of every
            pitch of `PITCHES` ("C3" to "C6", `pitch_name`), the labels' names (`funcdiff.data.labelled`).
        label_rows: each item's instrument and pitch, indices into ``vocabulary``, ``(n, 2)``.
        cache_path: the cache file.
        duration: seconds per clip (1.0).

    Raises:
        DatasetNotFoundError: if notes must be rendered and FluidSynth or the soundfont is absent (install:
            ``apt-get install -y fluidsynth fluid-soundfont-gm``).
    """

    def __init__(
        self,
        *,
        resolution: int,
        split: Split = "train",
        limit: int | None = None,
        programs: Sequence[int] | None = None,
        cache_dir: str | Path | None = None,
        progress: bool | None = None,
    ) -> None:
        self._check(resolution, MASTER_RATE, limit)
        chosen_programs = PROGRAMS if programs is None else set(programs)
        if not chosen_programs or not set(chosen_programs) <= PROGRAMS.keys():
            raise ValueError(f"programs must be a non-empty subset of {sorted(PROGRAMS)}, got {programs!r}")
        notes = [(p, k, v) for p in PROGRAMS if p in chosen_programs for k in PITCHES for v in VELOCITIES]
        chosen = split_indices([f"{p}-{k}" for p, k, _ in notes], split, fraction=TEST_FRACTION, seed=0)[:limit]
        self.notes = [notes[i] for i in chosen]
        self.keys = [f"{p}-{k}-{v}" for p, k, v in self.notes]
        self.vocabulary = {"instrument": tuple(PROGRAMS.values()), "pitch": tuple(pitch_name(k) for k in PITCHES)}
        programs_index = {program: i for i, program in enumerate(PROGRAMS)}
        self.label_rows = np.array([(programs_index[p], k - PITCHES.start) for p, k, _ in self.notes], dtype=np.int64).reshape(-1, 2)
        self._load(cache_dir, "notes", MASTER_RATE, lambda keys: render_notes(keys, progress))


def pitch_name(pitch: int) -> str:
    """The scientific name of a MIDI pitch: 60 is "C4" (middle C), 61 "C#4", 48 "C3"."""
    return f"{NOTE_NAMES[pitch % 12]}{pitch // 12 - 1}"


def render_notes(keys: list[str], progress: bool | None = None) -> Int16[np.ndarray, "k 32000"]:
    """Render the notes named ``"program-pitch-velocity"`` as int16 masters (1 s at 32 kHz, peak at full scale).

    The notes are cut into runs of consecutive notes, at least one per CPU and at most about `RUN` notes each,
    each rendered from one MIDI file by one FluidSynth process (loading the soundfont costs as much as ~100 notes).

    Raises:
        DatasetNotFoundError: if FluidSynth or the soundfont is absent.
    """
    fluidsynth = find_program("fluidsynth", INSTALL)
    if not SOUNDFONT.is_file():
        raise DatasetNotFoundError(f"the soundfont {SOUNDFONT} is absent; install it with `apt-get install -y {INSTALL}`")
    notes = [tuple(int(part) for part in key.split("-")) for key in keys]
    cpus = os.cpu_count() or 1
    runs = np.array_split(np.arange(len(notes)), min(len(notes), cpus * math.ceil(len(notes) / (RUN * cpus))))
    jobs = [lambda run=run: _render(fluidsynth, [notes[i] for i in run]) for run in runs]
    return np.concatenate(render_all(jobs, progress=progress, desc="rendering notes"))


def _render(fluidsynth: str, notes: list[tuple[int, ...]]) -> Int16[np.ndarray, "k 32000"]:
    """Render ``(program, pitch, velocity)`` notes with FluidSynth: one int16 master each, mixed to mono."""
    events = []
    for i, (program, pitch, velocity) in enumerate(notes):
        onset = i * SPACING_MS
        events += [
            (onset, bytes([0xC0, program])),
            (onset, bytes([0x90, pitch, velocity])),
            (onset + round(HOLD * 1000), bytes([0x80, pitch, 0])),
            (onset + 1000, bytes([0xB0, 120, 0])),  # All Sound Off once the clip is over: no tail leaks into the next
        ]
    with tempfile.TemporaryDirectory() as tmp:
        midi = Path(tmp) / "notes.mid"
        midi.write_bytes(midi_file(events))
        # Raw float32 stereo on stdout; 8192-frame writes (-z) instead of 64 make it 5x faster, events stay 64-frame exact.
        command = [fluidsynth, "-n", "-i", "-q", "-R", "0", "-C", "0", "-g", "0.5", "-z", "8192", "-r", str(MASTER_RATE)]
        raw = subprocess.run([*command, "-O", "float", "-T", "raw", "-E", "little", "-F", "-", str(SOUNDFONT), str(midi)],
                             check=True, capture_output=True).stdout
    frames = np.frombuffer(raw, dtype="<f4").reshape(-1, 2)
    starts = np.arange(len(notes)) * (SPACING_MS * MASTER_RATE // 1000)
    frames = np.pad(frames, ((0, max(0, starts[-1] + MASTER_RATE - len(frames))), (0, 0)))  # if the file ends early
    clips = frames[starts[:, None] + np.arange(MASTER_RATE)]
    return quantize(clips[..., 0] + clips[..., 1].astype(np.float64))


def midi_file(events: list[tuple[int, bytes]]) -> bytes:
    """A format-0 Standard MIDI File of ``(millisecond, message)`` events (120 bpm, 500 ticks a beat: 1 ms ticks)."""
    track = b"\x00\xff\x51\x03" + (500_000).to_bytes(3, "big")  # tempo: 500,000 us a beat
    now = 0
    for time, message in sorted(events, key=lambda event: event[0]):
        track += _variable_length(time - now) + message
        now = time
    track += b"\x00\xff\x2f\x00"  # end of track
    return b"MThd" + struct.pack(">IHHH", 6, 0, 1, 500) + b"MTrk" + struct.pack(">I", len(track)) + track


def _variable_length(value: int) -> bytes:
    """``value`` as a MIDI variable-length quantity: 7 bits a byte, most significant first, high bit on all but the last."""
    groups = [value & 0x7F]
    while value := value >> 7:
        groups.append(0x80 | value & 0x7F)
    return bytes(reversed(groups))
