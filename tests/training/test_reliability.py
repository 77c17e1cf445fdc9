"""Nothing lost, nothing silent: checkpoints survive crashes and corruption, runs keep out of each other's
directories, NaN steps are skipped and divergence stops, signals save, resume applies the new settings."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from funcdiff.factory import TrainConfig
from funcdiff.training import load_trained, read_checkpoint, save_checkpoint
from funcdiff.training.checkpoint import CheckpointError, candidates, recover_checkpoint
from funcdiff.training.metrics import read_metrics
from tests.training.conftest import replace, trainer_for

ROOT = Path(__file__).resolve().parents[2]


def weights(path: Path) -> dict[str, torch.Tensor]:
    """The model weights stored in a checkpoint directory."""
    return load_file(str(path / "model.safetensors"))


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    """Whether two weight dicts are identical."""
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_flipped_byte_in_any_file_is_a_clear_error(tiny_config: TrainConfig) -> None:
    """The checksums in config.json catch corruption of the weights, the EMA and the training state."""
    out = trainer_for(replace(tiny_config, steps=1), progress=False).run().out_dir
    for name in ("model.safetensors", "ema.safetensors", "training_state.pt"):
        copy = out / f"copy-{name}"
        shutil.copytree(out / "checkpoint", copy)
        data = bytearray((copy / name).read_bytes())
        data[len(data) // 2] ^= 0x01
        (copy / name).write_bytes(bytes(data))
        with pytest.raises(CheckpointError, match=f"{name} is corrupt"):
            load_trained(copy)
    (out / "checkpoint" / "config.json").write_text('{"format_version": 2, "step"')
    with pytest.raises(CheckpointError, match="config.json is corrupt"):
        read_checkpoint(out / "checkpoint")


def _save(path: Path, step: int, value: float) -> None:
    """A small checkpoint at ``path`` whose single weight is ``value``."""
    model = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.constant_(model.weight, value)
    save_checkpoint(path, config={"step": step}, model=model)


@pytest.mark.parametrize("crash", ["while writing the new one", "between the two renames", "before removing the old one"])
def test_recovery_finds_the_newest_complete_checkpoint_after_a_crash(tmp_path: Path, crash: str) -> None:
    """Each state a killed save can leave is recovered to the newest complete checkpoint, and leftovers are removed."""
    path = tmp_path / "checkpoint"
    _save(path, 2, 2.0)
    _save(tmp_path / "newer", 4, 4.0)
    if crash == "while writing the new one":  # the new one lacks its config.json
        (tmp_path / "newer" / "config.json").unlink()
        os.replace(tmp_path / "newer", tmp_path / ".checkpoint.tmp-abc")
        expected = 2.0
    elif crash == "between the two renames":  # only .old and the complete temporary exist
        os.replace(path, tmp_path / ".checkpoint.old")
        os.replace(tmp_path / "newer", tmp_path / ".checkpoint.tmp-abc")
        expected = 4.0
    else:  # the new one is in place, the old one still beside it
        os.replace(path, tmp_path / ".checkpoint.old")
        os.replace(tmp_path / "newer", path)
        expected = 4.0
    assert recover_checkpoint(path) == path
    assert weights(path)["weight"].item() == expected
    assert candidates(path) == [path]


def test_recovery_refuses_when_nothing_complete_is_left(tmp_path: Path) -> None:
    """Only broken checkpoint directories: an error that says why each is broken, never a silent fresh start."""
    _save(tmp_path / "checkpoint", 2, 2.0)
    (tmp_path / "checkpoint" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="no complete checkpoint.*corrupt"):
        recover_checkpoint(tmp_path / "checkpoint")
    assert recover_checkpoint(tmp_path / "nothing") is None


def test_non_finite_weights_are_never_saved(tmp_path: Path) -> None:
    """save_checkpoint refuses NaN weights and writes nothing."""
    model = torch.nn.Linear(2, 2)
    with torch.no_grad():
        model.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="non-finite weights.*weight"):
        save_checkpoint(tmp_path / "checkpoint", config={}, model=model)
    assert list(tmp_path.iterdir()) == []


def test_an_existing_run_is_refused_unless_resumed_or_overwritten(tiny_config: TrainConfig) -> None:
    """A second run into the same directory needs --resume or --overwrite; overwrite starts from scratch."""
    config = replace(tiny_config, steps=2)
    trainer_for(config, progress=False).run()
    with pytest.raises(FileExistsError, match="--resume.*--overwrite"):
        trainer_for(config)
    fresh = trainer_for(replace(config, steps=1), overwrite=True, progress=False).run()
    assert fresh.step == 1 and [r["step"] for r in read_metrics(fresh.out_dir / "metrics.jsonl")] == [1]


def test_resume_without_a_checkpoint_says_so(tiny_config: TrainConfig, caplog) -> None:
    """--resume into an empty directory starts a new run with a warning."""
    result = trainer_for(replace(tiny_config, steps=1), resume=True, progress=False).run()
    assert result.step == 1
    assert "no checkpoint" in caplog.text and "starting a new run" in caplog.text


def test_resume_recovers_a_checkpoint_an_interrupted_save_left_aside(tiny_config: TrainConfig) -> None:
    """Only .checkpoint.old left (a crash between the renames): --resume continues from it instead of step 0."""
    out = trainer_for(replace(tiny_config, steps=2), progress=False).run().out_dir
    os.replace(out / "checkpoint", out / ".checkpoint.old")
    with pytest.raises(CheckpointError, match="interrupted|unfinished"):
        load_trained(out / "checkpoint")
    trainer = trainer_for(replace(tiny_config, steps=3), resume=True, progress=False)
    assert trainer.step == 2
    assert trainer.run().step == 3 and not (out / ".checkpoint.old").exists()


def test_an_error_in_the_first_step_keeps_the_existing_checkpoint(tiny_config: TrainConfig, monkeypatch) -> None:
    """A failure before any step completes saves nothing, so it cannot replace a good checkpoint."""
    out = trainer_for(replace(tiny_config, steps=2), progress=False).run().out_dir
    before = weights(out / "checkpoint")
    trainer = trainer_for(replace(tiny_config, steps=4), resume=True, progress=False)

    def broken_loss(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(trainer.process, "loss", broken_loss)
    with pytest.raises(RuntimeError, match="out of memory"):
        trainer.run()
    assert same(before, weights(out / "checkpoint")) and read_checkpoint(out / "checkpoint").step == 2


def test_a_failure_inside_the_weight_update_saves_nothing(tiny_config: TrainConfig, monkeypatch) -> None:
    """An error in optimizer.step (half-updated weights) leaves the checkpoint as it was, at its step."""
    out = trainer_for(replace(tiny_config, steps=2), progress=False).run().out_dir
    before = weights(out / "checkpoint")
    trainer = trainer_for(replace(tiny_config, steps=4), resume=True, progress=False)

    def broken_step(*args, **kwargs):
        with torch.no_grad():
            next(trainer.model.parameters()).add_(1.0)  # part of the update happened
        raise RuntimeError("out of memory")

    monkeypatch.setattr(trainer.optimizer, "step", broken_step)
    with pytest.raises(RuntimeError, match="out of memory"):
        trainer.run()
    assert same(before, weights(out / "checkpoint")) and read_checkpoint(out / "checkpoint").step == 2


def test_recovery_removes_an_older_complete_checkpoint_instead_of_calling_it_corrupt(tmp_path: Path) -> None:
    """A finished temporary beside an older complete checkpoint: the newer wins and nothing is kept aside."""
    _save(tmp_path / "checkpoint", 2, 2.0)
    _save(tmp_path / "newer", 4, 4.0)
    os.replace(tmp_path / "newer", tmp_path / ".checkpoint.tmp-x")
    recover_checkpoint(tmp_path / "checkpoint")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"] and read_checkpoint(tmp_path / "checkpoint").step == 4


def test_a_save_failing_after_an_interrupted_one_never_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    """Only .checkpoint.old exists (a crash between the renames); the next save fails at its last rename: a complete
    checkpoint still exists for recovery (the old code deleted .old first and lost everything)."""
    from funcdiff.training import checkpoint as checkpoint_module

    _save(tmp_path / "checkpoint", 2, 2.0)
    os.replace(tmp_path / "checkpoint", tmp_path / ".checkpoint.old")
    rename = os.replace

    def failing_rename(src, dst):
        if Path(src).name.startswith(".checkpoint.tmp-"):
            raise OSError("I/O error")
        rename(src, dst)

    monkeypatch.setattr(checkpoint_module.os, "replace", failing_rename)
    with pytest.raises(OSError):
        _save(tmp_path / "checkpoint", 3, 3.0)
    monkeypatch.undo()
    assert recover_checkpoint(tmp_path / "checkpoint") is not None
    assert read_checkpoint(tmp_path / "checkpoint").step in (2, 3)


def test_two_runs_cannot_share_a_directory(tiny_config: TrainConfig) -> None:
    """While one trainer holds the directory, a second one is refused; after its run, the directory is free."""
    first = trainer_for(replace(tiny_config, steps=1), progress=False)
    with pytest.raises(RuntimeError, match=f"in use by another run \\(pid {os.getpid()}"):
        trainer_for(replace(tiny_config, steps=1), overwrite=True)
    first.run()
    trainer_for(replace(tiny_config, steps=2), resume=True, progress=False).run()


def test_non_finite_steps_are_skipped_and_counted(tiny_config: TrainConfig, monkeypatch) -> None:
    """NaN losses on some steps: those steps change nothing, are counted in metrics.jsonl, and the run finishes."""
    trainer = trainer_for(replace(tiny_config, steps=6), progress=False)
    loss = trainer.process.loss
    calls = []

    def sometimes_nan(*args, **kwargs):
        calls.append(1)
        value = loss(*args, **kwargs)
        return value * float("nan") if len(calls) in (2, 3) else value

    monkeypatch.setattr(trainer.process, "loss", sometimes_nan)
    result = trainer.run()
    rows = read_metrics(result.out_dir / "metrics.jsonl")
    assert result.skipped_steps == 2 and [r["skipped"] for r in rows] == [0, 1, 1, 0, 0, 0]
    assert rows[1]["loss"] is None and all(r["loss"] is not None for r in rows if not r["skipped"])
    assert all(bool(p.isfinite().all()) for p in weights(result.out_dir / "checkpoint").values())


def test_divergence_stops_with_a_clear_error_and_keeps_the_last_checkpoint(tiny_config: TrainConfig, monkeypatch) -> None:
    """max_nonfinite_steps NaN steps in a row: FloatingPointError naming the kept checkpoint, which is unchanged."""
    out = trainer_for(replace(tiny_config, steps=2), progress=False).run().out_dir
    before = weights(out / "checkpoint")
    trainer = trainer_for(replace(tiny_config, steps=50, max_nonfinite_steps=3), resume=True, progress=False)
    loss = trainer.process.loss
    monkeypatch.setattr(trainer.process, "loss", lambda *a, **k: loss(*a, **k) * float("inf"))
    with pytest.raises(FloatingPointError, match="3 steps in a row.*step 2\\) is kept"):
        trainer.run()
    assert same(before, weights(out / "checkpoint")) and read_checkpoint(out / "checkpoint").step == 2


def test_resume_applies_the_new_learning_rate_and_records_it(tiny_config: TrainConfig, caplog) -> None:
    """--resume --lr X trains at X, says so, and config.json, the checkpoint and metrics.jsonl record X."""
    trainer_for(replace(tiny_config, steps=2, lr=1e-3), progress=False).run()
    trainer = trainer_for(replace(tiny_config, steps=4, lr=1e-2), resume=True, progress=False)
    assert [g["lr"] for g in trainer.optimizer.param_groups] == [1e-2]
    assert "lr 0.001 -> 0.01" in caplog.text
    out = trainer.run().out_dir
    assert json.loads((out / "config.json").read_text())["train"]["lr"] == 1e-2
    assert read_checkpoint(out / "checkpoint").config["train"]["lr"] == 1e-2
    assert [r["lr"] for r in read_metrics(out / "metrics.jsonl")] == [1e-3, 1e-3, 1e-2, 1e-2]
    with pytest.raises(ValueError, match="another optimizer"):
        trainer_for(replace(tiny_config, steps=5, optimizer="adamw"), resume=True)


def test_a_torn_metrics_line_does_not_break_later_runs(tiny_config: TrainConfig) -> None:
    """A crash mid-write leaves half a line; resuming, plotting and appending still work."""
    out = trainer_for(replace(tiny_config, steps=2, checkpoint_every=1), progress=False).run().out_dir
    with (out / "metrics.jsonl").open("a") as f:
        f.write('{"step": 3, "lo')
    trainer_for(replace(tiny_config, steps=4), resume=True, progress=False).run()
    assert [r["step"] for r in read_metrics(out / "metrics.jsonl")] == [1, 2, 3, 4]


def test_errors_are_refused_before_any_work(tiny_config: TrainConfig) -> None:
    """Bad points, fp16 on a CPU, a missing GPU and more points than cells fail at construction, not mid-run."""
    for bad in ({"points": 1.5}, {"points": 0}, {"points": -5}, {"sample_steps": 0}, {"sample_count": 0}, {"device": "gpu"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            replace(tiny_config, **bad)
    with pytest.raises(TypeError, match="(?s)lr.*'fast'"):
        replace(tiny_config, lr="fast")
    with pytest.raises(ValueError, match="fp16"):
        trainer_for(replace(tiny_config, autocast="fp16"))
    with pytest.raises(ValueError, match="more than the 256 cells"):
        trainer_for(replace(tiny_config, points=257))
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            trainer_for(replace(tiny_config, device="cuda"))
    assert not (Path(tiny_config.out_dir) / "checkpoint").exists()


def _train_in_subprocess(out: Path, *extra: str) -> subprocess.Popen:
    """``funcdiff train`` on the tiny preset for up to a minute, in its own process."""
    args = ["--data", "icons", "--data-limit", "16", "--resolution", "16", "--preset", "tiny", "--batch-size", "4",
            "--diffusion-steps", "50", "--sample-count", "1", "--sample-steps", "2", "--log-every", "1", "--steps", "None",
            "--time-budget", "60", "--checkpoint-every", "0", "--out-dir", str(out), *extra]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "funcdiff", "train", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_saves_a_checkpoint_and_exits_with_the_conventional_code(tmp_path: Path, sig: signal.Signals) -> None:
    """SIGTERM or SIGINT mid-run: the step finishes, a checkpoint is written, one line says where, exit 128 + N."""
    out = tmp_path / "run"
    process = _train_in_subprocess(out)
    deadline = time.monotonic() + 120
    while not read_metrics(out / "metrics.jsonl") and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(sig)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + sig, stdout + stderr
    assert "Traceback" not in stderr
    assert f"{sig.name}: stopped at step" in stderr and str(out / "checkpoint") in stderr
    checkpoint = read_checkpoint(out / "checkpoint")
    assert checkpoint.step >= 1 and checkpoint.step == read_metrics(out / "metrics.jsonl")[-1]["step"]


def test_a_second_signal_exits_at_once() -> None:
    """A SIGTERM repeated within a second is the same request; a second one later ends the process at once with 143."""
    code = ("import os, signal, time\n"
            "from funcdiff.training.stop_signals import StopSignals\n"
            "with StopSignals() as s:\n"
            "    os.kill(os.getpid(), signal.SIGTERM)\n"
            "    os.kill(os.getpid(), signal.SIGTERM)\n"  # within a second: the same request (torchrun forwards one)
            "    assert s.received == signal.SIGTERM\n"
            "    time.sleep(1.5)\n"
            "    os.kill(os.getpid(), signal.SIGTERM)\n"
            "    time.sleep(30)\n")
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 128 + signal.SIGTERM, done.stderr


def test_command_line_errors_are_one_line_without_a_traceback(tmp_path: Path) -> None:
    """A run refused by the trainer (existing directory) prints one error line and exits with 1."""
    (tmp_path / "run" / "checkpoint").mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "funcdiff", "train", "--data-limit", "8", "--resolution", "16", "--preset", "tiny",
                           "--out-dir", str(tmp_path / "run")], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("funcdiff: error:") and "--overwrite" in done.stderr


def test_built_in_names_never_shadow_a_folder(tmp_path: Path, monkeypatch) -> None:
    """A folder named like a built-in set is reached as ./name; the bare name is refused as ambiguous, not guessed."""
    from PIL import Image

    from funcdiff.data import ImageFolder
    from funcdiff.factory import build_dataset, make_dataset

    monkeypatch.chdir(tmp_path)
    (tmp_path / "icons").mkdir()
    for i in range(3):
        Image.new("RGB", (8, 8), (80 * i, 0, 0)).save(tmp_path / "icons" / f"{i}.png")
    with pytest.raises(ValueError, match="both a built-in data set and a folder.*./icons"):
        make_dataset("icons", resolution=8)
    assert isinstance(make_dataset("./icons", resolution=8, test_fraction=0.0), ImageFolder)
    assert build_dataset(TrainConfig(data="./icons", channels=3, resolution=8))[0].shape == (3, 8, 8)


def test_channels_that_a_built_in_set_does_not_have_are_refused(tiny_config: TrainConfig) -> None:
    """--channels 3 with the grey icons is an error instead of being recorded and ignored."""
    from funcdiff.factory import build_dataset

    with pytest.raises(ValueError, match="1 channel.*not channels=3"):
        build_dataset(replace(tiny_config, channels=3))


SAVE_FOREVER = """
import sys, torch
from funcdiff.training import save_checkpoint
model = torch.nn.Linear(256, 256)
step = int(sys.argv[2])
while True:
    step += 1
    torch.nn.init.constant_(model.weight, float(step))
    save_checkpoint(sys.argv[1], config={"step": step}, model=model, training_state={"step": step})
    print(step, flush=True)
"""


def test_kill_9_at_random_instants_of_saving_always_leaves_a_recoverable_checkpoint(tmp_path: Path) -> None:
    """A process saving in a loop is SIGKILLed at random moments; each time, recovery yields a complete checkpoint
    at least as new as the last one reported saved, and its weights match its step."""
    import random

    path, rng, last = tmp_path / "checkpoint", random.Random(0), 0
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for _ in range(6):
        process = subprocess.Popen([sys.executable, "-c", SAVE_FOREVER, str(path), str(last)], env=env,
                                   stdout=subprocess.PIPE, text=True)
        reported = process.stdout.readline()  # at least one save completed
        time.sleep(rng.uniform(0.0, 0.3))
        process.kill()
        out, _ = process.communicate()
        saved = [int(line) for line in (reported + out).split()]
        assert recover_checkpoint(path) == path
        checkpoint = read_checkpoint(path)
        assert checkpoint.step >= saved[-1] and checkpoint.training_state["step"] == checkpoint.step
        assert bool((weights(path)["weight"] == checkpoint.step).all())
        assert candidates(path) == [path]
        last = checkpoint.step
