"""Audio helpers and folders: band-limited resampling, peak normalisation, exact nesting of int16 masters, cut and
pad, the rate check, the missing-program error, and folders of WAV/FLAC/OGG files with corrupt ones skipped."""

import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

import funcdiff.data.audio as audio
from funcdiff.data import AudioFolder, DatasetNotFoundError, split_indices
from funcdiff.data.audio import (
    PEAK,
    check_resolution,
    find_program,
    fit,
    input_frames,
    master_field,
    peak_normalize,
    quantize,
    resample,
)
from funcdiff.domains import box_average


def tone(frequency: float, rate: int, seconds: float, phase: float = 0.0) -> np.ndarray:
    """A unit sine of ``frequency`` Hz sampled at ``rate`` Hz."""
    return np.sin(2 * np.pi * frequency * np.arange(round(rate * seconds)) / rate + phase)


@pytest.mark.parametrize(("source", "target"), [(22050, 16000), (44100, 16000), (8000, 16000), (48000, 1000), (32000, 11025)])
def test_resample_keeps_a_pass_band_tone_and_removes_one_above_nyquist(source: int, target: int) -> None:
    """A sine at 0.85 of the lower Nyquist frequency comes out as the same sine to 1e-4 (frequency, amplitude and
    phase); one at 1.1 x the target's Nyquist frequency is attenuated by more than 80 dB (away from the ends)."""
    lower_nyquist = min(source, target) / 2
    kept = resample(tone(0.85 * lower_nyquist, source, 1.0), source, target)
    assert len(kept) == target
    middle = slice(target // 10, -target // 10)
    np.testing.assert_allclose(kept[middle], tone(0.85 * lower_nyquist, target, 1.0)[middle], atol=1e-4, rtol=0)
    if target < source:
        removed = resample(tone(1.1 * target / 2, source, 1.0), source, target)
        assert 20 * np.log10(np.abs(removed[middle]).max()) < -80


def test_resample_length_identity_and_errors() -> None:
    """``length`` picks the output size (reading `input_frames` suffices); equal rates copy; bad rates raise."""
    x = tone(440, 44100, 0.5)
    full = resample(x, 44100, 16000)
    head = resample(x[: input_frames(1000, 44100, 16000)], 44100, 16000, length=1000)
    np.testing.assert_allclose(head, full[:1000], atol=1e-12, rtol=0)
    np.testing.assert_array_equal(resample(x, 8000, 8000, length=10), x[:10])
    with pytest.raises(ValueError, match="target_rate must be a positive int"):
        resample(x, 44100, 0)


def test_peak_normalize_quantize_and_fit() -> None:
    """Peaks go to 0.9 (silence stays 0); int16 masters peak at 32767; ``fit`` cuts the end or pads (centred or not)."""
    clips = np.stack([0.1 * tone(100, 1000, 1.0), np.zeros(1000)])
    normal = peak_normalize(clips)
    assert np.abs(normal[0]).max() == pytest.approx(PEAK) and not normal[1].any()
    assert np.abs(quantize(clips).astype(np.int32)).max(axis=1).tolist() == [32767, 0]
    x = np.arange(1.0, 5.0)
    np.testing.assert_array_equal(fit(x, 2, centre=True), [1, 2])
    np.testing.assert_array_equal(fit(x, 7, centre=False), [1, 2, 3, 4, 0, 0, 0])
    np.testing.assert_array_equal(fit(x, 7, centre=True), [0, 1, 2, 3, 4, 0, 0])


@pytest.mark.parametrize("factor", [1, 2, 5, 16])
def test_master_fields_nest_exactly_under_box_averaging(factor: int) -> None:
    """The 2-block average of a master's field at factor f is its field at 2f to 1e-6, and the peak scale is the
    master's at every rate."""
    master = np.random.default_rng(factor).integers(-32768, 32768, 32000).astype(np.int16)
    fine, coarse = master_field(master, factor), master_field(master, 2 * factor)
    assert fine.shape == (1, 32000 // factor) and fine.dtype == torch.float32
    torch.testing.assert_close(box_average(fine[None], 2)[0], coarse, atol=1e-6, rtol=0)
    assert master_field(master, 1).abs().max() == pytest.approx(PEAK)
    assert not master_field(np.zeros(8, dtype=np.int16), 2).any()


@pytest.mark.usefixtures("unchecked")
def test_resolution_check_lists_the_allowed_rates() -> None:
    """Divisors of the master rate give the box-averaging factor; anything else (a float too) names them all."""
    assert check_resolution(8000, 32000) == 4
    for bad in (3000, 0, 16000.0, True):
        with pytest.raises(ValueError, match=r"must divide 32000: one of \[1, 2, 4, 5, 8, .*16000, 32000\]"):
            check_resolution(bad, 32000)


def test_missing_program_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    """An absent binary is a DatasetNotFoundError that says which apt-get line installs it."""
    monkeypatch.setattr(audio.shutil, "which", lambda name: None)
    with pytest.raises(DatasetNotFoundError, match="install it with `apt-get install -y fluidsynth fluid-soundfont-gm`"):
        find_program("fluidsynth", "fluidsynth fluid-soundfont-gm")


@pytest.fixture
def sound_tree(tmp_path: Path) -> Path:
    """Audio files of several rates, lengths, channel counts and formats, a corrupt WAV, and a text file."""
    root = tmp_path / "sounds"
    (root / "sub" / "deep").mkdir(parents=True)
    stereo = np.stack([tone(440, 44100, 1.5), 0.5 * tone(440, 44100, 1.5)], axis=1)
    soundfile.write(root / "long-stereo.wav", 0.3 * stereo, 44100)
    soundfile.write(root / "sub" / "short.flac", 0.5 * tone(300, 8000, 0.25), 8000)
    soundfile.write(root / "sub" / "deep" / "mid.ogg", 0.5 * tone(200, 22050, 0.8), 22050)
    soundfile.write(root / "sub" / "quiet.wav", np.zeros(100), 16000)
    (root / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot audio at all")
    (root / "readme.txt").write_text("not audio")
    return root


def test_audio_folder_reads_every_format_skips_the_corrupt_file_and_warns_once(
    sound_tree: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """All four readable files (they hash into the train split), the corrupt one skipped with one warning."""
    with caplog.at_level(logging.WARNING, logger="funcdiff.data.audio_folder"):
        dataset = AudioFolder(sound_tree, resolution=4000)
    assert [p.relative_to(sound_tree).as_posix() for p in dataset.paths] == [
        "long-stereo.wav", "sub/deep/mid.ogg", "sub/quiet.wav", "sub/short.flac"
    ]
    assert dataset.skipped == [sound_tree / "broken.wav"]
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "skipped 1 unreadable audio file(s)" in warnings[0]
    assert len(AudioFolder(sound_tree, resolution=4000, limit=2)) == 2


def test_audio_folder_splits_by_relative_path(tmp_path: Path) -> None:
    """Train and test are disjoint, cover every file, and follow `split_indices` on the relative paths."""
    names = [f"{i // 10}/{i}.wav" for i in range(40)]
    for name in names:
        (tmp_path / name).parent.mkdir(exist_ok=True)
        soundfile.write(tmp_path / name, np.full(10, 0.1), 1000)
    train, test = (AudioFolder(tmp_path, resolution=100, split=split) for split in ("train", "test"))
    held_out = [p.relative_to(tmp_path).as_posix() for p in test.paths]
    assert sorted(held_out) == sorted(names[i] for i in split_indices(names, "test", fraction=0.1, seed=0))
    assert len(train) + len(test) == 40 and not set(train.paths) & set(test.paths) and held_out


def test_audio_folder_clips_are_resampled_cut_padded_and_normalised(sound_tree: Path) -> None:
    """Mixed to mono at the resolution's rate, resolution * duration samples: the long tone is cut with its frequency kept, the short one zero
    after its end, silence stays silent, every clip peaks at 0.9."""
    dataset = AudioFolder(sound_tree, resolution=2000, duration=1.5)
    assert dataset.shape == (1, 3000) and dataset.sample_rate == 2000
    clips = {p.name: dataset[i] for i, p in enumerate(dataset.paths)}
    for name, clip in clips.items():
        assert clip.shape == (1, 3000) and clip.dtype == torch.float32
        assert clip.abs().max() == pytest.approx(0.0 if name == "quiet.wav" else PEAK, abs=1e-6)
    spectrum = np.abs(np.fft.rfft(clips["long-stereo.wav"][0].numpy()))
    assert np.argmax(spectrum) / dataset.duration == pytest.approx(440, abs=1)
    tail = clips["short.flac"][0, 600:]  # the file ends at 0.25 s = sample 500; the filter has rung out by 0.3 s
    assert tail.abs().max() < 1e-4 * PEAK
    assert clips["short.flac"][0, 100:400].abs().max() > 0.5


def test_audio_folder_rejects_bad_arguments_and_empty_folders(sound_tree: Path, tmp_path: Path) -> None:
    """Clear errors for a missing folder, a clip that is not a whole number of samples, a bad limit, and no readable
    files."""
    with pytest.raises(FileNotFoundError, match="does not exist"):
        AudioFolder(tmp_path / "nowhere", resolution=100)
    with pytest.raises(ValueError, match="whole number of samples"):
        AudioFolder(sound_tree, resolution=1000, duration=0.0003)
    with pytest.raises(ValueError, match="limit must be"):
        AudioFolder(sound_tree, resolution=1000, limit=0)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "bad.flac").write_bytes(b"fLaC?")
    with pytest.raises(ValueError, match=f"no readable audio files in the 'train' split of {tmp_path / 'empty'}"):
        AudioFolder(tmp_path / "empty", resolution=1000)
