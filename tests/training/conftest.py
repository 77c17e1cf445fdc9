"""Fixtures for training tests: a private icon cache, a tiny fast config, and trainers built from configs."""

import dataclasses

import pytest

from funcdiff.factory import TrainConfig, build_run
from funcdiff.training import Trainer, TrainResult, train


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch) -> None:
    """Render icons into a per-session temporary cache, never into ~/.cache."""
    monkeypatch.setenv("FUNCDIFF_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture
def tiny_config(tmp_path) -> TrainConfig:
    """The tiny preset on 32 icons at 16 px: a few steps take about a second."""
    return TrainConfig(data="icons", data_limit=32, resolution=16, preset="tiny", batch_size=8, lr=2e-3, steps=6,
                       diffusion_steps=100, log_every=1, checkpoint_every=0, sample_count=2, sample_steps=3,
                       out_dir=str(tmp_path / "run"))


def replace(config: TrainConfig, **changes) -> TrainConfig:
    """A copy of ``config`` with some fields changed."""
    return dataclasses.replace(config, **changes)


def trainer_for(config: TrainConfig, **options) -> Trainer:
    """A `Trainer` over the components that ``config`` builds (as the command line does)."""
    model, process, data = build_run(config)
    return Trainer(model, process, data, config.settings(), run_config=config.to_dict(), **options)


def train_config(config: TrainConfig, **options) -> TrainResult:
    """`train` over the components that ``config`` builds."""
    model, process, data = build_run(config)
    return train(model, process, data, config.settings(), run_config=config.to_dict(), **options)
