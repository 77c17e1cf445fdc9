"""`sample` at any resolution: the reference shape comes from the model, samplers follow the process's protocol."""

import functools

import pytest
import torch
from torch import nn

from funcdiff import DiffusionProcess, FunctionalFlowMatching, GaussianMollifier, GridDomain, IdentityMollifier, MollifiedDDPM, NeuralOperator, cosine_schedule, sample_ddim, sample_heun
from funcdiff.factory import make_sampler
from funcdiff.training import default_sampler, sample


class ZeroOperator(nn.Module, NeuralOperator):
    """Predicts zeros; trained (nominally) at 16 x 16."""

    reference_shape = (16, 16)

    def forward(self, points, t, cond=None):
        return torch.zeros_like(points.values)

    def forward_dense(self, x, t, cond=None, *, chunk_points=None):
        return torch.zeros_like(x)

    def to_dict(self):
        return {"kind": "zero-operator"}


class LossOnlyProcess(DiffusionProcess):
    """A process with a loss and a prior but neither family's sampling methods."""

    domain, mollifier = GridDomain(2, 1), IdentityMollifier()

    def loss(self, model, x0, *, points, generator, cond=None):
        return x0.sum()

    def prior(self, batch, shape, reference_shape, *, generator=None, dtype=torch.float32, device=None):
        return torch.zeros(batch, *shape)

    def to_dict(self):
        return {"kind": "loss-only"}


def starting_state(model, process, y_T, steps, *, cond, progress):
    """A 'sampler' that returns its starting state, to look at the prior that `sample` built."""
    return y_T


def test_prior_noise_is_scaled_for_the_models_reference_resolution() -> None:
    """docs/math.md §2: at 32 px a model trained at 16 px gets per-point noise variance (32 / 16)^2 = 4, with or without
    nesting, without the caller saying the reference shape."""
    wide = MollifiedDDPM(GridDomain(2, 1, value_range=(-10.0, 10.0)), cosine_schedule(10), IdentityMollifier())
    for nest in (None, 64):
        y_T = sample(ZeroOperator(), wide, 32, batch=400, sampler=starting_state, nest_resolution=nest,
                     generator=torch.Generator().manual_seed(0))
        assert y_T.shape == (400, 1, 32, 32) and abs(y_T.var().item() / 4 - 1) < 0.03, nest
    blurred = MollifiedDDPM(GridDomain(2, 1), cosine_schedule(10), GaussianMollifier(0.5 / 32))
    direct, nested = (sample(ZeroOperator(), blurred, 32, batch=2000, sampler=starting_state, nest_resolution=nest,
                             generator=torch.Generator().manual_seed(1)) for nest in (None, 128))
    assert abs(nested.var().item() / direct.var().item() - 1) < 0.03  # nesting keeps the prior's distribution
    process = MollifiedDDPM(GridDomain(2, 1), cosine_schedule(10), IdentityMollifier())
    clipped = sample(ZeroOperator(), process, 32, batch=4, sampler=starting_state, generator=torch.Generator().manual_seed(0))
    assert clipped.abs().max() <= 1  # clipped to the domain's value range


def test_default_and_named_samplers_follow_the_process_protocol() -> None:
    """DDIM for a DenoisingProcess, Heun for a FlowProcess; a name that does not fit the process is refused."""
    ddpm = MollifiedDDPM(GridDomain(2, 1), cosine_schedule(10), IdentityMollifier())
    flow = FunctionalFlowMatching(GridDomain(2, 1), IdentityMollifier())
    chosen = default_sampler(ddpm, reference_shape=(16, 16))
    assert isinstance(chosen, functools.partial) and chosen.func is sample_ddim and chosen.keywords["reference_shape"] == (16, 16)
    assert default_sampler(flow, reference_shape=(16, 16)) is sample_heun
    with pytest.raises(ValueError, match="no default sampler"):
        default_sampler(LossOnlyProcess(), reference_shape=(16, 16))
    with pytest.raises(ValueError, match="needs a FlowProcess"):
        make_sampler("heun", ddpm, reference_shape=(16, 16))
    assert make_sampler("auto", flow, reference_shape=(16, 16)) is sample_heun
    for steps in (1, 3):
        out = sample(ZeroOperator(), flow, 24, batch=2, steps=steps, generator=torch.Generator().manual_seed(0))
        assert out.shape == (2, 1, 24, 24) and bool(out.isfinite().all())
