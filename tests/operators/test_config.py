"""Configurations and presets: JSON round trip, validation, parameter counts (docs/reference-differences.md §6)."""

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from funcdiff.operators import InftyDiffOperator, LatentMLP, LatentMLPConfig, OperatorConfig, SparseEncoder, parameter_count, preset_config

PRESETS = ("paper-256", "paper-128", "cpu-small", "tiny")


@settings(deadline=None, max_examples=20)
@given(
    name=st.sampled_from(PRESETS), channels=st.integers(1, 4), resolution=st.sampled_from([16, 32, 64, 128, 256]),
    ndim=st.integers(1, 3),
)
def test_json_round_trip(name: str, channels: int, resolution: int, ndim: int) -> None:
    """``from_dict(json.loads(json.dumps(to_dict())))`` gives back an equal config."""
    config = preset_config(name, channels=channels, resolution=resolution, ndim=ndim)
    assert OperatorConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    latent = LatentMLPConfig(z_dim=8)
    assert LatentMLPConfig.from_dict(json.loads(json.dumps(latent.to_dict()))) == latent


def _count(module_type: type, config: object) -> int:
    with torch.device("meta"):
        return parameter_count(module_type(config))


def test_paper_parameter_counts() -> None:
    """The paper presets have the official sizes: decoder ~320M / ~44M, encoder ~120M / ~17M (docs/reference-differences.md §3)."""
    big = preset_config("paper-256", channels=3, resolution=256, z_dim=1024)
    small = preset_config("paper-128", channels=3, resolution=128, z_dim=256)
    assert 250e6 < _count(InftyDiffOperator, big) < 400e6
    assert 30e6 < _count(InftyDiffOperator, small) < 60e6
    assert 80e6 < _count(SparseEncoder, big) < 160e6
    assert 10e6 < _count(SparseEncoder, small) < 25e6
    assert 60e6 < _count(LatentMLP, LatentMLPConfig(z_dim=1024)) < 90e6


def test_validation() -> None:
    """Bad names, shapes, kernel sizes and unknown keys raise ValueError naming the argument."""
    with pytest.raises(ValueError, match="name"):
        preset_config("huge", channels=3, resolution=32)  # type: ignore[arg-type]
    good = preset_config("tiny", channels=3, resolution=16).to_dict()
    with pytest.raises(ValueError, match="kernel_size"):
        OperatorConfig.from_dict({**good, "kernel_size": 4})
    with pytest.raises(ValueError, match="unet_shape"):
        OperatorConfig.from_dict({**good, "unet_shape": [7, 7]})
    with pytest.raises(ValueError, match="unknown keys"):
        OperatorConfig.from_dict({**good, "colour": 1})
    with pytest.raises(ValueError, match="unknown keys"):  # the backend is a machine's choice, not architecture
        OperatorConfig.from_dict({**good, "backend": "dense"})
