"""DPM-Solver++ (2M) (docs/math.md §12): its steps against the closed form, and its accuracy against the exact
probability-flow map of Gaussian data, computed by eigendecomposition instead of by any sampler."""

import json
import math

import pytest
import torch

from funcdiff import (
    FunctionalFlowMatching, GaussianMollifier, GridDomain, IdentityMollifier, InpaintingGuidance, MollifiedDDPM, cosine_schedule,
    sample_ddim,
)
from funcdiff.factory import TrainConfig
from funcdiff.sampling import resolve_sampler
from funcdiff.sampling import sample_dpmpp
from funcdiff.sampling import sample
from tests.helpers import grid_of
from tests.processes.test_exact_steps import estimates, make, model, start
from tests.processes.test_samplers import N, GaussianData, make_process
from tests.sampling.test_sample import ZeroOperator


def exact_sample(data: GaussianData, y_T: torch.Tensor) -> torch.Tensor:
    """What any sampler over steps T, ..., 1, 0 converges to: the probability-flow map from step T to step 1, then the
    exact ``T xhat0 = E[T x0 | y_1]`` of the final step.

    x_t ~ N(sqrt(abar_t) m, abar_t C + (1 - abar_t) I) and the flow is linear, so in the eigenbasis of C each
    coordinate of x_t - sqrt(abar_t) m is scaled by the ratio of its standard deviations (y = T x, T invertible).
    """
    alpha_bar = data.process.schedule.alpha_bar
    a_T, a_1 = alpha_bar[-1], alpha_bar[1]
    c, q = torch.linalg.eigh(data.cov)
    x_T = torch.linalg.solve(data.T, y_T.reshape(-1, N).T)
    z_1 = ((a_1 * c + 1 - a_1) / (a_T * c + 1 - a_T)).sqrt()[:, None] * (q.T @ (x_T - a_T.sqrt() * data.mean[:, None]))
    x0 = data.mean[:, None] + q @ ((a_1.sqrt() * c / (a_1 * c + 1 - a_1))[:, None] * z_1)
    return (data.T @ x0).T.reshape(y_T.shape)


def rms_errors(sampler, data: GaussianData, counts: tuple[int, ...], num: int = 256) -> list[float]:
    """Root-mean-square distance of ``sampler``'s deterministic output from `exact_sample`, per step count."""
    process = data.process
    y_T = process.prior(num, (1, N), (N,), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    exact = exact_sample(data, y_T)
    outputs = (sampler(data, y_T, grid_of(process, k), process=process, reference_shape=(N,), clip=False, denoise=False) for k in counts)
    return [(out - exact).pow(2).mean().sqrt().item() for out in outputs]


def test_the_oracle_is_where_fine_ddim_lands() -> None:
    """The closed form checks itself against DDIM over 500 of the 1000 steps (first order: measured 1.3e-3 away)."""
    assert rms_errors(sample_ddim, GaussianData(make_process(GaussianMollifier(0.06))), (500,))[0] < 2e-3


@pytest.mark.parametrize(
    "mollifier, steps", [(GaussianMollifier(0.06), 1000), (IdentityMollifier(), 1000), (GaussianMollifier(0.06), 100)],
    ids=["mollified", "white-noise", "100-steps"],
)
def test_beats_ddim_with_the_exact_gaussian_denoiser(mollifier, steps: int) -> None:
    """docs/math.md §12: the error is below DDIM's at the same count, far below from 10 steps on; mollified, 15 steps are
    as good as DDIM's 50 (white noise, whose finest modes are not damped by T, needs 20: measured 2.1e-2 at 15,
    1.3e-2 at 20 against DDIM's 1.5e-2 at 50)."""
    data = GaussianData(make_process(mollifier, "mollified_eps", steps))
    counts = (5, 10, 15, 20, 50)
    ddim, dpmpp = rms_errors(sample_ddim, data, counts), rms_errors(sample_dpmpp, data, counts)
    print("steps", counts, "\nddim  ", [f"{e:.2e}" for e in ddim], "\ndpmpp ", [f"{e:.2e}" for e in dpmpp])
    for k, d, p in zip(counts, ddim, dpmpp):
        assert p < {5: 0.9, 10: 0.6, 15: 0.5, 20: 0.5, 50: 0.2}[k] * d, (k, p, d)
    as_good_as_ddim_50 = dpmpp[3 if isinstance(mollifier, IdentityMollifier) else 2]
    assert as_good_as_ddim_50 <= ddim[4], (as_good_as_ddim_50, ddim[4])


@pytest.mark.parametrize("mollifier", [GaussianMollifier(0.06), IdentityMollifier()], ids=["mollified", "white-noise"])
def test_error_falls_at_second_order(mollifier) -> None:
    """Doubling the steps divides the error by about 4 (2 for a first-order method such as DDIM)."""
    data = GaussianData(make_process(mollifier))
    errors = rms_errors(sample_dpmpp, data, (10, 20, 40, 80))
    ratios = [a / b for a, b in zip(errors, errors[1:])]
    print("errors", [f"{e:.2e}" for e in errors], "ratios", [f"{r:.2f}" for r in ratios])
    assert all(3.0 < r < 6.0 for r in ratios), ratios
    order = -torch.linalg.lstsq(torch.tensor([[1.0, math.log(k)] for k in (10, 20, 40, 80)], dtype=torch.float64),
                                torch.tensor(errors, dtype=torch.float64).log()[:, None]).solution[1].item()
    assert 1.8 < order < 2.3, order


def hand_run(prediction: str, steps: list[int], first_order: set[int]) -> list[torch.Tensor]:
    """docs/math.md §12 written out in floats for the affine `model` of test_exact_steps: the state after each step of
    ``steps`` then 0, with the steps into ``first_order`` (and the first and last) first-order."""
    alpha_bar = make(prediction).schedule.alpha_bar
    lam = lambda a: math.log(math.sqrt(a) / math.sqrt(1 - a)) if a < 1 else math.inf  # noqa: E731
    y, states, previous = start(), [], None
    for s, t in zip(steps, steps[1:] + [0]):
        d, _, a_s = estimates(prediction, y, s)
        a_t = float(alpha_bar[t])
        h = lam(a_t) - lam(a_s)
        d2 = d
        if previous is not None and t != 0 and t not in first_order:
            r = previous[0] / h
            d2 = (1 + 1 / (2 * r)) * d - previous[1] / (2 * r)
        previous = (h, d)
        y = math.sqrt(1 - a_t) / math.sqrt(1 - a_s) * y - math.sqrt(a_t) * (math.exp(-h) - 1) * d2
        states.append(y)
    return states


@pytest.mark.parametrize("prediction", ["mollified_eps", "x0"])
@pytest.mark.parametrize("steps, first_order",
                         [([40, 25, 10, 1], set()), ([40, 30, 25, 10, 1], {1}), ([45, 40, 30, 25, 10, 4], {4})],
                         ids=["4-steps", "5-steps", "6-steps-ending-at-4"])
def test_steps_match_the_closed_form(prediction: str, steps: list[int], first_order: set[int]) -> None:
    """Every state equals docs/math.md §12's update; from 5 steps on, the step into the last positive step is first-order."""
    seen: list[torch.Tensor] = []
    end = sample_dpmpp(model, start(), grid_of(make(prediction), steps), process=make(prediction), reference_shape=(N,), clip=False, denoise=False, callback=lambda t, y, tx0: seen.append(y))
    expected = hand_run(prediction, steps, first_order)
    assert len(seen) == len(expected) == len(steps)
    for got, want in zip(seen, expected):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(end, seen[-1], rtol=0, atol=0)


@pytest.mark.parametrize("clip", [False, True])
def test_first_step_and_short_runs_are_ddim(clip: bool) -> None:
    """The first step is DDIM's (eta = 0), clipped estimate included; one- and two-step runs equal DDIM's, reported
    sample (W T xhat0) included."""
    process, y = make("mollified_eps"), 3 * start()  # scaled so that clipping bites

    def states(sampler, steps):
        seen: list[torch.Tensor] = []
        sampler(model, y, grid_of(process, steps), process=process, reference_shape=(N,), clip=clip, denoise=False,
                callback=lambda t, s, tx0: seen.append(s))
        return seen

    first = states(sample_dpmpp, [40, 25, 10, 1])[0]
    torch.testing.assert_close(first, states(sample_ddim, [40, 25, 10, 1])[0], rtol=1e-12, atol=1e-12)
    for steps in (1, 2, [30, 7]):
        for denoise in (False, True):
            ours = sample_dpmpp(model, y, grid_of(process, steps), process=process, reference_shape=(N,), clip=clip, denoise=denoise)
            ddim = sample_ddim(model, y, grid_of(process, steps), process=process, reference_shape=(N,), clip=clip, denoise=denoise)
            torch.testing.assert_close(ours, ddim, rtol=1e-12, atol=1e-12)


def test_contracts_shared_with_ddim(capsys) -> None:
    """20 steps by default with cond passed to each call; the default reports the clipped, denoised sample; float32
    stays float32; examples are independent of their batch; a guided two-step run is DDIM's; progress only when
    asked; NaN is reported with its step."""
    process, cond = make("mollified_eps"), torch.ones(1)
    calls: list[torch.Tensor | None] = []

    def counting(y: torch.Tensor, t: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        calls.append(c)
        return model(y, t, c) * 3

    y = start()
    default = sample_dpmpp(counting, y, grid_of(process, 20), process=process, reference_shape=(N,), cond=cond)
    assert len(calls) == 20 and all(c is cond for c in calls)
    torch.testing.assert_close(default, sample_dpmpp(counting, y, grid_of(process, 20), process=process, reference_shape=(N,), clip=True, denoise=True, cond=cond), rtol=0, atol=0)
    assert sample_dpmpp(lambda y, t, c: 0.5 * y, y.float(), grid_of(process, 6), process=process, reference_shape=(N,)).dtype == torch.float32
    batch = sample_dpmpp(model, y, grid_of(process, 6), process=process, reference_shape=(N,))
    torch.testing.assert_close(batch[1:2], sample_dpmpp(model, y[1:2], grid_of(process, 6), process=process, reference_shape=(N,)), rtol=1e-12, atol=1e-12)
    guidance = InpaintingGuidance(torch.zeros_like(y), (torch.arange(N) < 4).double().view(1, 1, N), process.mollifier, 1.0)
    guided = [f(model, y, grid_of(process, [40, 20]), process=process, reference_shape=(N,), guidance=guidance) for f in (sample_dpmpp, sample_ddim)]
    torch.testing.assert_close(*guided, rtol=1e-12, atol=1e-12)
    capsys.readouterr()
    sample_dpmpp(model, y, grid_of(process, 3), process=process, reference_shape=(N,))
    assert capsys.readouterr().err == ""
    sample_dpmpp(model, y, grid_of(process, 3), process=process, reference_shape=(N,), progress=True)
    assert "sampling: " in capsys.readouterr().err
    with pytest.raises(FloatingPointError, match=r"at step t=20\b"):
        sample_dpmpp(lambda y, t, c: y * math.nan, y, grid_of(process, [20, 5]), process=process, reference_shape=(N,))


def test_other_resolutions_commute_with_box_averaging() -> None:
    """At twice the reference resolution the map is the same pointwise map: with a pointwise affine model (mollified-eps,
    unclipped) sampling at 16 and box-averaging equals box-averaging the start and sampling at 8."""
    process = make("mollified_eps")
    y_16 = torch.randn(3, 1, 2 * N, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    average = lambda y: y.reshape(3, 1, -1, 2).mean(-1)  # noqa: E731
    run = lambda y: sample_dpmpp(model, y, grid_of(process, 6), process=process, reference_shape=(N,), clip=False, denoise=False)  # noqa: E731
    fine = run(y_16)
    assert fine.shape == y_16.shape
    torch.testing.assert_close(average(fine), run(average(y_16)), rtol=1e-12, atol=1e-12)


def test_named_sampler_runs_through_sample_and_the_command_line(capsys) -> None:
    """The name "dpmpp" resolves to `sample_dpmpp`; `sample` runs it at 24 px for a model trained at 16 (two steps
    are DDIM's); configs accept it for ddpm only, and the command line takes --sampler dpmpp."""
    ddpm = MollifiedDDPM(GridDomain(2, 1), cosine_schedule(10), GaussianMollifier(0.05))
    assert resolve_sampler("dpmpp", ddpm).function is sample_dpmpp

    def draw(name: str, steps: int) -> torch.Tensor:
        return sample(ZeroOperator(), ddpm, 24, batch=2, steps=steps, generator=torch.Generator().manual_seed(0), sampler=name)

    out = draw("dpmpp", 6)
    assert out.shape == (2, 1, 24, 24) and bool(out.isfinite().all())
    torch.testing.assert_close(draw("dpmpp", 2), draw("ddim", 2))
    with pytest.raises(ValueError, match="needs a DenoisingProcess"):
        resolve_sampler("dpmpp", FunctionalFlowMatching(GridDomain(2, 1), IdentityMollifier()))
    assert TrainConfig(sampler="dpmpp").checks()["sampler"]
    with pytest.raises(ValueError, match="sampler='dpmpp'"):
        TrainConfig(process="flow", sampler="dpmpp")
    from funcdiff.commands import main

    assert main(["sample", "--checkpoint", "nowhere", "--sampler", "dpmpp", "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["sampler"] == "dpmpp"


def test_bad_input_is_refused() -> None:
    """Step counts outside [1, T] and a reference shape of the wrong rank are ValueErrors naming the argument."""
    process, y = make("mollified_eps"), start()
    for steps in (0, -1, 51, [25, 40]):
        with pytest.raises(ValueError, match="steps"):
            sample_dpmpp(model, y, grid_of(process, steps), process=process, reference_shape=(N,))
    with pytest.raises(ValueError, match="reference_shape"):
        sample_dpmpp(model, y, grid_of(process, 5), process=process, reference_shape=(N, N))
