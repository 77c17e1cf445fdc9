"""Notes: the MIDI writer, the rendered pitches, exact nesting across rates, the fixed split, the cache, and the
errors when FluidSynth or its soundfont is missing."""

import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

import funcdiff.data.audio as audio
import funcdiff.data.notes as notes
from funcdiff.data import DatasetNotFoundError, NoteDataset, is_held_out, midi_file
from funcdiff.domains import box_average

needs_fluidsynth = pytest.mark.skipif(
    shutil.which("fluidsynth") is None or not notes.SOUNDFONT.is_file(),
    reason="FluidSynth or its soundfont is not installed (apt-get install -y fluidsynth fluid-soundfont-gm)",
)
CLEAN = (0, 40, 56, 71, 73)
"""Piano, violin, trumpet, clarinet and flute: their fundamental is their pitch (the organ adds a sub-octave)."""


def parse_midi(data: bytes) -> tuple[tuple[int, int, int], list[tuple[int, bytes]]]:
    """The header ``(format, tracks, division)`` and the ``(tick, event)`` list of a one-track MIDI file."""
    assert data[:4] == b"MThd" and struct.unpack(">I", data[4:8])[0] == 6
    header = struct.unpack(">HHH", data[8:14])
    assert data[14:18] == b"MTrk"
    (length,) = struct.unpack(">I", data[18:22])
    track, position, tick, events = data[22:], 0, 0, []
    assert len(track) == length
    while position < len(track):
        delta = 0
        while True:
            byte = track[position]
            position += 1
            delta = delta << 7 | byte & 0x7F
            if byte < 0x80:
                break
        tick += delta
        status = track[position]
        if status == 0xFF:
            size = 3 + track[position + 2]
        else:
            size = {0x80: 3, 0x90: 3, 0xB0: 3, 0xC0: 2}[status & 0xF0]
        events.append((tick, track[position : position + size]))
        position += size
    return header, events


def test_midi_file_parses_back() -> None:
    """Header, tempo, events at their millisecond ticks (deltas up to three bytes long) and the end of track."""
    events = [(0, bytes([0xC0, 40])), (0, bytes([0x90, 60, 100])), (127, bytes([0x80, 60, 0])), (20000, bytes([0xB0, 120, 0]))]
    header, parsed = parse_midi(midi_file(events))
    assert header == (0, 1, 500)
    assert parsed[0] == (0, b"\xff\x51\x03" + (500_000).to_bytes(3, "big"))
    assert parsed[1:-1] == events
    assert parsed[-1] == (20000, b"\xff\x2f\x00")


@pytest.fixture(scope="module")
def note_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache holding the clean instruments (both splits), rendered once for the module."""
    root = tmp_path_factory.mktemp("cache")
    if shutil.which("fluidsynth") is not None and notes.SOUNDFONT.is_file():
        for split in ("train", "test"):
            NoteDataset(resolution=32000, split=split, programs=CLEAN, cache_dir=root, progress=False)
    return root


@needs_fluidsynth
@pytest.mark.parametrize("program", sorted(set(notes.PROGRAMS) - {19}))
def test_rendered_notes_sound_at_their_pitch(note_cache: Path, program: int) -> None:
    """The autocorrelation pitch of every velocity-80 note in 0.05-0.5 s is its MIDI pitch within a semitone, for
    every instrument but the church organ (19), whose 16-foot stop sounds an octave below."""
    dataset = NoteDataset(resolution=16000, programs=(program,), cache_dir=note_cache)
    for i, (_, pitch, velocity) in enumerate(dataset.notes):
        if velocity == 80:
            error = 12 * np.log2(autocorrelation_pitch(dataset[i][0].double().numpy(), 16000) / (440 * 2 ** ((pitch - 69) / 12)))
            assert abs(error) < 1, f"program {program} pitch {pitch}: off by {error:.2f} semitones"


def autocorrelation_pitch(x: np.ndarray, rate: int, low: float = 50, high: float = 1500) -> float:
    """The fundamental in Hz: the first autocorrelation lag within 10 % of the best one in ``[1/high, 1/low]`` s,
    refined to its local peak and a parabola through it."""
    segment = x[int(0.05 * rate) : int(0.5 * rate)]
    segment = segment - segment.mean()
    n = len(segment)
    correlation = np.fft.irfft(np.abs(np.fft.rfft(segment, 2 * n)) ** 2)[:n]
    lags = np.arange(n)
    allowed = (lags >= rate / high) & (lags <= rate / low)
    lag = np.flatnonzero(allowed & (correlation >= 0.9 * correlation[allowed].max()))[0]
    while correlation[lag + 1] > correlation[lag]:
        lag += 1
    a, b, c = correlation[lag - 1 : lag + 2]
    return rate / (lag + 0.5 * (a - c) / (a - 2 * b + c))


@needs_fluidsynth
def test_notes_nest_exactly_and_peak_at_0_9(note_cache: Path) -> None:
    """Box-averaging the notes at 2r by 2 gives the notes at r to 1e-6, from 32 kHz down to 1 kHz; the master peaks at
    0.9 exactly, and no clip carries the previous note's tail into its first 2 ms."""
    fields = {
        r: torch.stack(list(NoteDataset(resolution=r, programs=(0, 73), limit=12, cache_dir=note_cache)))
        for r in (32000, 16000, 8000, 4000, 2000, 1000)
    }
    for r in (16000, 8000, 4000, 2000, 1000):
        assert fields[r].shape == (12, 1, r)
        torch.testing.assert_close(box_average(fields[2 * r], 2), fields[r], atol=1e-6, rtol=0)
    torch.testing.assert_close(fields[32000].abs().amax(dim=-1), torch.full((12, 1), 0.9), atol=1e-7, rtol=0)
    assert fields[32000][..., :64].abs().max() == 0


@needs_fluidsynth
def test_split_by_program_and_pitch_is_disjoint_and_stable(note_cache: Path) -> None:
    """Train and test share no (program, pitch); each side is the fixed hash of its key, whatever programs are
    chosen; all velocities of a pair stay together; ``limit`` keeps a prefix."""
    train = NoteDataset(resolution=1000, programs=CLEAN, cache_dir=note_cache)
    test = NoteDataset(resolution=1000, split="test", programs=CLEAN, cache_dir=note_cache)
    pairs = {split: {(p, k) for p, k, _ in data.notes} for split, data in (("train", train), ("test", test))}
    assert not pairs["train"] & pairs["test"] and len(pairs["train"] | pairs["test"]) == len(CLEAN) * len(notes.PITCHES)
    assert all(is_held_out(f"{p}-{k}", fraction=0.1, seed=0) for p, k in pairs["test"])
    assert len(train) == 3 * len(pairs["train"]) and len(test) == 3 * len(pairs["test"])
    assert 0.03 < len(test) / (len(train) + len(test)) < 0.2
    flute = NoteDataset(resolution=1000, split="test", programs=(73,), cache_dir=note_cache)
    assert flute.notes == [n for n in test.notes if n[0] == 73]
    assert NoteDataset(resolution=1000, limit=7, programs=CLEAN, cache_dir=note_cache).keys == train.keys[:7]


def test_pitches_are_named_as_musicians_name_them() -> None:
    """MIDI 60 is middle C, C4; the names run in semitones; the vocabulary spans C3 to C6."""
    assert [notes.pitch_name(k) for k in (48, 60, 61, 69, 84)] == ["C3", "C4", "C#4", "A4", "C6"]


@needs_fluidsynth
def test_each_note_is_labelled_by_its_instrument_and_pitch(note_cache: Path) -> None:
    """`label_rows` index the vocabulary: each item's instrument name and pitch name are those of its MIDI note."""
    data = NoteDataset(resolution=1000, programs=(71, 73), limit=20, cache_dir=note_cache)
    for (program, pitch, _), (instrument, name) in zip(data.notes, data.label_rows):
        assert data.vocabulary["instrument"][instrument] == notes.PROGRAMS[program]
        assert data.vocabulary["pitch"][name] == notes.pitch_name(pitch)


@needs_fluidsynth
def test_cached_notes_need_no_fluidsynth(note_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Once cached, notes load without FluidSynth: nothing is rendered again."""
    monkeypatch.setattr(audio.shutil, "which", lambda name: None)
    assert len(NoteDataset(resolution=8000, programs=(71,), cache_dir=note_cache)) > 0


@pytest.mark.usefixtures("unchecked")
def test_missing_fluidsynth_soundfont_and_bad_arguments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rendering without FluidSynth or without the soundfont names the apt-get line; bad arguments are ValueErrors."""
    with pytest.raises(ValueError, match=r"must divide 32000: one of \[1, 2, 4, 5, 8"):
        NoteDataset(resolution=44100, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="programs must be a non-empty subset"):
        NoteDataset(resolution=1000, programs=(1,), cache_dir=tmp_path)
    with pytest.raises(ValueError, match="limit must be"):
        NoteDataset(resolution=1000, limit=0, cache_dir=tmp_path)
    monkeypatch.setattr(notes, "SOUNDFONT", tmp_path / "absent.sf2")
    monkeypatch.setattr(audio.shutil, "which", lambda name: "/usr/bin/fluidsynth")
    with pytest.raises(DatasetNotFoundError, match="absent.sf2 is absent; install it with `apt-get install -y fluidsynth fluid-soundfont-gm`"):
        NoteDataset(resolution=1000, limit=1, cache_dir=tmp_path)
    monkeypatch.setattr(audio.shutil, "which", lambda name: None)
    with pytest.raises(DatasetNotFoundError, match="fluidsynth is not installed .* `apt-get install -y fluidsynth fluid-soundfont-gm`"):
        NoteDataset(resolution=1000, limit=1, cache_dir=tmp_path)
