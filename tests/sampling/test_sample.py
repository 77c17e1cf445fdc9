"""`sample` at any resolution: the reference shape comes from the model, samplers follow the process's protocol."""


import pytest
import torch
from torch import nn

from funcdiff import DiffusionProcess, FunctionalFlowMatching, GaussianMollifier, GridDomain, IdentityMollifier, MollifiedDDPM, NeuralOperator, cosine_schedule, sample_ddim, sample_heun
from funcdiff.sampling import SAMPLERS, resolve_sampler, sample


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


def starting_state(model, y_T, grid, *, process, **options):
    """A 'sampler' that returns its starting state, to look at the prior that `sample` built."""
    return y_T


def test_prior_noise_is_scaled_for_the_models_reference_resolution() -> None:
    """docs/math.md §2: at 32 px a model trained at 16 px gets per-point noise variance (32 / 16)^2 = 4, with or without
    nesting, without the caller saying the reference shape."""
    wide = MollifiedDDPM(GridDomain(2, 1, value_range=(-10.0, 10.0)), cosine_schedule(10), IdentityMollifier())
    for nest in (None, 64):
        y_T = sample(ZeroOperator(), wide, 32, batch=400, sampler=starting_state, steps=5, nest_resolution=nest,
                     generator=torch.Generator().manual_seed(0))
        assert y_T.shape == (400, 1, 32, 32) and abs(y_T.var().item() / 4 - 1) < 0.03, nest
    blurred = MollifiedDDPM(GridDomain(2, 1), cosine_schedule(10), GaussianMollifier(0.5 / 32))
    direct, nested = (sample(ZeroOperator(), blurred, 32, batch=2000, sampler=starting_state, steps=5, nest_resolution=nest,
                             generator=torch.Generator().manual_seed(1)) for nest in (None, 128))
    assert abs(nested.var().item() / direct.var().item() - 1) < 0.03  # nesting keeps the prior's distribution
    process = MollifiedDDPM(GridDomain(2, 1), cosine_schedule(10), IdentityMollifier())
    clipped = sample(ZeroOperator(), process, 32, batch=4, sampler=starting_state, steps=5, generator=torch.Generator().manual_seed(0))
    assert clipped.abs().max() <= 1  # clipped to the domain's value range


def test_default_and_named_samplers_follow_the_process_protocol() -> None:
    """DDIM for a DenoisingProcess, Heun for a FlowProcess; a name that does not fit the process is refused."""
    ddpm = MollifiedDDPM(GridDomain(2, 1), cosine_schedule(10), IdentityMollifier())
    flow = FunctionalFlowMatching(GridDomain(2, 1), IdentityMollifier())
    assert resolve_sampler("auto", ddpm).function is sample_ddim
    assert resolve_sampler("auto", flow).function is sample_heun
    with pytest.raises(ValueError, match="no default sampler"):
        resolve_sampler("auto", LossOnlyProcess())
    with pytest.raises(ValueError, match="needs a FlowProcess"):
        resolve_sampler("heun", ddpm)
    with pytest.raises(ValueError, match="sampler must be one of"):
        resolve_sampler("euler-maruyama", flow)
    assert resolve_sampler("heun", flow).model_calls(10) == 19 and SAMPLERS["ddim"].model_calls(10) == 10
    for steps in (1, 3):
        out = sample(ZeroOperator(), flow, 24, batch=2, steps=steps, generator=torch.Generator().manual_seed(0))
        assert out.shape == (2, 1, 24, 24) and bool(out.isfinite().all())


class ShiftedPriorProcess(DiffusionProcess):
    """A process whose prior is ``T eps + 3``: a custom prior that nested sampling must still call."""

    domain, mollifier = GridDomain(2, 1, value_range=(-100.0, 100.0)), IdentityMollifier()

    def loss(self, model, x0, *, points, generator, cond=None):
        return x0.sum()

    def prior(self, batch, shape, reference_shape, *, generator=None, dtype=torch.float32, device=None, noise=None):
        base = super().prior(batch, shape, reference_shape, generator=generator, dtype=dtype, device=device, noise=noise)
        return base + 3.0

    def to_dict(self):
        return {"kind": "shifted-prior"}


class FirstCellDomain(GridDomain):
    """A grid whose coarse cells are measured by their first fine cell alone (a stand-in for cells of other sizes)."""

    def coarsen(self, x, factor):
        return x[..., ::factor, ::factor]


def test_nested_sampling_calls_the_process_prior_and_the_domains_coarsening() -> None:
    """With nest_resolution the start is still the process's own prior (a custom one included), and the fine noise is
    coarsened by the domain's cell measure (`Domain.coarsen`), not by a box average hard-wired in `sample`."""
    process = ShiftedPriorProcess()
    for nest in (None, 64):
        y = sample(ZeroOperator(), process, 32, batch=200, steps=1, sampler=starting_state, nest_resolution=nest,
                   generator=torch.Generator().manual_seed(0))
        assert abs(y.mean().item() - 3) < 0.05 and abs(y.var().item() / 4 - 1) < 0.05, nest
    domain = FirstCellDomain(2, 1, value_range=(-100.0, 100.0))
    process = MollifiedDDPM(domain, cosine_schedule(10), IdentityMollifier())
    y = sample(ZeroOperator(), process, 32, batch=3, steps=1, sampler=starting_state, nest_resolution=64,
               generator=torch.Generator().manual_seed(5))
    fine = torch.randn(3, 1, 64, 64, generator=torch.Generator().manual_seed(5)) * 4  # white noise at 64 px for a 16 px model
    torch.testing.assert_close(y, fine[..., ::2, ::2])


def test_time_grids_and_sampler_options_reach_the_sampler() -> None:
    """`sample` builds the grid with the builder it is given over ``steps`` and passes the sampler's options on."""
    seen = {}

    def recorder(model, y, grid, *, process, **options):
        seen.update(grid=grid, options=options)
        return y

    process = MollifiedDDPM(GridDomain(2, 1), cosine_schedule(10), IdentityMollifier())
    sample(ZeroOperator(), process, 16, batch=1, steps=3, sampler=recorder, grid=lambda p, k: torch.linspace(1, 0, k + 1, dtype=torch.float64),
           options={"eta": 0.5})
    torch.testing.assert_close(seen["grid"], torch.tensor([1, 2 / 3, 1 / 3, 0], dtype=torch.float64))
    assert seen["options"]["eta"] == 0.5
    assert seen["options"]["reference_shape"] == (16, 16) and seen["options"]["guidance"] is None


def test_options_reach_a_sampler_function_only_if_it_takes_them() -> None:
    """A task's ``clip`` goes to the samplers that take it: registered ones by their entry, functions by their
    signature (all options to one with ``**options``)."""
    from funcdiff.sampling import taken_options

    ddpm = MollifiedDDPM(GridDomain(2, 1), cosine_schedule(10), IdentityMollifier())
    flow = FunctionalFlowMatching(GridDomain(2, 1), IdentityMollifier())
    assert taken_options("ddim", ddpm, clip=False) == {"clip": False} and taken_options("heun", flow, clip=False) == {}

    def plain(model, y, grid, *, process, cond=None):
        return y

    def loose(model, y, grid, *, process, **options):
        return y

    assert taken_options(plain, flow, clip=False) == {} and taken_options(loose, flow, clip=False) == {"clip": False}


def test_a_trainer_refuses_a_sampler_of_another_signature(tmp_path) -> None:
    """A sampler function that cannot take the common signature is refused when the trainer is built, not hours later."""
    from funcdiff.training import TrainSettings, Trainer

    process = MollifiedDDPM(GridDomain(2, 1), cosine_schedule(10), IdentityMollifier())
    settings = TrainSettings(steps=1, batch_size=2, out_dir=str(tmp_path / "run"))
    with pytest.raises(ValueError, match="sampler must take"):
        Trainer(ZeroOperator(), process, [torch.zeros(1, 16, 16)] * 2, settings, sampler=lambda model, process, y_T, steps: y_T)

