"""The audio study on notes whose answer is known: other real clips score at the floor and gain all the detail above
the training band (gain ~1), their band-limited resampling gains none of it (gain 0), noise scores far from the floor;
the semitone distance and the resampler on closed forms; the written report."""

import json
import math
import shutil

import numpy as np
import pytest
import torch

from funcdiff.data.notes import SOUNDFONT
from funcdiff.evaluation import (
    AudioStudy, band_limited, describe_audio, evaluate_audio, real_sets, run_audio_study, semitone_distance,
)

LIMIT = 48  # notes per split: two FluidSynth runs render them in about a second, and 16 per set are drawn from these
NUM = 16
RATES = (4000, 8000)
needs_notes = pytest.mark.skipif(
    shutil.which("fluidsynth") is None or not SOUNDFONT.is_file(),
    reason="rendering notes needs FluidSynth and its soundfont (apt-get install -y fluidsynth fluid-soundfont-gm)",
)


def test_semitone_distance_closed_forms():
    f0 = torch.tensor([110.0, 220.0, 330.0, 440.0])
    assert semitone_distance(f0, f0) == 0.0
    assert semitone_distance(f0, 2 * f0) == pytest.approx(12.0)  # an octave up
    assert semitone_distance(f0, f0.flip(0) * 2 ** (1 / 12)) == pytest.approx(1.0)  # order does not matter
    # Unequal sizes: half of the mass of {100, 200} must move an octave to reach {100}.
    assert semitone_distance(torch.tensor([100.0]), torch.tensor([100.0, 200.0])) == pytest.approx(6.0)
    with pytest.raises(ValueError, match="positive"):
        semitone_distance(torch.tensor([0.0, 100.0]), f0)


def test_band_limited_resampling_keeps_a_tone_below_nyquist():
    """A 440 Hz tone at 4 kHz, resampled to 8 kHz, is the same tone sampled at 8 kHz (away from the zero-padded ends)."""
    t4, t8 = torch.arange(4000, dtype=torch.float64) / 4000, torch.arange(8000, dtype=torch.float64) / 8000
    tone = lambda t: 0.5 * torch.sin(2 * math.pi * 440 * t)  # noqa: E731
    clips = torch.stack([tone(t4), -tone(t4)]).float()[:, None]
    up = band_limited(clips, 4000, 8000, length=8000)
    assert up.shape == (2, 1, 8000) and up.dtype == torch.float32
    inner = slice(400, 7600)
    assert torch.allclose(up[0, 0, inner].double(), tone(t8)[inner], atol=1e-4)
    assert torch.equal(up[1], -up[0])


@pytest.fixture(scope="module")
def notes(tmp_path_factory) -> dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Per rate: held-out clips, the floor's training clips, and another draw of training clips (a perfect model)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("FUNCDIFF_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    out = {}
    for rate in RATES:
        reference, other = real_sets("notes", rate, NUM, seed=0, limit=LIMIT)
        out[rate] = (reference, other, real_sets("notes", rate, NUM, seed=1, limit=LIMIT)[1])
    mp.undo()
    return out


def study_of(samples: dict[int, torch.Tensor], notes) -> AudioStudy:
    """`run_audio_study` of ``samples`` against the fixture's real clips, trained at 4 kHz."""
    return run_audio_study(samples, lambda rate: notes[rate][:2], training_rate=4000)


@needs_notes
def test_real_clips_score_at_the_floor_and_gain_all_detail(notes):
    study = study_of({rate: notes[rate][2] for rate in RATES}, notes)
    for row in study.rows:
        assert row.samples.spectral < 1.2 * row.floor.spectral
        assert row.samples.mel_fd < 1.3 * row.floor.mel_fd
        assert row.pitch.f0_distance < row.data_pitch.f0_distance + 1.0  # within a semitone of the floor
    high = study.row(8000)
    assert high.samples.high_band < 1.2 * high.floor.high_band < high.baseline.high_band / 3
    assert abs(high.detail_gain - 1) < 0.15  # 1.01 with these 16 clips


@needs_notes
def test_resampled_clips_gain_no_detail(notes):
    low = notes[4000][2]
    study = study_of({4000: low, 8000: band_limited(low, 4000, 8000, length=8000)}, notes)
    row = study.row(8000)
    assert row.detail_gain == 0.0  # the samples are the baseline itself
    assert row.samples.high_band > 3 * row.floor.high_band
    assert row.samples.spectral > 3 * row.floor.spectral  # the empty band dominates the whole-band distance too


@needs_notes
def test_detail_gain_grows_with_the_high_band_kept(notes):
    low, high = notes[4000][2], notes[8000][2]
    resampled = band_limited(low, 4000, 8000, length=8000)
    gains = [study_of({4000: low, 8000: resampled + k * (high - resampled)}, notes).row(8000).detail_gain for k in (0.0, 0.01, 1.0)]
    assert gains[0] < gains[1] < gains[2]


@needs_notes
def test_noise_scores_far_from_the_floor(notes):
    generator = torch.Generator().manual_seed(0)
    study = study_of({rate: 0.3 * torch.randn(NUM, 1, rate, generator=generator) for rate in RATES}, notes)
    for row in study.rows:
        assert row.samples.spectral > 1.5 * row.floor.spectral
        assert row.samples.mel_fd > 2 * row.floor.mel_fd
        assert row.pitch.median_hnr < row.data_pitch.median_hnr - 20  # no harmonic structure
        assert row.quiet_db == pytest.approx(20 * math.log10(0.3), abs=1.5) and row.data_quiet_db < row.quiet_db - 20
    assert study.row(8000).samples.high_band > 1.5 * study.row(8000).floor.high_band


@needs_notes
def test_rows_at_or_below_the_training_rate_have_no_baseline(notes):
    study = study_of({4000: notes[4000][2]}, notes)
    row = study.row(4000)
    assert row.baseline is None and row.samples.high_band is None and row.detail_gain is None
    with pytest.raises(KeyError, match="no row at 8000"):
        study.row(8000)


@needs_notes
def test_invalid_samples_are_refused(notes):
    with pytest.raises((ValueError, TypeError)):  # the shape annotation, or without runtime checks, the function
        study_of({4000: torch.zeros(4, 2, 4000)}, notes)
    with pytest.raises(ValueError, match="shape"):
        study_of({4000: torch.zeros(4, 1, 8000)}, notes)
    with pytest.raises(ValueError, match="empty"):
        study_of({}, notes)
    with pytest.raises(ValueError, match="at least 2"):
        evaluate_audio({4000: torch.zeros(1, 1, 4000)}, data="notes", training_rate=4000, out_dir="unused")


@needs_notes
def test_report_files_and_scores_round_trip(notes, tmp_path):
    samples = {rate: notes[rate][2] for rate in RATES}
    study, path = evaluate_audio(samples, data="notes", training_rate=4000, out_dir=tmp_path, data_limit=LIMIT,
                                 seconds_per_sample={8000: 0.5}, details={"checkpoint": "stand-in"})
    assert path == tmp_path / "report.md"
    for name in ("report.md", "scores.json", "spectrograms.png", "spectra.png"):
        assert (tmp_path / name).stat().st_size > 0
    scores = json.loads((tmp_path / "scores.json").read_text())
    assert scores.pop("details") == {"data": "notes", "samples per rate": NUM, "seed": 0, "checkpoint": "stand-in"}
    assert scores == study.to_dict()
    assert study.row(4000).samples == study_of(samples, notes).row(4000).samples  # the same real sets
    text = path.read_text()
    assert "| rate Hz |" in text and "| 8000 |" in text and "| 0.500 |" in text
    assert len(describe_audio(study).splitlines()) == len(RATES)
    assert np.isfinite(scores["rows"][1]["detail_gain"])


@needs_notes
def test_eval_scores_folders_of_wav_clips(notes, tmp_path, capsys, monkeypatch):
    """``funcdiff eval --samples DIR DIR --data notes`` reads WAV folders at their own rates and scores them (here
    real clips, written to WAV and read back, whose pitch is the data's); stereo clips are refused in one line."""
    from funcdiff.commands import main
    from funcdiff.domains.io import write_wav

    monkeypatch.setenv("FUNCDIFF_CACHE", str(tmp_path.parent.parent / "cache"))
    folders = []
    for rate in RATES:
        folder = tmp_path / f"{rate}Hz"
        for i, clip in enumerate(notes[rate][2]):
            write_wav(clip, folder / f"{i:03d}.wav", sample_rate=rate)
        folders.append(str(folder))
    assert main(["eval", "--samples", *folders, "--data", "notes", "--data-limit", str(LIMIT), "--num", str(NUM),
                 "--out-dir", str(tmp_path / "e")]) == 0
    rows = json.loads((tmp_path / "e" / "scores.json").read_text())["rows"]
    assert [row["rate"] for row in rows] == list(RATES)
    assert rows[0]["pitch"]["median_f0"] == pytest.approx(rows[0]["data_pitch"]["median_f0"], rel=0.25)
    write_wav(torch.zeros(2, 100), tmp_path / "stereo" / "a.wav", sample_rate=4000)
    assert main(["eval", "--samples", str(tmp_path / "stereo"), "--data", "notes", "--out-dir", str(tmp_path / "f")]) == 1
    assert "must be mono" in capsys.readouterr().err
