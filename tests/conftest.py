"""Test configuration: hypothesis profiles and a deterministic, quiet torch."""

import os

import pytest
import torch
from hypothesis import HealthCheck, settings

settings.register_profile("dev", deadline=None, max_examples=20, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", deadline=None, max_examples=30, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "dev"))

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture
def generator() -> torch.Generator:
    """A seeded generator, so every stochastic test is reproducible."""
    return torch.Generator().manual_seed(0)
