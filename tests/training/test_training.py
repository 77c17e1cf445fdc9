"""Training end to end: loss goes down, checkpoints round-trip and survive crashes, resume is exact."""

import errno
import json
import math

import pytest
import torch
from safetensors.torch import load_file

from funcdiff import GridDomain, MollifiedDDPM, cosine_schedule, operator_preset
from funcdiff.domains import write_png
from funcdiff.factory import TrainConfig, build_dataset, build_run
from funcdiff.mollifiers import Mollifier
from funcdiff.training import TrainSettings, Trainer, load_trained, read_checkpoint, save_checkpoint
from funcdiff.sampling import sample
from funcdiff.training import checkpoint as checkpoint_module
from funcdiff.training.checkpoint import CheckpointError
from tests.training.conftest import replace, train_config, trainer_for


def test_tiny_run_lowers_the_loss_and_samples_at_two_resolutions(tiny_config: TrainConfig) -> None:
    """A few dozen steps lower the loss; the checkpoint samples finite images at 1x and 2x resolution."""
    config = replace(tiny_config, steps=60)
    result = train_config(config, progress=False)
    rows = [json.loads(line) for line in (result.out_dir / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows]
    assert len(losses) == 60 and all(math.isfinite(v) for v in losses)
    assert sum(losses[-10:]) / 10 < 0.8 * sum(losses[:10]) / 10
    assert (result.out_dir / "loss.png").is_file()
    assert sorted(p.name for p in (result.out_dir / "samples").glob("*.png")) == [
        "step0000060_16px.png", "step0000060_32px.png", "step0000060_64px.png"]
    model, process, config_json = load_trained(result.out_dir / "checkpoint")
    assert not model.training
    for resolution in (16, 32):
        images = sample(model, process, resolution, batch=2, steps=5, generator=torch.Generator().manual_seed(0))
        assert images.shape == (2, 1, resolution, resolution) and bool(images.isfinite().all())


@pytest.mark.parametrize("prediction", ["velocity", "x1"])
def test_tiny_flow_matching_run_lowers_the_loss_and_samples_at_two_resolutions(tiny_config: TrainConfig, prediction: str) -> None:
    """docs/math.md §11 end to end: the flow trains through the same Trainer and samples (Heun) at 1x and 2x."""
    result = train_config(replace(tiny_config, steps=60, process="flow", prediction=prediction), progress=False)
    losses = [json.loads(line)["loss"] for line in (result.out_dir / "metrics.jsonl").read_text().splitlines()]
    assert sum(losses[-10:]) / 10 < 0.8 * sum(losses[:10]) / 10
    model, process, config = load_trained(result.out_dir / "checkpoint")
    assert config["process"]["kind"] == "flow_matching" and process.prediction == prediction
    for resolution in (16, 32):
        images = sample(model, process, resolution, batch=2, steps=4, generator=torch.Generator().manual_seed(0))
        assert images.shape == (2, 1, resolution, resolution) and bool(images.isfinite().all())


def test_checkpoint_round_trip(tiny_config: TrainConfig) -> None:
    """config.json and the safetensors weights read back identical; the EMA starts as a copy of the model."""
    config = replace(tiny_config, steps=2)
    trainer = trainer_for(config, progress=False)
    for p, e in zip(trainer.model.parameters(), trainer.ema.parameters()):
        assert torch.equal(p, e)
    trainer.run()
    path = trainer.out_dir / "checkpoint"
    checkpoint = read_checkpoint(path)
    assert checkpoint.config["operator"] == {"kind": "infty_diff", **trainer.model.config.to_dict()}
    assert TrainSettings.from_dict(checkpoint.config["train"]) == config.settings()
    assert TrainConfig.from_dict(checkpoint.config["run"]) == config
    assert checkpoint.training_state is not None and checkpoint.training_state["step"] == 2
    model, _, _ = load_trained(path, ema=False)
    weights = load_file(str(path / "model.safetensors"))
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, trainer.model.state_dict()[name])
        assert torch.equal(tensor, weights[name])


def test_resume_equals_an_uninterrupted_run(tiny_config: TrainConfig, tmp_path) -> None:
    """Stopping after 3 steps and resuming to 6 ends with exactly the parameters of 6 steps in one go."""
    whole = trainer_for(replace(tiny_config, out_dir=str(tmp_path / "whole")), progress=False).run()
    trainer_for(replace(tiny_config, steps=3, out_dir=str(tmp_path / "split")), progress=False).run()
    resumed = trainer_for(replace(tiny_config, out_dir=str(tmp_path / "split")), resume=True, progress=False).run()
    assert resumed.step == whole.step == 6
    for (name, a), b in zip(whole.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    for a, b in zip(whole.ema.parameters(), resumed.ema.parameters()):
        assert torch.equal(a, b)


def test_resume_refuses_a_different_model(tiny_config: TrainConfig) -> None:
    """Resuming with other model settings is an error that names them."""
    trainer_for(replace(tiny_config, steps=1), progress=False).run()
    with pytest.raises(ValueError, match="operator.reference_shape"):
        trainer_for(replace(tiny_config, resolution=32), resume=True, progress=False)
    with pytest.raises(ValueError, match="process.prediction"):
        trainer_for(replace(tiny_config, prediction="mollified_eps"), resume=True, progress=False)


def test_disk_full_during_a_checkpoint_write_keeps_the_previous_one(tiny_config: TrainConfig, monkeypatch) -> None:
    """A full disk while writing is a clear error; the last good checkpoint stays loadable and no temporary is left."""
    trainer = trainer_for(replace(tiny_config, steps=2), progress=False)
    trainer.run()
    before = load_file(str(trainer.out_dir / "checkpoint" / "model.safetensors"))

    def broken_save(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint_module.torch, "save", broken_save)
    with torch.no_grad():
        next(trainer.model.parameters()).add_(1.0)
    trainer.step += 1
    with pytest.raises(CheckpointError, match="disk full.*previous checkpoint .*checkpoint is intact"):
        trainer.save()
    monkeypatch.undo()
    after = load_file(str(trainer.out_dir / "checkpoint" / "model.safetensors"))
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert read_checkpoint(trainer.out_dir / "checkpoint").training_state["step"] == 2
    assert [p.name for p in trainer.out_dir.iterdir() if p.name.startswith(".")] == []  # no temporary, and no lock after the run


@pytest.mark.parametrize("error, message", [(RuntimeError("No space left on device (os error 28)"), "disk full"),
                                            (RuntimeError("device busy"), "could not write .*RuntimeError: device busy")])
def test_any_failure_while_writing_is_a_checkpoint_error(tmp_path, monkeypatch, error: Exception, message: str) -> None:
    """Libraries wrap a full disk in their own errors; every write failure says what happened and what is intact."""
    model = torch.nn.Linear(2, 2)
    save_checkpoint(tmp_path / "checkpoint", config={"step": 1}, model=model)

    def failing(*args, **kwargs):
        raise error

    monkeypatch.setattr(checkpoint_module, "save_model", failing)
    with pytest.raises(CheckpointError, match=f"{message}.*previous checkpoint .*checkpoint is intact"):
        save_checkpoint(tmp_path / "checkpoint", config={"step": 2}, model=model)
    assert read_checkpoint(tmp_path / "checkpoint").step == 1


def test_bad_training_settings() -> None:
    """Invalid settings are refused with the field's name."""
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="steps or time_budget"):
        TrainConfig(steps=None, time_budget=None)
    with pytest.raises(ValueError, match="sample_steps"):  # refused before training, not after it
        TrainConfig(diffusion_steps=100, sample_steps=200)
    with pytest.raises(ValueError, match="unknown keys"):
        TrainConfig.from_dict({"learning_rate": 1.0})


def test_bf16_autocast_on_cpu_trains(tiny_config: TrainConfig) -> None:
    """Mixed precision (bf16 autocast on the CPU) runs and gives finite losses; fp16 on the CPU is refused."""
    result = trainer_for(replace(tiny_config, steps=3, autocast="bf16"), progress=False).run()
    assert math.isfinite(result.loss)
    with pytest.raises(ValueError, match="fp16"):
        trainer_for(replace(tiny_config, steps=1, autocast="fp16"), progress=False).run()


def test_learning_rate_warms_up_linearly_then_holds() -> None:
    """Step k (from 0) of a 4-step warm-up trains at lr (k + 1) / 4, then at lr; no warm-up is lr throughout."""
    from funcdiff.training.trainer import learning_rate

    warm = TrainSettings(lr=1e-3, warmup_steps=4)
    assert [learning_rate(warm, k) for k in range(6)] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 1e-3])
    assert learning_rate(TrainSettings(lr=1e-3), 0) == 1e-3


def test_cosine_schedule_anneals_to_zero_after_the_warm_up() -> None:
    """Cosine over 2 warm-up + 8 steps: lr/2, lr, then lr (1 + cos(pi k / 8)) / 2 for k = 0..8 (hand values), 0 after;
    without steps it is refused, naming the setting."""
    from funcdiff.training.trainer import learning_rate

    cosine = TrainSettings(lr=1.0, warmup_steps=2, steps=10, lr_schedule="cosine")
    half_cosines = [1.0, 0.9619397662556434, 0.8535533905932737, 0.6913417161825449, 0.5, 0.3086582838174551,
                    0.14644660940672627, 0.03806023374435663, 0.0, 0.0]
    assert [learning_rate(cosine, k) for k in range(12)] == pytest.approx([0.5, 1.0, *half_cosines], abs=1e-12)
    with pytest.raises(ValueError, match="lr_schedule 'cosine'"):
        TrainSettings(steps=None, time_budget=60.0, lr_schedule="cosine")


def test_ema_warmup_forgets_early_weights_quickly() -> None:
    """With ema_warmup the decay is (1 + n) / (10 + n) until that passes ema_decay; without it, ema_decay."""
    from funcdiff.training.trainer import ema_decay

    warm = TrainSettings(ema_decay=0.9, ema_warmup=True)
    assert [ema_decay(warm, n) for n in (0, 1, 10, 80, 1000)] == pytest.approx([0.1, 2 / 11, 11 / 20, 0.9, 0.9])
    assert ema_decay(TrainSettings(ema_decay=0.9), 0) == 0.9


def test_the_trainer_applies_the_warm_up(tiny_config: TrainConfig, tmp_path) -> None:
    """The logged learning rate of step 2 of a 6-step warm-up is lr / 3, and of step 6 lr; a warmed-up EMA ends much
    nearer the trained weights than one that started at decay 0.999 (the training itself is the same)."""
    config = replace(tiny_config, warmup_steps=6, ema_decay=0.999)
    warm = train_config(replace(config, ema_warmup=True))
    plain = train_config(replace(config, out_dir=str(tmp_path / "plain")))
    rows = [json.loads(line) for line in (warm.out_dir / "metrics.jsonl").read_text().splitlines()]
    lr = {row["step"]: row["lr"] for row in rows if "lr" in row}
    assert lr[2] == pytest.approx(tiny_config.lr / 3) and lr[6] == pytest.approx(tiny_config.lr)

    def distance(result) -> float:
        return sum(float((e - m).detach().square().sum()) for e, m in zip(result.ema.parameters(), result.model.parameters()))

    assert all(a.equal(b) for a, b in zip(warm.model.parameters(), plain.model.parameters()))
    assert distance(warm) < 0.5 * distance(plain)


def test_point_scheme_reaches_the_domain_and_the_checkpoint(tiny_config: TrainConfig) -> None:
    """--point-scheme stratified trains with stratified draws, and the reloaded process keeps them."""
    result = train_config(replace(tiny_config, point_scheme="stratified", steps=1))
    _, process, config = load_trained(result.out_dir / "checkpoint")
    assert process.domain.scheme == "stratified" and config["run"]["point_scheme"] == "stratified"


def test_data_cache_and_workers_flags_reach_the_folder_and_the_loader(tiny_config: TrainConfig, tmp_path) -> None:
    """--no-data-cache builds an image folder without its disk cache (--data-cache with it); --data-workers 2 trains
    the same steps as loading in-process (the batches are a function of the seed and the step)."""
    folder = tmp_path / "images"
    for i in range(12):
        write_png(torch.linspace(-1, 1, 256).view(1, 16, 16) * (i / 12), folder / f"{i:02d}.png")
    base = replace(tiny_config, data=str(folder), data_limit=None, steps=2)
    assert build_dataset(replace(base, data_cache=False)).cache_path is None
    assert build_dataset(base).cache_path is not None
    one = trainer_for(replace(base, out_dir=str(tmp_path / "a")), progress=False).run()
    two = trainer_for(replace(base, data_workers=2, out_dir=str(tmp_path / "b")), progress=False).run()
    for a, b in zip(one.model.state_dict().values(), two.model.state_dict().values()):
        assert torch.equal(a, b)


class UnregisteredMollifier(Mollifier):
    """A user's mollifier (the identity) whose kind no module registered."""

    def mollify(self, x):
        return x

    def unmollify(self, y, inv_snr=0.05):
        return y

    def to_dict(self):
        return {"kind": "test-unregistered-mollifier"}


def test_a_component_that_would_not_reload_is_refused_before_training(tmp_path) -> None:
    """A process whose mollifier's kind is not registered used to train and save, failing only at load: the Trainer
    refuses it when constructed, naming it, and writes nothing."""
    process = MollifiedDDPM(GridDomain(2, 1), cosine_schedule(10), UnregisteredMollifier())
    model = operator_preset("tiny", channels=1, resolution=16)
    settings = TrainSettings(batch_size=2, steps=1, checkpoint_every=0, out_dir=str(tmp_path / "run"))
    with pytest.raises(ValueError, match="^the process's mollifier: its kind 'test-unregistered-mollifier' is not registered"):
        Trainer(model, process, [torch.zeros(1, 16, 16)] * 4, settings, progress=False)
    assert not (tmp_path / "run").exists()


def test_save_checkpoint_refuses_a_config_that_would_not_reload(tmp_path) -> None:
    """A config whose operator or process does not rebuild is refused before anything is written."""
    with pytest.raises(ValueError, match="^the process: its kind 'test-unregistered-process' is not registered"):
        save_checkpoint(tmp_path / "checkpoint", config={"process": {"kind": "test-unregistered-process"}}, model=torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="^the operator: .*InftyDiffOperator \\(kind 'infty_diff'\\) cannot be rebuilt"):
        save_checkpoint(tmp_path / "checkpoint", config={"operator": {"kind": "infty_diff", "size": 3}}, model=torch.nn.Linear(2, 2))
    assert not any(tmp_path.iterdir())


def test_several_resolutions_train_one_operator_at_the_base_resolution(tiny_config: TrainConfig) -> None:
    """``train_resolutions=(8, 16)``: the data load at 16 px, the operator and the mollifier are built for ``resolution`` 8,
    the checkpoint records the downscales, and steps see both grids (the model is called on 8 and 16 px points)."""
    config = replace(tiny_config, resolution=8, train_resolutions=(8, 16), points=32, steps=12)
    model, process, data = build_run(config)
    seen = set()
    model.register_forward_pre_hook(lambda module, args: seen.add(args[0].shape))
    result = Trainer(model, process, data, config.settings(), run_config=config.to_dict(), progress=False).run()
    assert seen == {(8, 8), (16, 16)}
    stored = read_checkpoint(result.out_dir / "checkpoint").config
    assert stored["operator"]["reference_shape"] == [8, 8] and stored["data_shape"] == [1, 16, 16]
    assert stored["train"]["downscales"] == [2, 1] and process.mollifier.sigma == 1 / 8


@pytest.mark.parametrize("changes", [dict(resolution=8, train_resolutions=(8, 12)), dict(resolution=8, train_resolutions=(8, 8, 16)),
                                     dict(resolution=8, train_resolutions=(8, 16), downscales=(2, 1))])
def test_bad_resolutions_are_refused(tiny_config: TrainConfig, changes) -> None:
    with pytest.raises(ValueError, match="train_resolutions"):
        replace(tiny_config, **changes)


def test_a_base_resolution_that_does_not_divide_the_data_is_refused_before_loading(tiny_config: TrainConfig) -> None:
    with pytest.raises(ValueError, match=r"resolution 6 must divide the largest of train_resolutions \(8, 16\)"):
        build_run(replace(tiny_config, resolution=6, train_resolutions=(8, 16)))


def test_a_point_count_above_the_coarsest_grid_is_refused(tiny_config: TrainConfig) -> None:
    """100 points fit a 16 px grid but not the 8 px one that the mixture also trains at."""
    with pytest.raises(ValueError, match=r"points=100 is more than the 64 cells of the \(8, 8\) training grid"):
        trainer_for(replace(tiny_config, resolution=8, train_resolutions=(8, 16), points=100), progress=False)
