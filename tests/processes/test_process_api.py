"""The process's contracts: schedules, the subsampled loss, the prior, guidance and clear errors for bad input."""

import json
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from funcdiff import (
    GaussianMollifier,
    GridDomain,
    IdentityMollifier,
    InpaintingGuidance,
    MollifiedDDPM,
    Points,
    constant_schedule,
    cosine_schedule,
    linear_schedule,
    sample_ddim,
    sample_ddpm,
)
from funcdiff.factory import TrainConfig, build_process
from funcdiff.points import Scattered
from funcdiff.processes import Schedule, respace
from funcdiff.registry import build
from tests.helpers import mollifier_matrix, grid_of


@pytest.mark.parametrize("make", [cosine_schedule, linear_schedule, constant_schedule])
def test_schedule_contract(make) -> None:
    """alpha_bar is float64 of length T + 1 with alpha_bar[0] = 1, decreasing; it rebuilds from its config."""
    s = make(50)
    assert s.alpha_bar.dtype == torch.float64 and s.alpha_bar.shape == (51,) and s.alpha_bar[0] == 1
    assert bool((s.alpha_bar[1:] < s.alpha_bar[:-1]).all())
    rebuilt = build(json.loads(json.dumps(s.to_dict())))
    assert torch.equal(rebuilt.alpha_bar, s.alpha_bar)


def test_cosine_schedule_matches_nichol_dhariwal() -> None:
    """alpha_bar_t = f(t) / f(0) with f(t) = cos^2(((t/T + s)/(1 + s)) pi/2) while betas stay under the cap."""
    s = cosine_schedule(1000)
    f = lambda t: torch.cos(torch.tensor((t / 1000 + 0.008) / 1.008 * torch.pi / 2, dtype=torch.float64)) ** 2  # noqa: E731
    for t in (1, 250, 500, 900):
        torch.testing.assert_close(s.alpha_bar[t], f(t) / f(0), rtol=1e-10, atol=0)


def test_respacing() -> None:
    """An int gives evenly spaced decreasing steps from T to 1; explicit sequences are validated."""
    assert respace(1000, 5) == [1000, 750, 500, 251, 1]
    assert respace(10, 10) == list(range(10, 0, -1))
    assert respace(10, [7, 3]) == [7, 3]
    for bad in ([3, 7], [11], [], [0]):
        with pytest.raises(ValueError, match="timesteps"):
            respace(10, bad)
    with pytest.raises(ValueError, match="timesteps"):
        respace(10, 11)


@given(points=st.one_of(st.integers(1, 48), st.floats(0.05, 1.0)), prediction=st.sampled_from(["mollified_eps", "x0"]))
def test_loss_scores_the_model_at_the_drawn_points(points: int | float, prediction: str) -> None:
    """docs/math.md §3, §5: the model sees y_t = T(sqrt(abar_t) x0 + sqrt(1 - abar_t) eps) at n distinct cells and is
    scored there against T eps (or the unmollified x0), all replayed from the seed with a dense float64 T."""
    process = MollifiedDDPM(GridDomain(2, 2), cosine_schedule(100), GaussianMollifier(0.1), prediction)
    x0 = torch.rand(3, 2, 6, 8, dtype=torch.float64) * 2 - 1
    seen: list[tuple[Points, torch.Tensor]] = []

    def model(p: Points, t: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        seen.append((p, t))
        return 0.5 * p.values + 0.1

    loss = process.loss(model, x0, points=points, generator=torch.Generator().manual_seed(0))
    ((p, time),) = seen
    n = points if isinstance(points, int) else max(1, round(points * 48))
    assert p.values.shape == (3, n, 2) and p.shape == (6, 8)
    assert all(len(set(row.tolist())) == n for row in p.flat)
    gen = torch.Generator().manual_seed(0)
    t = torch.randint(1, 101, (3,), generator=gen)
    eps = torch.randn(x0.shape, generator=gen, dtype=torch.float64)
    T = mollifier_matrix((6, 8), 0.1)
    a = process.schedule.alpha_bar[t].view(3, 1, 1)
    flat = lambda f: f.reshape(3, 2, 48)  # noqa: E731
    y_t = (a.sqrt() * flat(x0) + (1 - a).sqrt() * flat(eps)) @ T.T
    target = flat(eps) @ T.T if prediction == "mollified_eps" else flat(x0)
    cells = p.index[..., 0] * 8 + p.index[..., 1]
    at = lambda f: torch.stack([f[i][:, cells[i]].T for i in range(3)])  # noqa: E731
    torch.testing.assert_close(time, t / 100, check_dtype=False)
    torch.testing.assert_close(p.values, at(y_t))
    torch.testing.assert_close(loss, (0.5 * at(y_t) + 0.1 - at(target)).square().mean())


def test_prior_variance_is_resolution_consistent() -> None:
    """docs/math.md §2: y_T = T eps has the same per-point variance at N_ref and 2 N_ref."""
    process = MollifiedDDPM(GridDomain(2, 1), cosine_schedule(10), GaussianMollifier(0.05))
    gen = torch.Generator().manual_seed(0)
    var = [process.prior(2000, (1, n, n), (16, 16), generator=gen)[:, 0, n // 2, n // 2].var().item() for n in (16, 32)]
    assert abs(var[0] / var[1] - 1) < 0.15


@pytest.mark.parametrize("prediction", ["mollified_eps", "x0"])
def test_inpainting_guidance_pulls_samples_toward_known_values(prediction: str) -> None:
    """docs/math.md §10, with the defaults (clip=True, the reported sample): guided and unguided samples differ and the
    known region of the reported sample moves toward the data, for both predictions."""
    process = MollifiedDDPM(GridDomain(1, 1), cosine_schedule(100), GaussianMollifier(0.05), prediction)
    known = torch.linspace(-0.8, 0.8, 16).view(1, 1, 16).expand(4, 1, 16).contiguous()
    mask = torch.zeros(1, 1, 16)
    mask[..., :8] = 1

    def model(y: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        return 0.5 * y  # any differentiable denoiser

    y_T = process.prior(4, (1, 16), (16,), generator=torch.Generator().manual_seed(0))
    free = sample_ddim(model, y_T, grid_of(process, 20), process=process, reference_shape=(16,))
    guided = sample_ddim(model, y_T, grid_of(process, 20), process=process, reference_shape=(16,), guidance=InpaintingGuidance(known, mask, process.mollifier, 4.0))
    err = lambda x: ((x - known) * mask).abs().mean()  # noqa: E731
    assert (guided - free).abs().max() > 0.1
    assert err(guided) < 0.5 * err(free), (err(guided), err(free))
    if prediction == "x0":  # the clipped estimate is the reported sample (mollified-eps reports W of it)
        assert guided.abs().max() <= 1


@pytest.mark.parametrize("prediction", ["mollified_eps", "x0"])
def test_unclipped_estimate_moves_the_state_by_exactly_the_correction(prediction: str) -> None:
    """docs/math.md §10: without clipping, the guided T xhat0 is the unguided one plus the correction, for both predictions."""
    process = MollifiedDDPM(GridDomain(1, 1), cosine_schedule(100), GaussianMollifier(0.08), prediction)
    gen = torch.Generator().manual_seed(0)
    output, y, correction = (torch.randn(3, 1, 16, generator=gen, dtype=torch.float64) for _ in range(3))
    t = torch.tensor([5, 50, 95])
    free, _ = process.estimate(output, y, t, clip=False)
    guided, _ = process.estimate(output, y, t, clip=False, correction=correction)
    torch.testing.assert_close(guided, free + correction)


@pytest.mark.parametrize("prediction", ["mollified_eps", "x0"])
def test_bf16_coefficients_are_finite_at_every_step(prediction: str) -> None:
    """Schedule coefficients are formed in float64 and cast: in bf16, abar_t rounds to 1 for small t, which made
    1 / sqrt(1 - abar_t) infinite; now every step's estimates are finite, and a bf16 DDIM run is too."""
    process = MollifiedDDPM(GridDomain(1, 1), cosine_schedule(1000), GaussianMollifier(0.05), prediction)
    gen = torch.Generator().manual_seed(0)
    y = torch.randn(1000, 1, 16, generator=gen).bfloat16()
    output = torch.randn(1000, 1, 16, generator=gen).clamp(-1, 1).bfloat16()
    t = torch.arange(1, 1001)
    tx0, teps = process.predict(output, y, t)
    estimate, reported = process.estimate(output, y, t, clip=True)
    for value in (tx0, teps, estimate, reported):
        assert value.dtype == torch.bfloat16 and bool(value.float().isfinite().all())
    y_T = process.prior(2, (1, 16), (16,), generator=gen).bfloat16()
    samples = sample_ddim(lambda y, s, c: (0.5 * y).to(y.dtype), y_T, grid_of(process, 50), process=process, reference_shape=(16,))
    assert samples.dtype == torch.bfloat16 and bool(samples.float().isfinite().all())


def test_samplers_require_the_reference_shape() -> None:
    """The noise a sampler adds depends on the training resolution, so it must be given (docs/math.md §2)."""
    process = MollifiedDDPM(GridDomain(1, 1), cosine_schedule(10), GaussianMollifier(0.1))
    y_T = process.prior(2, (1, 32), (16,))
    with pytest.raises(ValueError, match="pass reference_shape"):
        sample_ddpm(lambda y, t, c: y, y_T, grid_of(process, 2), process=process)
    with pytest.raises(ValueError, match="pass reference_shape"):
        sample_ddim(lambda y, t, c: y, y_T, grid_of(process, 2), process=process, eta=0.5)
    sample_ddim(lambda y, t, c: y, y_T, grid_of(process, 2), process=process)  # eta = 0 draws no noise
    with pytest.raises(ValueError, match="reference_shape"):
        sample_ddim(lambda y, t, c: y, y_T, grid_of(process, 2), process=process, reference_shape=(16, 16))


def test_config_round_trip() -> None:
    """A process rebuilds from its JSON config."""
    process = MollifiedDDPM(GridDomain(2, 3), linear_schedule(100), IdentityMollifier(), "x0")
    rebuilt = build(json.loads(json.dumps(process.to_dict())))
    assert isinstance(rebuilt, MollifiedDDPM)
    assert rebuilt.to_dict() == process.to_dict()


def test_bad_input_raises_clear_errors() -> None:
    """Wrong shapes, unknown prediction, too many points, t out of range, bad schedules: ValueError naming the argument."""
    process = MollifiedDDPM(GridDomain(2, 1), cosine_schedule(10), GaussianMollifier(0.1))
    x0 = torch.zeros(2, 1, 4, 4)
    with pytest.raises((ValueError, TypeError), match="prediction"):  # TypeError from the test-time type checker
        MollifiedDDPM(GridDomain(2, 1), cosine_schedule(10), GaussianMollifier(0.1), "eps")  # type: ignore[arg-type]
    # Shape and dtype errors are ValueErrors from funcdiff, or TypeErrors from the test-time jaxtyping hook
    # (which checks first); both name the argument.
    with pytest.raises((ValueError, TypeError), match="noise"):
        process.q_sample(x0, torch.tensor([1, 2]), torch.zeros(2, 1, 4, 5))
    with pytest.raises(ValueError, match="t must lie in"):
        process.q_sample(x0, torch.tensor([0, 11]), x0)
    with pytest.raises((ValueError, TypeError), match="parameter 't'|t must be an integer"):
        process.q_sample(x0, torch.tensor([0.5, 1.0]), x0)
    with pytest.raises(ValueError, match="points=17"):
        process.loss(lambda p, t, c: p.values, x0, points=17, generator=None)
    with pytest.raises(ValueError, match="points as a fraction"):
        process.loss(lambda p, t, c: p.values, x0, points=1.5, generator=None)
    with pytest.raises(ValueError, match="num_steps"):
        cosine_schedule(0)
    with pytest.raises(ValueError, match="alpha_bar"):
        Schedule(torch.tensor([1.0, 0.5, 0.7], dtype=torch.float64))
    with pytest.raises(ValueError, match="eta"):
        sample_ddim(lambda y, t, c: y, x0, grid_of(process, 2), process=process, reference_shape=(4, 4), eta=-1.0)


def test_jaxtyping_catches_mismatched_shapes_at_the_boundary() -> None:
    """A batch of steps that does not match the batch of x0 is refused by the runtime shape check."""
    process = MollifiedDDPM(GridDomain(1, 1), cosine_schedule(10), GaussianMollifier(0.1))
    with pytest.raises(Exception, match="b"):
        process.posterior(torch.zeros(2, 1, 4), torch.zeros(3, 1, 4), torch.tensor([1, 2]))


@pytest.mark.parametrize("family", ["ddpm", "flow"])
def test_the_loss_noise_is_white_at_the_reference_shape(family: str) -> None:
    """docs/math.md §15: data at 2x the model's reference grid are noised with per-point variance 4 (2-d), as the
    sampler noises 2x. A zero model under a noise-predicting target (identity mollifier; the flow's velocity from
    x0 = 0 is minus the noise) scores the noise's variance: about 4 with ``reference_shape`` half the grid, about 1
    without."""
    from funcdiff import FunctionalFlowMatching

    domain = GridDomain(ndim=2, channels=1)
    if family == "ddpm":
        process = MollifiedDDPM(domain, constant_schedule(10), IdentityMollifier(), prediction="mollified_eps")
    else:
        process = FunctionalFlowMatching(domain, IdentityMollifier(), prediction="velocity")
    x0 = torch.zeros(64, 1, 32, 32)
    zero = lambda points, t, cond: torch.zeros_like(points.values)  # noqa: E731
    for reference, expected in [((16, 16), 4.0), (None, 1.0)]:
        loss = process.loss(zero, x0, points=1.0, generator=torch.Generator().manual_seed(0), reference_shape=reference)
        assert abs(float(loss) - expected) < 0.05 * expected, (reference, float(loss))


def test_min_snr_gamma_weights_each_examples_error() -> None:
    """With min_snr_gamma=2 and x0 prediction, a zero network's loss is the mean over examples of ``min(SNR_t, 2) / 2``
    times the example's mean square, SNR_t = abar_t / (1 - abar_t) from the schedule; for mollified_eps the weight is
    ``min(SNR_t, 2) / SNR_t``; the weight is saved with the process; a bad gamma is refused."""
    schedule = cosine_schedule(1000)
    process = MollifiedDDPM(GridDomain(1, 1), schedule, IdentityMollifier(), prediction="x0", min_snr_gamma=2.0)
    x0 = torch.randn(4, 1, 8, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([1, 300, 700, 1000])
    loss = process.loss(lambda p, time, cond: torch.zeros_like(p.values), x0, points=1.0, generator=torch.Generator().manual_seed(1), t=t)
    abar = [float(schedule.alpha_bar[k]) for k in t]
    snr = [a / (1 - a) for a in abar]
    weights = [min(s, 2.0) / 2.0 for s in snr]
    assert weights[0] == 1.0 and weights[-1] < 1e-3  # the check spans both sides of gamma
    expected = sum(w * float(x0[i].square().mean()) for i, w in enumerate(weights)) / 4
    assert float(loss) == pytest.approx(expected, rel=1e-6)
    for prediction, weights in (("x0", weights), ("mollified_eps", [min(s, 2.0) / s for s in snr])):
        # x0 = 0, so y_t = sqrt(1 - abar_t) eps and a network that knows abar_t can be off by exactly 1 everywhere
        weighted = MollifiedDDPM(GridDomain(1, 1), schedule, IdentityMollifier(), prediction=prediction, min_snr_gamma=2.0)

        def off_by_one(points, time, cond):
            a = schedule.alpha_bar[(time * 1000).round().long()].to(points.values.dtype).view(-1, 1, 1)
            return (points.values / (1 - a).sqrt() if prediction == "mollified_eps" else 0 * points.values) + 1

        zeros = torch.zeros(4, 1, 8)
        assert float(weighted.loss(off_by_one, zeros, points=1.0, generator=None, t=t)) == pytest.approx(sum(weights) / 4, rel=1e-5)
        coords = torch.rand(4, 8, 1, generator=torch.Generator().manual_seed(2))  # the same at scattered points
        scattered = Scattered(torch.zeros(4, 8, 1), coords)
        assert float(weighted.loss(off_by_one, scattered, points=1.0, generator=None, t=t)) == pytest.approx(sum(weights) / 4, rel=1e-5)
    assert build(json.loads(json.dumps(process.to_dict()))).min_snr_gamma == 2.0
    with pytest.raises(ValueError, match="min_snr_gamma"):
        MollifiedDDPM(GridDomain(1, 1), schedule, IdentityMollifier(), min_snr_gamma=0.0)
    for bad in (math.inf, math.nan, -1.0):
        with pytest.raises(ValueError, match="min_snr_gamma"):
            MollifiedDDPM(GridDomain(1, 1), schedule, IdentityMollifier(), min_snr_gamma=bad)
    with pytest.raises(ValueError, match="min_snr_gamma"):  # the flow and EDM families weight their losses themselves
        TrainConfig(process="flow", min_snr_gamma=5.0)
    assert build_process(TrainConfig(min_snr_gamma=5.0), (1, 32, 32)).min_snr_gamma == 5.0
