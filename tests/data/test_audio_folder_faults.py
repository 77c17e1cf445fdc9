"""Audio folders against hostile and broken files: files with nothing to read are skipped with their reasons, a
folder left with nothing is refused, and header values that would make decoding huge are refused before any read."""

import logging
import re
import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile

from funcdiff.data import AudioFolder, audio


def tone(rate: int, seconds: float) -> np.ndarray:
    """A 440 Hz sine at half scale, ``seconds`` long at ``rate`` Hz."""
    return 0.5 * np.sin(2 * np.pi * 440 * np.arange(round(rate * seconds)) / rate)


def claiming_rate(path: Path, rate: int) -> Path:
    """A tiny valid 16-bit mono WAV whose header claims ``rate`` Hz (the rate and byte-rate fields patched)."""
    soundfile.write(path, tone(8000, 0.025), 8000, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    assert data[:4] == b"RIFF" and data[12:16] == b"fmt " and data[36:40] == b"data"  # the canonical 44-byte header
    data[24:32] = struct.pack("<II", rate, 2 * rate)
    path.write_bytes(bytes(data))
    return path


@pytest.fixture
def guarded(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """File names whose audio must never be read: ``SoundFile.read`` (behind ``soundfile.read`` too; headers, as
    ``soundfile.info`` reads them, stay allowed) fails the test on them."""
    names: set[str] = set()
    real_read = soundfile.SoundFile.read

    def read(self: soundfile.SoundFile, *args: object, **kwargs: object) -> object:
        assert Path(self.name).name not in names, f"{self.name} was read"
        return real_read(self, *args, **kwargs)

    monkeypatch.setattr(soundfile.SoundFile, "read", read)
    return names


def test_a_folder_of_only_broken_files_is_refused_with_the_count_and_reasons(tmp_path: Path) -> None:
    """Random bytes, an empty file, a valid header with no frames and a file cut after its header: nothing to train
    on, so a ValueError naming the folder, how many files were skipped and why (not silent clips)."""
    root = tmp_path / "broken"
    root.mkdir()
    (root / "random-bytes.wav").write_bytes(np.random.default_rng(0).bytes(300))
    (root / "zero-length.wav").write_bytes(b"")
    soundfile.write(root / "zero-frames.wav", np.zeros(0), 8000, subtype="PCM_16")
    soundfile.write(root / "whole.wav", tone(8000, 0.025), 8000, subtype="PCM_16")
    (root / "truncated.wav").write_bytes((root / "whole.wav").read_bytes()[:44])  # claims 400 bytes of data, has none
    (root / "whole.wav").unlink()
    with pytest.raises(ValueError, match=f"^no readable audio files in the 'train' split of {re.escape(str(root))}") as error:
        AudioFolder(root, resolution=8000)
    message = str(error.value)
    assert "skipped 4: " in message and "\n" not in message
    assert "2 that libsndfile cannot open (e.g. random-bytes.wav: " in message
    assert "2 with no audio frames (e.g. truncated.wav: 0 frames)" in message


@pytest.mark.parametrize("rate", [2_000_000_000, 1_000_001])
def test_a_file_claiming_an_impossible_sample_rate_is_skipped_before_any_read(
    tmp_path: Path, rate: int, guarded: set[str], caplog: pytest.LogCaptureFixture
) -> None:
    """A WAV header claiming 2 GHz (or just over 1 MHz) is skipped with a warning naming its rate, and never read
    (training resampled it into a 16 GB buffer); alone in its folder it leaves the folder's ValueError."""
    soundfile.write(tmp_path / "good.wav", tone(8000, 0.5), 8000)
    claiming_rate(tmp_path / "huge-rate.wav", rate)
    guarded.add("huge-rate.wav")
    with caplog.at_level(logging.WARNING, logger="funcdiff.data.audio_folder"):
        dataset = AudioFolder(tmp_path, resolution=8000)
    assert dataset.paths == [tmp_path / "good.wav"] and dataset.skipped == [tmp_path / "huge-rate.wav"]
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and f"huge-rate.wav: {rate} Hz" in warnings[0] and "outside [1, 1000000] Hz" in warnings[0]
    assert [tuple(dataset[i].shape) for i in range(len(dataset))] == [(1, 8000)]
    (tmp_path / "good.wav").unlink()
    reason = re.escape(f"skipped 1: 1 with a sample rate outside [1, 1000000] Hz (e.g. huge-rate.wav: {rate} Hz)")
    with pytest.raises(ValueError, match=reason):
        AudioFolder(tmp_path, resolution=8000)


def test_a_file_with_too_many_channels_is_skipped(tmp_path: Path, guarded: set[str]) -> None:
    """65 channels (over 64) is refused from the header."""
    soundfile.write(tmp_path / "good.wav", tone(8000, 0.5), 8000)
    soundfile.write(tmp_path / "many-channels.wav", np.zeros((10, 65)), 8000, subtype="PCM_16")
    guarded.add("many-channels.wav")
    dataset = AudioFolder(tmp_path, resolution=8000)
    assert dataset.skipped == [tmp_path / "many-channels.wav"] and len(dataset) == 1


def test_a_file_whose_decoding_would_exceed_the_byte_limit_is_skipped(tmp_path: Path, guarded: set[str]) -> None:
    """A 1 MHz file is fine for 1 s clips at 16 kHz, but 300 s clips would resample it through a 2.4 GB buffer (and
    more): refused, with the bytes it would take."""
    soundfile.write(tmp_path / "fast.wav", tone(1_000_000, 0.01), 1_000_000)
    assert AudioFolder(tmp_path, resolution=16000).paths == [tmp_path / "fast.wav"]
    guarded.add("fast.wav")
    reason = re.escape("1 that would take more than 2147483648 bytes to decode (e.g. fast.wav: ") + r"\d{10} bytes\)"
    with pytest.raises(ValueError, match=reason):
        AudioFolder(tmp_path, resolution=16000, duration=300.0)


@pytest.mark.parametrize(("source", "target", "length"),
                         [(44101, 16000, 4000), (50000, 1000, 500), (22050, 44100, 3000), (190092, 1743, 2884),
                          (8000, 8000, 100000)])
def test_resample_bytes_bounds_what_resample_allocates(source: int, target: int, length: int) -> None:
    """The estimate behind the decoding limit bounds resample's traced peak (a short input padded to the outputs'
    span included), and not loosely: the peak is at least a third of it."""
    x = np.random.default_rng(0).standard_normal(length * source // target // 2)
    tracemalloc.start()
    audio.resample(x, source, target, length=length)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert audio.resample_bytes(length, source, target) / 3 <= peak <= audio.resample_bytes(length, source, target)
