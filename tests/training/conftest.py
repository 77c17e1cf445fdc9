"""Fixtures for training tests: a private icon cache and a tiny, fast training config."""

import dataclasses

import pytest

from funcdiff.training import TrainConfig


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
