"""Refused and failed runs leave everything as it was: an --overwrite that is refused (or whose first step fails)
deletes nothing, a refused sample keeps its folder's config, a resume changes only the flags given, and no lock or
empty folder is left behind."""

import json
from pathlib import Path

import pytest
import torch

from funcdiff.commands import main
from funcdiff.factory import build_run
from funcdiff.training import Trainer
from funcdiff.training.estimate import Estimate

from tests.training.conftest import replace

TINY = ["--data", "icons", "--data-limit", "8", "--resolution", "16", "--preset", "tiny", "--batch-size", "4",
        "--diffusion-steps", "50", "--checkpoint-every", "0", "--sample-count", "2", "--sample-steps", "2"]


def run_files(run: Path) -> dict[str, bytes]:
    """Every file of a run folder and its bytes."""
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


def test_a_refused_overwrite_deletes_nothing(tmp_path: Path, capsys, monkeypatch) -> None:
    """``--overwrite`` of a good run with a run the estimate refuses (256 px, measured at 10 s a step here, for a
    hundred million steps) leaves the good run exactly as it was, and no lock."""
    run = tmp_path / "r"
    assert main(["train", *TINY, "--steps", "2", "--out-dir", str(run)]) == 0
    before = run_files(run)
    assert {"checkpoint/model.safetensors", "config.json", "metrics.jsonl"} <= set(before)
    monkeypatch.setattr("funcdiff.commands.train.estimate_training_step", lambda *a, **k: Estimate(10.0, 1e9))
    code = main(["train", *TINY, "--data-limit", "2", "--resolution", "256", "--steps", "100000000", "--overwrite",
                 "--out-dir", str(run)])
    assert code == 1 and "pass --yes" in capsys.readouterr().err
    assert run_files(run) == before


def test_an_overwrite_whose_first_step_fails_deletes_nothing(tiny_config, monkeypatch) -> None:
    """The old run is replaced only once the new run's first step has completed."""
    run = Path(tiny_config.out_dir)
    model, process, data = build_run(replace(tiny_config, steps=2))
    Trainer(model, process, data, replace(tiny_config, steps=2).settings(), progress=False).run()
    before = run_files(run)
    model, process, data = build_run(tiny_config)
    monkeypatch.setattr(type(process), "loss", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("broken first step")))
    with pytest.raises(RuntimeError, match="broken first step"):
        Trainer(model, process, data, tiny_config.settings(), overwrite=True, progress=False).run()
    assert run_files(run) == before


def test_a_failed_run_in_a_new_folder_leaves_nothing(tiny_config, monkeypatch) -> None:
    """A run that fails before its first step completes leaves neither its folder, nor a lock, nor a config."""
    run = Path(tiny_config.out_dir)
    model, process, data = build_run(tiny_config)
    monkeypatch.setattr(type(process), "loss", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("broken first step")))
    with pytest.raises(RuntimeError):
        Trainer(model, process, data, tiny_config.settings(), progress=False).run()
    assert not run.exists()


def test_resume_changes_only_the_flags_given(tmp_path: Path) -> None:
    """A run trained with --lr 0.0005 and --checkpoint-every 1, resumed with only --steps, keeps both."""
    run = tmp_path / "r"
    assert main(["train", *TINY, "--lr", "0.0005", "--steps", "2", "--out-dir", str(run)]) == 0
    assert main(["train", "--resume", "--steps", "3", "--out-dir", str(run)]) == 0
    config = json.loads((run / "checkpoint" / "config.json").read_text())
    assert config["step"] == 3 and config["train"]["lr"] == 0.0005 and config["run"]["preset"] == "tiny"
    assert config["run"]["data_limit"] == 8 and not (run / ".lock").exists()


def test_a_refused_sample_keeps_the_folders_config(tmp_path: Path, capsys) -> None:
    """``sample`` checks every option before it writes sample_config.json, so a refused run leaves the config of the
    samples beside it; an unusable --device is one line."""
    run, out = tmp_path / "r", tmp_path / "samples"
    assert main(["train", *TINY, "--steps", "1", "--out-dir", str(run)]) == 0
    checkpoint = str(run / "checkpoint")
    assert main(["sample", "--checkpoint", checkpoint, "--num", "1", "--sample-steps", "2", "--out-dir", str(out)]) == 0
    written = (out / "sample_config.json").read_text()
    for bad in (["--num", "0"], ["--eta", "nan"], ["--sampler", "euler"], ["--sample-steps", "0"], ["--sample-steps", "500"]):
        assert main(["sample", "--checkpoint", checkpoint, *bad, "--out-dir", str(out)]) == 1, bad
        assert (out / "sample_config.json").read_text() == written, bad
    capsys.readouterr()
    if not torch.cuda.is_available():
        assert main(["sample", "--checkpoint", checkpoint, "--device", "cuda", "--out-dir", str(out)]) == 1
        err = capsys.readouterr().err
        assert err.startswith("funcdiff: error: --device cuda") and err.count("\n") == 1


def test_huge_superres_and_inpaint_need_yes(tmp_path: Path, capsys, monkeypatch) -> None:
    """``superres --scale 100000`` and ``inpaint --resolution 100000`` print their estimate (measured here at five
    hours; `tests/training/test_estimate.py` measures real ones) and are refused without --yes, before any sampling,
    like ``sample``."""
    from funcdiff.domains import write_png

    asked = []

    def five_hours(model, process, shape, **options) -> Estimate:
        asked.append(shape)
        return Estimate(5 * 3600.0, 1e9)

    monkeypatch.setattr("funcdiff.commands.common.estimate_sampling", five_hours)

    run = tmp_path / "r"
    assert main(["train", *TINY, "--steps", "1", "--out-dir", str(run)]) == 0
    image = write_png(torch.zeros(1, 8, 8), tmp_path / "small.png")
    capsys.readouterr()
    checkpoint = str(run / "checkpoint")
    assert main(["superres", str(image), "--checkpoint", checkpoint, "--scale", "100000", "--num", "1"]) == 1
    out, err = capsys.readouterr()
    assert "estimated about" in out and "pass --yes" in err and not (Path("runs") / "superres").exists()
    assert main(["inpaint", str(image), "box", "--checkpoint", checkpoint, "--resolution", "100000", "--num", "1"]) == 1
    out, err = capsys.readouterr()
    assert "estimated about" in out and "pass --yes" in err
    assert asked == [(800000, 800000), (100000, 100000)]
