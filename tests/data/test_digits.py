"""Spoken digits: labels, held-out speakers, exact nesting across rates, centred words, and the missing-eSpeak error."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import funcdiff.data.audio as audio
from funcdiff.data import DIGITS, DatasetNotFoundError, SpokenDigits, is_held_out
from funcdiff.data.digits import SPEAKERS, TAKES
from funcdiff.domains import box_average

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="eSpeak NG is not installed (apt-get install -y espeak-ng)")


@pytest.fixture(scope="module")
def digit_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for the module with the first 40 clips of each split, spoken once."""
    root = tmp_path_factory.mktemp("cache")
    if shutil.which("espeak-ng") is not None:
        for split in ("train", "test"):
            SpokenDigits(resolution=16000, split=split, limit=40, cache_dir=root, progress=False)
    return root


@needs_espeak
def test_digits_have_labels_and_held_out_speakers(digit_cache: Path) -> None:
    """Items run speaker, digit, take; labels are the digits; test speakers are the hashed ones, never in train."""
    train = SpokenDigits(resolution=16000, limit=40, cache_dir=digit_cache)
    test = SpokenDigits(resolution=16000, split="test", limit=40, cache_dir=digit_cache)
    assert train.labels.tolist() == [d for d in range(len(DIGITS)) for _ in range(TAKES)] * 2
    assert [key.split("/")[1] for key in train.keys] == [str(label) for label in train.labels]
    assert not set(train.speakers) & set(test.speakers)
    assert all(is_held_out(s, fraction=0.1, seed=0) for s in test.speakers)
    assert not any(is_held_out(s, fraction=0.1, seed=0) for s in train.speakers)
    assert 2 <= sum(is_held_out(s, fraction=0.1, seed=0) for s in SPEAKERS) <= 10


@needs_espeak
def test_digits_nest_exactly_and_are_centred_words(digit_cache: Path) -> None:
    """Box-averaging the clips at 2r by 2 gives the clips at r to 1e-6 (16 kHz down to 1 kHz); each word sits in
    the middle of its second, silent at both ends, and peaks at 0.9 at 16 kHz."""
    fields = {r: torch.stack(list(SpokenDigits(resolution=r, limit=12, cache_dir=digit_cache))) for r in (16000, 8000, 4000, 2000, 1000)}
    for r in (8000, 4000, 2000, 1000):
        torch.testing.assert_close(box_average(fields[2 * r], 2), fields[r], atol=1e-6, rtol=0)
    clips = fields[16000][:, 0].double().numpy()
    np.testing.assert_allclose(np.abs(clips).max(axis=1), 0.9, atol=1e-6)
    for clip in clips:
        loud = np.flatnonzero(np.abs(clip) > 0.009)
        assert loud[0] > 0 and loud[-1] < 15999
        assert abs((loud[0] + loud[-1]) / 2 - 8000) < 80, "the word is centred"


@needs_espeak
@pytest.mark.slow
def test_the_full_digit_set(tmp_path: Path) -> None:
    """All 960 clips (about 10-20 s to speak): every speaker on one side, digits balanced, no word cut at 1 s."""
    train, test = (SpokenDigits(resolution=16000, split=split, cache_dir=tmp_path, progress=False) for split in ("train", "test"))
    assert len(train) + len(test) == len(SPEAKERS) * len(DIGITS) * TAKES
    assert set(train.speakers) | set(test.speakers) == set(SPEAKERS) and not set(train.speakers) & set(test.speakers)
    assert np.bincount(train.labels).tolist() == [len(train) // len(DIGITS)] * len(DIGITS)
    clips = torch.stack(list(train))[:, 0]
    assert clips[:, :16].abs().max() == 0 and clips[:, -16:].abs().max() == 0


@pytest.mark.usefixtures("unchecked")
def test_missing_espeak_and_bad_rates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rendering without eSpeak NG names the apt-get line; a rate that does not divide 16000 lists those that do."""
    with pytest.raises(ValueError, match=r"must divide 16000: one of \[1, 2, 4, 5, 8, .*, 8000, 16000\]"):
        SpokenDigits(resolution=22050, cache_dir=tmp_path)
    monkeypatch.setattr(audio.shutil, "which", lambda name: None)
    with pytest.raises(DatasetNotFoundError, match="espeak-ng is not installed .* `apt-get install -y espeak-ng`"):
        SpokenDigits(resolution=1000, limit=1, cache_dir=tmp_path)
