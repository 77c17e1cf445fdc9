"""The real command line (``python -m funcdiff``), the example scripts, and DDP with two gloo processes."""

import dataclasses
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from PIL import Image

from tests.training.conftest import replace

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--data", "icons", "--data-limit", "16", "--resolution", "16", "--preset", "tiny", "--batch-size", "4",
        "--diffusion-steps", "50", "--sample-count", "2", "--sample-steps", "2", "--log-every", "1"]


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run a command with the test's Python, failing loudly with its output."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_dry_run_prints_the_resolved_config(tmp_path: Path) -> None:
    """--dry-run prints the config with flags applied and writes nothing."""
    out = run("-m", "funcdiff", "train", "--dry-run", "--resolution", "48", "--points", "0.5", "--steps", "None",
              "--time-budget", "60", "--out-dir", "x", "--process", "flow", cwd=tmp_path)
    config = json.loads(out.stdout)
    assert config["resolution"] == 48 and config["points"] == 0.5 and config["steps"] is None and config["time_budget"] == 60
    assert config["process"] == "flow"
    counted = json.loads(run("-m", "funcdiff", "train", "--dry-run", "--points", "4096", cwd=tmp_path).stdout)
    assert counted["points"] == 4096 and isinstance(counted["points"], int)
    assert not (tmp_path / "x").exists()
    demo = json.loads(run("-m", "funcdiff", "demo", "--dry-run", cwd=tmp_path).stdout)
    assert demo["preset"] == "cpu-small" and demo["resolution"] == 32 and demo["train_resolutions"] == [32, 64, 128]
    assert demo["points"] == 256
    assert (demo["process"], demo["p_mean"], demo["p_std"], demo["sampler"], demo["sample_steps"]) == ("edm", 0.0, 1.6, "edm_dpmpp", 25)
    for process in ("flow", "ddpm"):  # another family drops the EDM's settings
        other = json.loads(run("-m", "funcdiff", "demo", "--dry-run", "--process", process, cwd=tmp_path).stdout)
        assert (other["process"], other["p_mean"], other["p_std"], other["sampler"], other["sample_steps"]) == (process, None, None, "auto", 50)
    given = json.loads(run("-m", "funcdiff", "demo", "--dry-run", "--p-mean", "-1.2", cwd=tmp_path).stdout)
    assert (given["process"], given["p_mean"], given["p_std"]) == ("edm", -1.2, 1.6)
    for flags in (["--data", "fashion-mnist"], ["--resolution", "64"]):  # other data, or a resolution of one's own: one resolution
        single = json.loads(run("-m", "funcdiff", "demo", "--dry-run", *flags, cwd=tmp_path).stdout)
        assert single["train_resolutions"] == [] and single["points"] == 0.25, flags


def test_every_flag_says_what_it_does(capsys) -> None:
    """Each training setting is a flag whose help shows its description (from the config's docstring) and default."""
    from funcdiff.commands import main
    from funcdiff.factory import TrainConfig

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.replace("│", " ").split())
    for field in dataclasses.fields(TrainConfig):
        assert "--" + field.name.replace("_", "-") in text, field.name
    assert "the paper's 0.25" in text and "(default: 0.25)" in text
    assert "Wiener filter at the end" in text  # a continuation line of the docstring joins its entry
    assert "--process {ddpm,flow,edm,mollified_ddpm,flow_matching,mollified_edm}" in text


def test_bad_flags_are_refused(capsys) -> None:
    """A value the config refuses is an error that names the setting, and nothing runs."""
    from funcdiff.commands import main

    with pytest.raises(SystemExit):
        main(["train", "--process", "flow", "--prediction", "x0", "--dry-run"])
    assert "prediction" in capsys.readouterr().err


@pytest.mark.parametrize("process, kind", [("ddpm", "mollified_ddpm"), ("flow", "flow_matching")])
def test_train_then_sample_through_the_command(tmp_path: Path, process: str, kind: str) -> None:
    """A few-step train writes a checkpoint and config; sample writes grids at each resolution, for both processes."""
    run("-m", "funcdiff", "train", *TINY, "--process", process, "--steps", "3", "--out-dir", "run", cwd=tmp_path)
    assert (tmp_path / "run" / "checkpoint" / "model.safetensors").is_file()
    assert json.loads((tmp_path / "run" / "config.json").read_text())["train"]["steps"] == 3
    out = run("-m", "funcdiff", "sample", "--checkpoint", "run/checkpoint", "--resolutions", "16", "32", "--num", "2",
              "--sample-steps", "3", "--out-dir", "samples", cwd=tmp_path)
    assert "32px: samples/32px.png" in out.stdout
    assert json.loads((tmp_path / "run" / "checkpoint" / "config.json").read_text())["process"]["kind"] == kind
    for name, size in (("16px.png", 16), ("32px.png", 32)):
        with Image.open(tmp_path / "samples" / name) as image:
            assert image.size == (2 * size + 3, size + 2)
    assert (tmp_path / "samples" / "resolutions.png").is_file()
    assert (tmp_path / "samples" / "sample_config.json").is_file()


def test_celebahq_example_on_a_tiny_generated_folder(tmp_path: Path) -> None:
    """examples/images/train_celebahq.py runs a few steps over a folder of generated faces-to-be; sample.py samples it."""
    rng = np.random.default_rng(0)
    for i in range(6):
        folder = tmp_path / "faces" / f"part{i % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (40, 30, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    run(str(ROOT / "examples/images/train_celebahq.py"), "--data", "faces", "--resolution", "16", "--preset", "tiny",
        "--batch-size", "2", "--steps", "3", "--time-budget", "None", "--device", "cpu", "--autocast", "none",
        "--sample-count", "1", "--sample-steps", "2", "--checkpoint-every", "0", "--sample-every", "0",
        "--diffusion-steps", "50", "--out-dir", "celeba", cwd=tmp_path)
    run(str(ROOT / "examples/images/sample.py"), "celeba/checkpoint", "--resolutions", "16", "--num", "1", "--steps", "2",
        "--device", "cpu", "--out-dir", "s", cwd=tmp_path)
    with Image.open(tmp_path / "s" / "16px.png") as image:
        assert image.mode == "RGB"


def _ddp_worker(rank: int, port: int, config, out: str, resume: bool = False) -> None:
    """One of two gloo processes: train (or resume), then save this replica's weights."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank))
    from tests.training.conftest import train_config

    torch.set_num_threads(1)
    result = train_config(config, progress=False, resume=resume)
    torch.save({k: v.clone() for k, v in result.model.state_dict().items()}, f"{out}/rank{rank}.pt")
    torch.distributed.destroy_process_group()


def _two_processes(config, out: Path, *, resume: bool = False) -> dict[str, torch.Tensor]:
    """Train ``config`` with two gloo processes; both replicas' weights must agree; returns them."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.start_processes(_ddp_worker, args=(port, config, str(out), resume), nprocs=2, start_method="spawn")
    a, b = (torch.load(out / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    for name in a:
        assert torch.equal(a[name], b[name]), name
    return a


@pytest.mark.slow
def test_ddp_two_gloo_processes_stay_in_sync_and_resume_exactly(tiny_config, tmp_path: Path) -> None:
    """DistributedDataParallel on CPU: both replicas agree after every run, and 2 steps + resume to 4 ends with the
    weights of 4 steps in one go (every rank's noise is a function of the seed, its rank and the step)."""
    whole = _two_processes(replace(tiny_config, steps=4, out_dir=str(tmp_path / "whole")), tmp_path)
    assert (tmp_path / "whole" / "checkpoint").is_dir()
    _two_processes(replace(tiny_config, steps=2, out_dir=str(tmp_path / "split")), tmp_path)
    resumed = _two_processes(replace(tiny_config, steps=4, out_dir=str(tmp_path / "split")), tmp_path, resume=True)
    for name in whole:
        assert torch.equal(whole[name], resumed[name]), name


@pytest.mark.slow
def test_resuming_with_another_number_of_processes_continues_the_data_stream(tiny_config, tmp_path: Path, caplog) -> None:
    """A two-process checkpoint resumed by one process says so and continues the stream: 2 steps of 2 x 8 examples,
    then 2 steps of 8, have consumed 48; a plain run's step count and metrics continue."""
    from funcdiff.training import read_checkpoint
    from tests.training.conftest import train_config

    _two_processes(replace(tiny_config, steps=2, out_dir=str(tmp_path / "run")), tmp_path)
    with caplog.at_level("WARNING"):
        result = train_config(replace(tiny_config, steps=4, out_dir=str(tmp_path / "run")), resume=True, progress=False)
    assert "resuming with 1 processes where the checkpoint's run had 2" in caplog.text
    state = read_checkpoint(tmp_path / "run" / "checkpoint").training_state
    assert result.step == 4 and state["examples"] == 2 * 8 * 2 + 2 * 8 and state["world_size"] == 1


def test_build_kernel_command_reports_the_build(monkeypatch, capsys, tmp_path: Path) -> None:
    """``funcdiff build-kernel`` passes its flags to the native build and says what happened, or why not (exit 1)."""
    from funcdiff.commands import main
    from funcdiff.operators.kernels import native

    calls = []

    def fake_build(*, force: bool, timeout: float) -> native.NativeBuild:
        calls.append((force, timeout))
        if timeout < 1:
            raise native.NativeBuildError("compiler missing; log at build.log")
        return native.NativeBuild(path=tmp_path / "k.so", built=force, seconds=12.0)

    monkeypatch.setattr(native, "build", fake_build)
    assert main(["build-kernel", "--force", "--timeout", "30"]) == 0
    assert f"built: {tmp_path / 'k.so'} (12 s)" in capsys.readouterr().out
    assert main(["build-kernel"]) == 0 and "already built:" in capsys.readouterr().out
    assert main(["build-kernel", "--timeout", "0.5"]) == 1
    assert "native kernel not built: compiler missing" in capsys.readouterr().err
    assert calls == [(True, 30.0), (False, 600.0), (False, 0.5)]


def test_the_named_choices_are_the_registrys_kinds() -> None:
    """``--process`` takes the registered kinds of the two families it builds (or their short names), ``--schedule``
    and ``--sampler`` any registered kind that fits; what each names is what is built."""
    from funcdiff.factory import PROCESS_KINDS, TrainConfig, build_process
    from funcdiff.processes import DiffusionProcess
    from funcdiff.registry import lookup

    for kind, family in PROCESS_KINDS.items():
        assert DiffusionProcess in lookup(kind).__mro__
        built = build_process(TrainConfig(process=kind, diffusion_steps=50, schedule="constant"), (1, 16, 16))
        assert built.to_dict()["kind"] == kind and TrainConfig(process=family).family == family
    assert build_process(TrainConfig(schedule="linear"), (1, 16, 16)).to_dict()["schedule"]["kind"] == "linear"
    with pytest.raises(ValueError, match="schedule='gaussian'"):
        TrainConfig(schedule="gaussian")

