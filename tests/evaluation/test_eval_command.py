"""``funcdiff eval`` end to end on a tiny model: the resolution study's report, scoring folders of images, and the
errors a user meets first."""

import json
from pathlib import Path

import pytest
from PIL import Image

from funcdiff.commands import main
from funcdiff.factory import TrainConfig
from tests.training.conftest import train_config

QUICK = ["--num", "8", "--sample-steps", "2", "--data-limit", "40"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A tiny ddpm trained for a few steps on 16 px icons."""
    root = tmp_path_factory.mktemp("eval")
    mp = pytest.MonkeyPatch()
    mp.setenv("FUNCDIFF_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    config = TrainConfig(data="icons", data_limit=32, resolution=16, preset="tiny", batch_size=8, lr=2e-3, steps=4,
                         diffusion_steps=50, log_every=0, checkpoint_every=0, sample_count=2, sample_steps=2,
                         out_dir=str(root / "run"))
    train_config(config, progress=False)
    mp.undo()
    return root / "run" / "checkpoint"


def test_resolution_study_writes_the_report(checkpoint: Path, tmp_path: Path, capsys) -> None:
    """--resolution-study samples at r, 2r and 4r and writes the table, scores and pictures."""
    out = tmp_path / "study"
    assert main(["eval", "--checkpoint", str(checkpoint), "--resolution-study", *QUICK, "--out-dir", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "detail gain" in printed and f"report: {out / 'report.md'}" in printed
    scores = json.loads((out / "scores.json").read_text())
    assert [row["resolution"] for row in scores["rows"]] == [16, 32, 64]
    assert scores["rows"][0]["detail_gain"] is None and scores["rows"][0]["bicubic"] is None
    for row in scores["rows"][1:]:
        assert isinstance(row["detail_gain"], float) and row["box_to_floor"] > 0 and row["seconds_per_sample"] > 0
        assert len(row["samples"]["swd"]) == len(row["floor"]["swd"]) == {32: 2, 64: 3}[row["resolution"]]
    assert scores["details"]["checkpoint"] == str(checkpoint) and scores["details"]["samples per resolution"] == 8
    report = (out / "report.md").read_text()
    assert report.count("\n| 16 |") == report.count("\n| 32 |") == report.count("\n| 64 |") == 1
    for picture in ("swd_levels.png", "spectra.png", "samples.png"):
        with Image.open(out / picture) as image:
            assert image.size[0] > 100
        assert f"({picture})" in report


def test_folders_of_samples_are_scored(checkpoint: Path, tmp_path: Path, capsys) -> None:
    """Folders written by ``funcdiff sample`` are scored at their own resolutions; the smallest is the baseline's."""
    assert main(["sample", "--checkpoint", str(checkpoint), "--resolutions", "16", "32", "--num", "8", "--sample-steps", "2",
                 "--out-dir", str(tmp_path / "s")]) == 0
    folders = [str(tmp_path / "s" / "16px"), str(tmp_path / "s" / "32px")]
    assert main(["eval", "--samples", *folders, "--data", "icons", "--data-limit", "40", "--out-dir", str(tmp_path / "e")]) == 0
    rows = json.loads((tmp_path / "e" / "scores.json").read_text())["rows"]
    assert [row["resolution"] for row in rows] == [16, 32] and rows[1]["bicubic"] is not None
    assert rows[1]["seconds_per_sample"] is None


@pytest.mark.parametrize("args, message", [
    ([], "either --checkpoint"),
    (["--samples", "nowhere"], "needs --data"),
    (["--samples", "nowhere", "--data", "icons"], "no PNG images"),
])
def test_bad_requests_are_one_line_errors(args: list[str], message: str, tmp_path: Path, capsys) -> None:
    assert main(["eval", *args, "--out-dir", str(tmp_path / "e")]) == 1
    assert message in capsys.readouterr().err


def test_too_few_real_examples_are_refused(checkpoint: Path, tmp_path: Path, capsys) -> None:
    assert main(["eval", "--checkpoint", str(checkpoint), "--num", "30", "--sample-steps", "1", "--data-limit", "20",
                 "--out-dir", str(tmp_path / "e")]) == 1
    assert "fewer than num=30" in capsys.readouterr().err
