"""Contracts of the processes, schedules and samplers that mutation testing showed untested: documented defaults,
progress bars, ``cond`` and generators passed through, batches of one, exact configs, clipping to the domain's range,
the Wiener filter's inv_snr, and every refusal's message."""

import math
import re
from fractions import Fraction

import numpy as np
import pytest
import torch

from funcdiff import (
    FunctionalFlowMatching,
    GaussianMollifier,
    GridDomain,
    IdentityMollifier,
    InpaintingGuidance,
    MollifiedDDPM,
    constant_schedule,
    cosine_schedule,
    encode_ddim,
    linear_schedule,
    sample_ddim,
    sample_ddpm,
    sample_euler,
    sample_heun,
)
from funcdiff.processes import FlowProcess, Schedule, respace, table_schedule
from funcdiff.sampling import SAMPLERS as SAMPLER_TABLE
from funcdiff.sampling import uniform_t
from funcdiff.registry import build
from tests.strategies import assert_on_the_inputs_device, ours_or_checkers
from tests.helpers import dct_matrix, grid_of

N = 8
COND = torch.tensor([7.0])


def ddpm(steps: int = 30, **options) -> MollifiedDDPM:
    """A cosine-schedule process on an 8-cell grid."""
    return MollifiedDDPM(GridDomain(1, 1), cosine_schedule(steps), GaussianMollifier(0.1), **options)


def flow(**options) -> FunctionalFlowMatching:
    """A flow on an 8-cell grid."""
    return FunctionalFlowMatching(GridDomain(1, 1), GaussianMollifier(0.1), **options)


def wiener(sigma: float, inv_snr: float) -> torch.Tensor:
    """W of docs/math.md §1 on the 8-cell grid as a float64 matrix."""
    c = dct_matrix(N)
    g = torch.exp(-((math.pi * torch.arange(N, dtype=torch.float64) * sigma) ** 2) / 2)
    return c.T @ torch.diag(g / (g**2 + inv_snr**2)) @ c


def start(batch: int = 2) -> torch.Tensor:
    """A float64 start state."""
    return torch.randn(batch, 1, N, generator=torch.Generator().manual_seed(3), dtype=torch.float64)


class Model:
    """``(0.5 + 0.1 t) y`` that counts its calls and insists on receiving `COND`."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, y: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        assert cond is COND
        self.calls += 1
        return (0.5 + 0.1 * t.view(-1, 1, 1)) * y


FUNCTIONS = {"ddpm": sample_ddpm, "ddim": sample_ddim, "encode": encode_ddim, "euler": sample_euler, "heun": sample_heun}


def run(name: str, model, y: torch.Tensor, steps: int | list[int] = 4, process=None, **options) -> torch.Tensor:
    """One of the five samplers over ``steps`` with ``cond=COND`` and the options it needs."""
    if name in ("ddpm", "ddim"):
        options.setdefault("reference_shape", (N,))
    process = process or (FLOW if name in ("euler", "heun") else DDPM)
    return FUNCTIONS[name](model, y, grid_of(process, steps), process=process, cond=COND, **options)


SAMPLERS = ["ddpm", "ddim", "encode", "euler", "heun"]
DDPM, FLOW = ddpm(), flow()  # built once, outside any default-device context


@pytest.mark.parametrize("name", SAMPLERS)
def test_progress_bar_only_when_asked(name: str, capsys) -> None:
    """No output by default; with progress=True a bar named "sampling" (or "encoding") on stderr, cleared when done
    (no line is left behind)."""
    run(name, Model(), start(), 3)
    assert capsys.readouterr().err == ""
    run(name, Model(), start(), 3, progress=True)
    err = capsys.readouterr().err
    assert re.search(rf"(^|\r){'encoding' if name == 'encode' else 'sampling'}: ", err), err
    assert "\n" not in err


@pytest.mark.parametrize("name", ["ddpm", "ddim", "dpmpp", "euler", "heun"])
@pytest.mark.parametrize("steps", [1, 7, 30])
def test_model_calls_are_what_the_sampler_table_says(name: str, steps: int) -> None:
    """Every registered sampler calls the model as often as its entry in `SAMPLERS` says (Heun: two calls per step
    but the last), with cond each time; ``uniform_t`` over all 30 steps of a DDPM is every step."""
    model, entry = Model(), SAMPLER_TABLE[name]
    process = FLOW if entry.protocol is FlowProcess else DDPM
    entry.function(model, start(), uniform_t(process, steps), process=process, cond=COND, reference_shape=(N,))
    assert model.calls == entry.model_calls(steps) == steps * entry.calls_per_step - (entry.calls_per_step - 1)


@pytest.mark.parametrize("name", ["ddpm", "ddim", "euler", "heun"])
def test_default_is_the_denoised_clipped_deterministic_sample(name: str) -> None:
    """By default samplers report the denoised sample (not the state), clip (DDPM, DDIM) and DDIM is deterministic."""
    wild = lambda y, t, c: -3 * y  # noqa: E731
    y = start()
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    options = {"generator": gen()} if name in ("ddpm", "ddim") else {}
    default = run(name, wild, y, 4, **options)
    explicit = {"denoise": True} | ({"clip": True} if name in ("ddpm", "ddim") else {}) | ({"eta": 0.0} if name == "ddim" else {})
    if name in ("ddpm", "ddim"):
        explicit["generator"] = gen()
    torch.testing.assert_close(default, run(name, wild, y, 4, **explicit), rtol=0, atol=0)
    state = run(name, wild, y, 4, **(explicit | {"denoise": False} | ({"generator": gen()} if "generator" in explicit else {})))
    assert not torch.allclose(default, state)


@pytest.mark.parametrize("name", SAMPLERS)
def test_a_batch_of_one(name: str) -> None:
    """A single example samples (steps are read from its own entry) and NaN is reported with the step."""
    assert run(name, Model(), start(1), [20, 5] if name in ("ddpm", "ddim", "encode") else 2).shape == (1, 1, N)
    step = "t=5" if name == "encode" else ("t=20" if name in ("ddpm", "ddim") else "0")
    with pytest.raises(FloatingPointError, match=rf"at step {step}\b"):
        run(name, lambda y, t, c: y * math.nan, start(1), [20, 5] if name in ("ddpm", "ddim", "encode") else 2)


def test_callbacks_see_every_step() -> None:
    """Every sampler calls back with the noise time reached, the new state and the data estimate it stepped with."""
    seen = []
    process = ddpm()
    sample_ddim(Model(), start(1), grid_of(process, [20, 5]), process=process, reference_shape=(N,), cond=COND,
                callback=lambda tau, y, tx0: seen.append((tau * process.num_steps, y.shape, tx0.shape)))
    assert seen == [(5, (1, 1, N), (1, 1, N)), (0, (1, 1, N), (1, 1, N))]
    seen.clear()
    states, estimates = [], []
    sample_heun(Model(), start(), grid_of(flow(), 4), process=flow(), cond=COND,
                callback=lambda tau, y, d: (seen.append(tau), states.append(y), estimates.append(d)))
    assert seen == [0.75, 0.5, 0.25, 0.0] and all(state.shape == d.shape == (2, 1, N) for state, d in zip(states, estimates))
    torch.testing.assert_close(states[-1], sample_heun(Model(), start(), grid_of(flow(), 4), process=flow(), cond=COND, denoise=False), rtol=0, atol=0)


def test_eta_zero_draws_no_noise_and_guidance_changes_ddpm() -> None:
    """DDIM with eta = 0 leaves the generator untouched; DDPM with guidance differs from DDPM without."""
    gen = torch.Generator().manual_seed(0)
    state = gen.get_state()
    sample_ddim(Model(), start(), grid_of(ddpm(), 4), process=ddpm(), reference_shape=(N,), cond=COND, generator=gen)
    assert torch.equal(gen.get_state(), state)
    guidance = InpaintingGuidance(torch.ones(2, 1, N), torch.ones(1, 1, N), GaussianMollifier(0.1))
    free = run("ddpm", Model(), start(), 4, generator=torch.Generator().manual_seed(0))
    guided = run("ddpm", Model(), start(), 4, generator=torch.Generator().manual_seed(0), guidance=guidance)
    assert not torch.allclose(free, guided)


def test_reference_shape_checks() -> None:
    """Any positive reference size is accepted; a wrong number of axes is refused, naming how many are needed."""
    run("ddim", Model(), start(), 3, reference_shape=(1,))
    with pytest.raises(ValueError, match=r"reference_shape must give the training grid's 1 spatial sizes, got \(8, 8\)"):
        run("ddim", Model(), start(), 3, reference_shape=(8, 8))
    with pytest.raises(ValueError, match=r"reference_shape must give the training grid's 1 spatial sizes, got \(0,\)"):
        run("ddpm", Model(), start(), 3, reference_shape=(0,))


def test_losses_follow_the_generator_and_pass_cond() -> None:
    """The same seed gives the same loss (times, noise and points all from the generator, none from the global RNG);
    cond reaches the model."""
    x0 = torch.rand(2, 1, N, dtype=torch.float64)
    model = lambda p, t, c: (c is COND or pytest.fail("cond not passed")) and 0.5 * p.values  # noqa: E731
    for process in (ddpm(), flow()):
        state = torch.random.get_rng_state()
        losses = [process.loss(model, x0, points=3, generator=torch.Generator().manual_seed(s), cond=COND) for s in (4, 4, 5)]
        assert torch.equal(torch.random.get_rng_state(), state)
        assert losses[0] == losses[1] != losses[2]
        for seed in range(5):  # the points drawn change with the seed too, so the loss cannot be the same by chance
            assert process.loss(model, x0, points=3, generator=torch.Generator().manual_seed(seed), cond=COND) == \
                process.loss(model, x0, points=3, generator=torch.Generator().manual_seed(seed), cond=COND)


def test_prior_replays_from_the_seed_in_the_asked_dtype() -> None:
    """The prior is T(z sqrt(N / N_ref)) for z drawn from the generator, in the asked dtype."""
    process = ddpm()
    prior = process.prior(3, (1, N), (4,), generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    z = torch.randn(3, 1, N, generator=torch.Generator().manual_seed(9), dtype=torch.float64) * math.sqrt(2)
    assert prior.dtype == torch.float64
    torch.testing.assert_close(prior, process.mollifier.mollify(z), rtol=0, atol=0)


def test_process_configs_are_exact() -> None:
    """Both processes save every setting and rebuild equal."""
    process = MollifiedDDPM(GridDomain(1, 1), cosine_schedule(10), IdentityMollifier(), "x0", inv_snr=0.2)
    assert process.to_dict()["prediction"] == "x0" and process.to_dict()["inv_snr"] == 0.2
    assert build(process.to_dict()).to_dict() == process.to_dict()
    f = FunctionalFlowMatching(GridDomain(2, 3), GaussianMollifier(0.1), sigma_min=0.1, prediction="x1", inv_snr=0.2)
    config = f.to_dict()
    assert {k: config[k] for k in ("kind", "sigma_min", "prediction", "inv_snr")} == {
        "kind": "flow_matching", "sigma_min": 0.1, "prediction": "x1", "inv_snr": 0.2}
    assert config["domain"]["channels"] == 3 and config["mollifier"]["sigma"] == 0.1
    rebuilt = build(config)
    assert rebuilt.to_dict() == config and repr(rebuilt).startswith("FunctionalFlowMatching(")


def test_schedule_configs_and_tables() -> None:
    """Each builder saves its own arguments; a hand-made table saves itself; defaults are as documented."""
    assert cosine_schedule().to_dict() == {"kind": "cosine", "num_steps": 1000, "offset": 0.008, "max_beta": 0.999}
    assert linear_schedule(100).to_dict() == {"kind": "linear", "num_steps": 100, "beta_start": 1e-3, "beta_end": 0.2}
    assert constant_schedule(5).to_dict() == {"kind": "constant", "num_steps": 5, "beta": 0.008}
    table = table_schedule([1.0, 0.5, 0.25])
    assert table.to_dict() == {"kind": "table", "alpha_bar": [1.0, 0.5, 0.25]} and table.num_steps == 2
    assert torch.equal(build(table.to_dict()).alpha_bar, table.alpha_bar)
    assert torch.equal(Schedule(table.alpha_bar).alpha_bar, torch.tensor([1.0, 0.5, 0.25], dtype=torch.float64))


def test_linear_and_constant_tables_are_exact() -> None:
    """abar_t = prod (1 - beta_s), betas linear from 0.1 / T to 20 / T (capped at 0.999) or constant, in float64."""
    for steps in (50, 10):
        betas = np.linspace(min(0.1 / steps, 0.999), min(20 / steps, 0.999), steps)
        expected = np.concatenate([[1.0], np.cumprod(1 - betas)])
        np.testing.assert_allclose(linear_schedule(steps).alpha_bar.numpy(), expected, rtol=1e-13, atol=0)
    np.testing.assert_allclose(constant_schedule(7, beta=0.1).alpha_bar.numpy(), 0.9 ** np.arange(8), rtol=1e-14, atol=0)
    assert linear_schedule(4, beta_start=0.1, beta_end=0.1).beta[1:].tolist() == pytest.approx([0.1] * 4, abs=1e-15)


def test_schedule_messages() -> None:
    """Bad tables and settings are refused with the rule they break."""
    with pytest.raises(ValueError, match=r"alpha_bar must be a 1-D float64 tensor of length T \+ 1 >= 2"):
        Schedule(torch.tensor([1.0, 0.5]))
    with pytest.raises((ValueError, TypeError), match=ours_or_checkers(r"alpha_bar must be a 1-D float64 tensor of length T \+ 1 >= 2")):
        Schedule(torch.tensor([[1.0, 0.5]], dtype=torch.float64))
    with pytest.raises(ValueError, match=r"alpha_bar must be a 1-D float64 tensor of length T \+ 1 >= 2"):
        Schedule(torch.tensor([1.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="alpha_bar must start at 1 and decrease strictly while staying > 0"):
        table_schedule([1.0, 0.5, 0.5])
    with pytest.raises((ValueError, TypeError), match=ours_or_checkers("num_steps must be a positive int, got True")):
        cosine_schedule(True)
    for start, end in ((0.0, 0.1), (0.2, 0.1), (0.1, 1.0)):
        with pytest.raises(ValueError, match=rf"need 0 < beta_start <= beta_end < 1, got {start}, {end}"):
            linear_schedule(10, beta_start=start, beta_end=end)
    for beta in (0.0, 1.0):
        with pytest.raises(ValueError, match=rf"beta must lie in \(0, 1\), got {beta}"):
            constant_schedule(10, beta=beta)


def test_respace_edges() -> None:
    """Two steps are T and 1; repeated steps are refused; a bool is not a step count."""
    assert respace(10, 2) == [10, 1] and respace(10, 1) == [10]
    with pytest.raises(ValueError, match="strictly decreasing"):
        respace(10, [5, 5])
    with pytest.raises(TypeError, match="timesteps must be an int or a sequence of ints"):
        respace(10, True)


def test_constructor_messages() -> None:
    """Components of the wrong kind and unknown options are refused by name with what was given."""
    domain, schedule, mollifier = GridDomain(1, 1), cosine_schedule(10), GaussianMollifier(0.1)
    cases = [
        (lambda: MollifiedDDPM(None, schedule, mollifier), "domain must be a Domain, got NoneType"),
        (lambda: MollifiedDDPM(domain, [1.0], mollifier), "schedule must be a Schedule, got list"),
        (lambda: MollifiedDDPM(domain, schedule, "gaussian"), "mollifier must be a Mollifier, got str"),
        (lambda: MollifiedDDPM(domain, schedule, mollifier, "eps"), r"prediction must be one of \('mollified_eps', 'x0'\), got 'eps'"),
        (lambda: FunctionalFlowMatching(3, mollifier), "domain must be a Domain, got int"),
        (lambda: FunctionalFlowMatching(domain, None), "mollifier must be a Mollifier, got NoneType"),
        (lambda: FunctionalFlowMatching(domain, mollifier, prediction="v"), r"prediction must be one of \('velocity', 'x1'\), got 'v'"),
        (lambda: FunctionalFlowMatching(domain, mollifier, sigma_min=True), "sigma_min must be a number in"),
    ]
    for make, message in cases:
        with pytest.raises((ValueError, TypeError), match=ours_or_checkers(message)):
            make()


def test_x0_estimate_clips_to_the_domains_range_and_filters_with_its_inv_snr() -> None:
    """x0-prediction clips xhat0 to the domain's value range on both sides (guided or not) and steps with T of it;
    mollified-eps reports W(T xhat0) with the process's inv_snr; guidance moves xhat0 by W(correction)."""
    process = MollifiedDDPM(GridDomain(1, 1, value_range=(-0.5, 2.0)), cosine_schedule(10), GaussianMollifier(0.1), "x0", inv_snr=0.3)
    output = torch.linspace(-3, 3, N, dtype=torch.float64).view(1, 1, N)
    y, t = torch.zeros(1, 1, N, dtype=torch.float64), torch.tensor([5])
    state, reported = process.estimate(output, y, t, clip=True)
    torch.testing.assert_close(reported, output.clamp(-0.5, 2.0), rtol=0, atol=0)
    torch.testing.assert_close(state, process.mollifier.mollify(output.clamp(-0.5, 2.0)), rtol=0, atol=0)
    correction = torch.full((1, 1, N), 0.25, dtype=torch.float64)
    moved = output + (correction.view(1, N) @ wiener(0.1, 0.3).T).view(1, 1, N)
    state, reported = process.estimate(output, y, t, clip=True, correction=correction)
    torch.testing.assert_close(reported, moved.clamp(-0.5, 2.0), rtol=1e-12, atol=1e-12)
    _, reported = process.estimate(output, y, t, clip=False, correction=correction)
    torch.testing.assert_close(reported, moved, rtol=1e-12, atol=1e-12)
    eps = MollifiedDDPM(GridDomain(1, 1), cosine_schedule(10), GaussianMollifier(0.1), inv_snr=0.3)
    tx0, reported = eps.estimate(output, start(1), t, clip=False)
    torch.testing.assert_close(reported, (tx0.view(1, N) @ wiener(0.1, 0.3).T).view(1, 1, N), rtol=1e-12, atol=1e-12)
    y_1 = start(1)
    f = flow(inv_snr=0.3, prediction="velocity")
    torch.testing.assert_close(f.finalize(y_1, output), (y_1.view(1, N) @ wiener(0.1, 0.3).T).view(1, 1, N), rtol=1e-12, atol=1e-12)
    x1 = flow(inv_snr=0.3, prediction="x1")  # the network's xhat1, moved by W of the state's distance from T xhat1
    moved = output + ((y_1 - x1.mollifier.mollify(output)).view(1, N) @ wiener(0.1, 0.3).T).view(1, 1, N)
    torch.testing.assert_close(x1.finalize(y_1, output), moved, rtol=1e-12, atol=1e-12)


def test_posterior_steps_and_dtypes() -> None:
    """The posterior goes to t - 1 by default or to any earlier prev (docs/math.md §4), never to prev >= t; its variance
    comes in the field's dtype."""
    process = ddpm()
    x0, y = start(1), start(1).flip(-1)
    a = process.schedule.alpha_bar
    for prev in (None, 3):
        p = 7 - 1 if prev is None else prev
        mean, var = process.posterior(x0, y, torch.tensor([7]), prev=None if prev is None else torch.tensor([prev]))
        beta = 1 - a[7] / a[p]
        torch.testing.assert_close(var, (beta * (1 - a[p]) / (1 - a[7])).view(1))
        c2 = (a[7] / a[p]).sqrt() * (1 - a[p]) / (1 - a[7])
        c1 = a[p].sqrt() * beta / (1 - a[7])
        torch.testing.assert_close(mean, c1 * process.mollifier.mollify(x0) + c2 * y)
    with pytest.raises(ValueError, match="prev must be smaller than t"):
        process.posterior(x0, y, torch.tensor([7]), prev=torch.tensor([7]))
    _, var = process.posterior(x0.float(), y.float(), torch.tensor([7]))
    assert var.dtype == torch.float32


def test_step_checks() -> None:
    """Steps are integer tensors (b,) in [1, T], or [0, T] where abar_0 = 1 is asked for; messages say which."""
    process, x0 = ddpm(10), start(2)
    assert process.alpha_bar(torch.tensor([0, 10])).tolist() == [1.0, pytest.approx(float(process.schedule.alpha_bar[10]))]
    for t, message in (
        (torch.tensor([0, 1]), r"t must lie in \[1, 10\], got values in \[0, 1\]"),
        (torch.tensor([1, 11]), r"t must lie in \[1, 10\], got values in \[1, 11\]"),
        (torch.tensor([True, False]), r"t must be an integer tensor of shape \(b,\), got torch.bool \(2,\)"),
        (torch.tensor([[1, 2]]), r"t must be an integer tensor of shape \(b,\), got torch.int64 \(1, 2\)"),
        (torch.tensor([0.5, 1.0]), r"t must be an integer tensor of shape \(b,\), got torch.float32 \(2,\)"),
    ):
        with pytest.raises((ValueError, TypeError), match=ours_or_checkers(message)):
            process.check_steps(t)
            process.q_sample(x0, t, x0)
    with pytest.raises(ValueError, match=r"t must lie in \[0, 10\], got values in \[-1, 2\]"):
        process.alpha_bar(torch.tensor([-1, 2]))


def test_path_and_velocity_checks() -> None:
    """The flow's path needs noise of x1's shape and s in [0, 1] (each end checked); x1-prediction has no velocity at
    s = 1 without sigma_min."""
    f, x1 = flow(), start(2)
    with pytest.raises((ValueError, TypeError), match=ours_or_checkers(r"noise must have the shape of x1 \(2, 1, 8\), got \(2, 1, 4\)")):
        f.path(x1, torch.tensor([0.5, 0.5], dtype=torch.float64), torch.zeros(2, 1, 4, dtype=torch.float64))
    with pytest.raises((ValueError, TypeError), match=ours_or_checkers(r"noise must have the shape of x0 \(2, 1, 8\), got \(2, 1, 4\)")):
        ddpm().q_sample(x1, torch.tensor([1, 2]), torch.zeros(2, 1, 4, dtype=torch.float64))
    for s, message in (([-0.25, 0.5], r"\[-0.25, 0.5\]"), ([0.5, 1.5], r"\[0.5, 1.5\]")):
        with pytest.raises(ValueError, match=rf"s must lie in \[0, 1\], got values in {message}"):
            f.path(x1, torch.tensor(s, dtype=torch.float64), x1)
    with pytest.raises(ValueError, match="an x1-predicting flow with sigma_min = 0 has no velocity at s = 1"):
        flow(prediction="x1").velocity(x1, x1, torch.ones(2, dtype=torch.float64))


def test_guidance_weight_zero_and_default() -> None:
    """Weight 0 leaves T xhat0 as it is; the default weight is 1."""
    known, mask = torch.ones(1, 1, N, dtype=torch.float64), torch.ones(1, 1, N, dtype=torch.float64)
    y = start(1).requires_grad_(True)
    tx0 = 0.5 * y
    abar = torch.tensor([0.5], dtype=torch.float64).sqrt()
    torch.testing.assert_close(InpaintingGuidance(known, mask, GaussianMollifier(0.1), 0.0)(y, tx0, abar), tx0)
    default = InpaintingGuidance(known, mask, GaussianMollifier(0.1))(y, 0.5 * y, abar)
    torch.testing.assert_close(default, InpaintingGuidance(known, mask, GaussianMollifier(0.1), 1.0)(y, 0.5 * y, abar))


def test_tensors_follow_the_inputs_device() -> None:
    """With another default device set (meta), losses, priors and samplers still make every tensor on the inputs'
    device (here the CPU) and give the results they give without it."""
    x = start(2)
    point_model = lambda p, t, c: 0.5 * p.values  # noqa: E731
    guidance = InpaintingGuidance(x, torch.ones(1, 1, N, dtype=torch.float64), GaussianMollifier(0.1))

    def results() -> list[torch.Tensor]:
        gen = torch.Generator().manual_seed(0)
        dense = [run(name, Model(), x, [7, 3] if name in ("ddpm", "ddim", "encode") else 2, **options)
                 for name, options in (("ddpm", {"generator": gen}), ("ddim", {"generator": gen, "eta": 1.0}), ("encode", {}),
                                       ("euler", {}), ("heun", {}))]
        return [
            *dense, DDPM.prior(2, (1, N), (4,), generator=gen, dtype=torch.float64, device="cpu"),
            DDPM.loss(point_model, x, points=3, generator=gen), FLOW.loss(point_model, x, points=3, generator=gen),
            sample_ddim(Model(), x, grid_of(DDPM, 4), process=DDPM, reference_shape=(N,), cond=COND, generator=gen, guidance=guidance),
        ]

    assert_on_the_inputs_device(results)


@pytest.fixture
def without_type_checker():
    """Switch jaxtyping's checks off (as a user may, for speed): what is refused then is refused by funcdiff itself."""
    import jaxtyping

    jaxtyping.config.update("jaxtyping_disable", True)
    yield
    jaxtyping.config.update("jaxtyping_disable", False)


def test_own_checks_without_the_type_checker(without_type_checker) -> None:
    """Noise of another shape than the data is refused by the processes themselves, naming both shapes."""
    x = start(2)
    with pytest.raises(ValueError, match=r"^noise must have the shape of x1 \(2, 1, 8\), got \(2, 1, 4\)$"):
        flow().path(x, torch.tensor([0.5, 0.5], dtype=torch.float64), torch.zeros(2, 1, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"^noise must have the shape of x0 \(2, 1, 8\), got \(2, 1, 4\)$"):
        ddpm().q_sample(x, torch.tensor([1, 2]), torch.zeros(2, 1, 4, dtype=torch.float64))


def test_exact_messages() -> None:
    """Messages are exactly what is documented (anchored, so nothing can be added around them)."""
    x = start(2)
    with pytest.raises(ValueError, match=r"^prev must be smaller than t$"):
        ddpm().posterior(x, x, torch.tensor([7, 7]), prev=torch.tensor([3, 7]))
    with pytest.raises(ValueError, match=r"^an x1-predicting flow with sigma_min = 0 has no velocity at s = 1$"):
        flow(prediction="x1").velocity(x, x, torch.ones(2, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"^alpha_bar must be a 1-D float64 tensor of length T \+ 1 >= 2$"):
        Schedule(torch.tensor([1.0, 0.5]))
    with pytest.raises(ValueError, match=r"^alpha_bar must start at 1 and decrease strictly while staying > 0$"):
        table_schedule([1.0, 1.0])
    with pytest.raises(TypeError, match=r"^timesteps must be an int or a sequence of ints$"):
        respace(10, False)


def test_respace_rounds_the_exact_linspace() -> None:
    """An int k gives T first, 1 last, strictly decreasing, each step within 1/2 of T - i (T - 1) / (k - 1) (exact
    rationals; which way an exact half rounds is not specified)."""
    for steps, k in ((28, 27), (48, 23), (1000, 100), (1000, 7), (10, 10)):
        out = respace(steps, k)
        assert len(out) == k and out[0] == steps and out[-1] == 1 and all(a > b for a, b in zip(out, out[1:]))
        assert all(abs(s - (steps - Fraction(i * (steps - 1), k - 1))) <= Fraction(1, 2) for i, s in enumerate(out))


def test_flow_step_counts_and_bools() -> None:
    """One step is a valid flow run, a bool is not a step count; booleans are not sigma_min or inv_snr either."""
    run("euler", Model(), start(), 1)
    run("heun", Model(), start(), 1)
    for name in ("euler", "heun"):
        with pytest.raises((ValueError, TypeError), match=ours_or_checkers("steps must be a positive int, got True")):
            run(name, Model(), start(), True)
    for bad in (False, True):
        with pytest.raises((ValueError, TypeError), match=ours_or_checkers("sigma_min must be a number in")):
            flow(sigma_min=bad)
    with pytest.raises((ValueError, TypeError), match=ours_or_checkers("inv_snr must be a finite number >= 0, got False")):
        flow(inv_snr=False)


def test_steps_named_in_errors_and_callbacks_for_every_path() -> None:
    """The guided path and DDIM with eta > 0 read the step from a batch of one; Heun names the step of its corrector;
    Euler calls back too."""
    nan = lambda y, t, c: y * math.nan  # noqa: E731
    guidance = InpaintingGuidance(start(1), torch.ones(1, 1, N, dtype=torch.float64), GaussianMollifier(0.1))
    with pytest.raises(FloatingPointError, match=r"at step t=20$"):
        sample_ddim(nan, start(1), grid_of(ddpm(), [20, 5]), process=ddpm(), reference_shape=(N,), guidance=guidance)
    assert sample_ddim(Model(), start(1), grid_of(ddpm(), [20, 5]), process=ddpm(), reference_shape=(N,), cond=COND, eta=1.0).shape == (1, 1, N)
    nan_at_half = lambda y, s, c: y * (math.nan if float(s[0]) == 0.5 else 0.5)  # noqa: E731
    with pytest.raises(FloatingPointError, match=r"at step 1 \(s=0\.5\)$"):
        sample_heun(nan_at_half, start(), grid_of(flow(), 4), process=flow())
    seen = []
    sample_euler(Model(), start(), grid_of(flow(), 2), process=flow(), cond=COND, callback=lambda tau, y, d: seen.append(tau))
    assert seen == [0.5, 0.0]


def test_builder_defaults() -> None:
    """Every schedule builder defaults to 1000 steps."""
    assert cosine_schedule().num_steps == linear_schedule().num_steps == constant_schedule().num_steps == 1000
