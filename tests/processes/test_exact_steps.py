"""Single sampler steps, guidance and the training targets against closed forms of docs/math.md §3, §5, §6, §10 and §11,
recomputed in float64 with dense matrices (T from `tests.helpers`) and the fresh noise replayed from its seed."""

import math

import pytest
import torch

from funcdiff import (
    FunctionalFlowMatching, GaussianMollifier, GridDomain, IdentityMollifier, InpaintingGuidance, MollifiedDDPM, cosine_schedule,
    encode_ddim,
    sample_ddim, sample_ddpm, sample_euler, sample_heun,
)
from tests.helpers import dct_matrix, mollifier_matrix, grid_of

N, REF, SIGMA, STEPS = 8, 4, 0.1, 50  # the sampling grid is twice the reference, so fresh noise has variance 2


def dense(sigma: float | None) -> torch.Tensor:
    """T on the 8-cell grid as a float64 matrix (the identity for sigma None)."""
    return torch.eye(N, dtype=torch.float64) if sigma is None else mollifier_matrix((N,), sigma)


def wiener(sigma: float, inv_snr: float = 0.05) -> torch.Tensor:
    """W of docs/math.md §1 on the 8-cell grid as a float64 matrix."""
    c = dct_matrix(N)
    g = torch.exp(-((math.pi * torch.arange(N, dtype=torch.float64) * sigma) ** 2) / 2)
    return c.T @ torch.diag(g / (g**2 + inv_snr**2)) @ c


def apply(matrix: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A matrix on the grid axis of ``(b, 1, N)`` fields."""
    return (x.reshape(-1, N) @ matrix.T).reshape(x.shape)


def model(y: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
    """An affine stand-in for a network whose output depends on the state and on the step ``t * STEPS`` it is given."""
    step = (t.double() * STEPS).round().view(-1, 1, 1)
    return (0.3 + 0.2 * step / STEPS) * y + 0.1


def make(prediction: str) -> MollifiedDDPM:
    """A cosine-schedule process on the 8-cell grid."""
    return MollifiedDDPM(GridDomain(1, 1), cosine_schedule(STEPS), GaussianMollifier(SIGMA), prediction)


def start() -> torch.Tensor:
    """A float64 start state."""
    return torch.randn(3, 1, N, generator=torch.Generator().manual_seed(11), dtype=torch.float64)


def estimates(prediction: str, y: torch.Tensor, t: int) -> tuple[torch.Tensor, torch.Tensor, float]:
    """``(T xhat0, T epshat, abar_t)`` of docs/math.md §5-6 for `model`'s output at step t of ``STEPS``."""
    a = float(make(prediction).schedule.alpha_bar[t])
    f = model(y, torch.full((y.shape[0],), t / STEPS, dtype=torch.float64), None)
    if prediction == "mollified_eps":
        tx0 = (y - math.sqrt(1 - a) * f) / math.sqrt(a)
    else:
        tx0 = apply(dense(SIGMA), f)
    return tx0, (y - math.sqrt(a) * tx0) / math.sqrt(1 - a), a


def chain(sampler, process: MollifiedDDPM, y: torch.Tensor, **options) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], torch.Tensor]:
    """Run ``sampler`` over steps 40 -> 25 -> 1 -> 0 unclipped: ``(state after the step, T xhat0)`` per step, and the end."""
    seen: list[tuple[int, torch.Tensor, torch.Tensor]] = []
    end = sampler(model, y, grid_of(process, [40, 25, 1]), process=process, reference_shape=(REF,), clip=False, denoise=False,
                  callback=lambda tau, y_prev, tx0: seen.append((tau, y_prev, tx0)), **options)
    assert [tau * STEPS for tau, _, _ in seen] == [25, 1, 0]  # the noise time each step reaches
    return [(y_prev, tx0) for _, y_prev, tx0 in seen], end


def first_step(sampler, process: MollifiedDDPM, y: torch.Tensor, **options) -> tuple[torch.Tensor, torch.Tensor]:
    """The state and ``T xhat0`` after the first step (40 -> 25) of `chain`."""
    return chain(sampler, process, y, **options)[0][0]


def assert_chain(sampler, prediction: str, step, **options) -> None:
    """Compare every step of `chain` with ``step(y, T xhat0, T epshat, abar_t, abar_prev, T z)``, z replayed from seed 5
    (one draw per step that adds noise, none on the last)."""
    process, y = make(prediction), start()
    seen, end = chain(sampler, process, y, generator=torch.Generator().manual_seed(5), **options)
    gen = torch.Generator().manual_seed(5)
    noises = [apply(dense(SIGMA), torch.randn(3, 1, N, generator=gen, dtype=torch.float64) * math.sqrt(N / REF)) for _ in range(2)]
    alpha_bar = process.schedule.alpha_bar
    for k, ((t, prev), (y_prev, tx0_seen)) in enumerate(zip([(40, 25), (25, 1), (1, 0)], seen)):
        tx0, teps, a_t = estimates(prediction, y, t)
        torch.testing.assert_close(tx0_seen, tx0, rtol=1e-10, atol=1e-10)
        y = step(y, tx0, teps, a_t, float(alpha_bar[prev]), noises[k] if prev > 0 else None)
        torch.testing.assert_close(y_prev, y, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(end, seen[-1][0], rtol=0, atol=0)


@pytest.mark.parametrize("prediction", ["mollified_eps", "x0"])
@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_ddim_steps_match_the_closed_form(prediction: str, eta: float) -> None:
    """docs/math.md §6: y_prev = sqrt(abar_prev) T xhat0 + sqrt(1 - abar_prev - s^2) T epshat + s T z with
    s = eta sqrt((1 - abar_prev) / (1 - abar_t)) sqrt(1 - abar_t / abar_prev), z replayed; the last step lands on T xhat0."""
    def step(y, tx0, teps, a_t, a_p, tz):
        s = eta * math.sqrt((1 - a_p) / (1 - a_t)) * math.sqrt(1 - a_t / a_p)
        return math.sqrt(a_p) * tx0 + math.sqrt(1 - a_p - s**2) * teps + (0 if tz is None else s * tz)

    assert_chain(sample_ddim, prediction, step, eta=eta)


@pytest.mark.parametrize("prediction", ["mollified_eps", "x0"])
def test_ddpm_steps_match_the_closed_form(prediction: str) -> None:
    """docs/math.md §4, §6: y_prev = c1 T xhat0 + c2 y_t + sqrt(betatilde) T z over respaced pairs, z replayed, no noise on the
    last step."""
    def step(y, tx0, teps, a_t, a_p, tz):
        beta = 1 - a_t / a_p
        c1, c2 = math.sqrt(a_p) * beta / (1 - a_t), math.sqrt(1 - beta) * (1 - a_p) / (1 - a_t)
        return c1 * tx0 + c2 * y + (0 if tz is None else math.sqrt(beta * (1 - a_p) / (1 - a_t)) * tz)

    assert_chain(sample_ddpm, prediction, step)


@pytest.mark.parametrize("prediction", ["mollified_eps", "x0"])
def test_reported_sample_is_wiener_of_the_estimate_or_the_network_x0(prediction: str) -> None:
    """docs/math.md §6: with denoise, the last step reports W(T xhat0) under mollified-eps and xhat0 itself under x0."""
    process, y = make(prediction), start()
    y_25, _ = first_step(sample_ddim, process, y)
    reported = sample_ddim(model, y, grid_of(process, [40, 25]), process=process, reference_shape=(REF,), clip=False)
    if prediction == "mollified_eps":
        expected = apply(wiener(SIGMA), estimates(prediction, y_25, 25)[0])
    else:
        expected = model(y_25, torch.full((3,), 25 / STEPS, dtype=torch.float64), None)
    torch.testing.assert_close(reported, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("prediction", ["mollified_eps", "x0"])
def test_encode_step_matches_the_closed_form(prediction: str) -> None:
    """docs/math.md §6: encoding runs the eta = 0 map forwards from T x0, each step from prev to t with the model's
    T epshat at step t evaluated at y_prev: y_t = sqrt(abar_t) T xhat0 + sqrt(1 - abar_t) T epshat."""
    process, x0 = make(prediction), start()
    y = apply(dense(SIGMA), x0)
    alpha_bar = process.schedule.alpha_bar
    for t, prev in ((25, 0), (40, 25)):
        _, teps, a_t = estimates(prediction, y, t)
        a_p = float(alpha_bar[prev])
        tx0 = (y - math.sqrt(1 - a_p) * teps) / math.sqrt(a_p)
        y = math.sqrt(a_t) * tx0 + math.sqrt(1 - a_t) * teps
    torch.testing.assert_close(encode_ddim(model, x0, grid_of(process, [40, 25]), process=process), y, rtol=1e-10, atol=1e-10)


def test_inpainting_guidance_is_the_closed_form_gradient_step() -> None:
    """docs/math.md §10: for T xhat0 = k y + c the corrected estimate is T xhat0 + w sqrt(abar_t) k m^2 (T x_a - T xhat0),
    with a per-example abar_t and a fractional mask (the loss squares it)."""
    gen = torch.Generator().manual_seed(2)
    known = torch.randn(3, 1, N, generator=gen, dtype=torch.float64)
    mask = torch.rand(1, 1, N, generator=gen, dtype=torch.float64)
    y = torch.randn(3, 1, N, generator=gen, dtype=torch.float64).requires_grad_(True)
    alpha_bar = torch.tensor([0.9, 0.5, 0.1], dtype=torch.float64)
    k, c, w = 0.7, 0.2, 1.5
    tx0 = k * y + c
    corrected = InpaintingGuidance(known, mask, GaussianMollifier(SIGMA), w)(y, tx0, alpha_bar.sqrt())
    alpha_bar = alpha_bar.view(3, 1, 1)
    target = apply(dense(SIGMA), known)
    expected = tx0 + w * alpha_bar.sqrt() * k * mask**2 * (target - tx0)
    torch.testing.assert_close(corrected, expected, rtol=1e-10, atol=1e-10)


def test_guided_ddim_step_uses_the_current_abar() -> None:
    """docs/math.md §6, §10: one guided eta = 0 DDIM step (mollified-eps) from 40 to 25 moves T xhat0 by
    w sqrt(abar_40) k m^2 (T x_a - T xhat0), k = dT xhat0 / dy = (1 - sqrt(1 - abar) (0.3 + 0.2 t / T)) / sqrt(abar)."""
    process, y = make("mollified_eps"), start()
    known = torch.linspace(-0.5, 0.5, N, dtype=torch.float64).expand(3, 1, N)
    mask = (torch.arange(N) < 4).to(torch.float64).view(1, 1, N)
    guidance = InpaintingGuidance(known, mask, process.mollifier, 2.0)
    y_prev, tx0_seen = first_step(sample_ddim, process, y, guidance=guidance)
    tx0, _, a_t = estimates("mollified_eps", y, 40)
    k = (1 - math.sqrt(1 - a_t) * (0.3 + 0.2 * 40 / STEPS)) / math.sqrt(a_t)
    corrected = tx0 + 2.0 * math.sqrt(a_t) * k * mask * (apply(dense(SIGMA), known) - tx0)
    a_p = float(process.schedule.alpha_bar[25])
    teps = (y - math.sqrt(a_t) * corrected) / math.sqrt(1 - a_t)
    torch.testing.assert_close(tx0_seen, corrected, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(y_prev, math.sqrt(a_p) * corrected + math.sqrt(1 - a_p) * teps, rtol=1e-10, atol=1e-10)


def hand_integrate(v, y0: torch.Tensor, heun: bool, steps: int = 3) -> torch.Tensor:
    """``steps`` equal steps of Euler, or of Heun with a last Euler step, of ``dy/ds = v(y, s)`` from 0 to 1."""
    y, h = y0, 1 / steps
    for k in range(steps):
        slope = v(y, k * h)
        if heun and k < steps - 1:
            slope = (slope + v(y + h * slope, (k + 1) * h)) / 2
        y = y + h * slope
    return y


@pytest.mark.parametrize("heun", [False, True], ids=["euler", "heun"])
@pytest.mark.parametrize("prediction, sigma_min", [("velocity", 0.0), ("x1", 0.0), ("x1", 0.2)])
def test_flow_steps_match_the_closed_form(heun: bool, prediction: str, sigma_min: float) -> None:
    """docs/math.md §11: Euler y += h v(y, s); Heun y += h (v(y, s) + v(y + h v, s + h)) / 2 on every step but the last,
    which is an Euler step; v is the model's output or, for x1, (T xhat1 - (1 - sigma_min) y) / (1 - (1 - sigma_min) s).
    The model gets s per example in the state's dtype."""
    process = FunctionalFlowMatching(GridDomain(1, 1), GaussianMollifier(SIGMA), sigma_min=sigma_min, prediction=prediction)

    def network(y: torch.Tensor, s: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        assert s.shape == (y.shape[0],) and s.dtype == y.dtype and bool((s == s[0]).all())
        return (0.3 + 0.2 * s.view(-1, 1, 1)) * y + 0.1

    def v(y: torch.Tensor, s: float) -> torch.Tensor:
        f = network(y, torch.full((3,), s, dtype=torch.float64), None)
        return f if prediction == "velocity" else (apply(dense(SIGMA), f) - (1 - sigma_min) * y) / (1 - (1 - sigma_min) * s)

    y0 = start()
    y = hand_integrate(v, y0, heun)
    got = (sample_heun if heun else sample_euler)(network, y0, grid_of(process, 3), process=process, denoise=False)
    torch.testing.assert_close(got, y, rtol=1e-12, atol=1e-12)


def test_guided_clipped_x0_ddim_steps_with_the_clipped_estimate() -> None:
    """docs/math.md §6, §10: with x0-prediction, guidance and clipping, the state a DDIM step (eta = 0) moves with is
    T of the clipped, corrected xhat0 = clip(f + W(correction)), not T f + correction; checked on the state itself."""
    process, y = make("x0"), start()
    known = torch.linspace(-0.9, 0.9, N, dtype=torch.float64).expand(3, 1, N)
    mask = (torch.arange(N) < 5).to(torch.float64).view(1, 1, N)
    guidance = InpaintingGuidance(known, mask, process.mollifier, 0.5)
    loud = lambda y, t, c: 4 * y + 0.5  # noqa: E731  (an output far outside [-1, 1], so clipping acts)
    seen: list[torch.Tensor] = []
    sample_ddim(loud, y, grid_of(process, [40, 25]), process=process, reference_shape=(REF,), clip=True, denoise=False,
                guidance=guidance, callback=lambda tau, y_prev, tx0: seen.append(y_prev))
    a_t, a_p = (float(process.schedule.alpha_bar[k]) for k in (40, 25))
    f = 4 * y + 0.5
    t_matrix = dense(SIGMA)
    # -(w sqrt(abar) / 2) grad_y ||m (T x_a - T f(y))||^2 with df/dy = 4 and T symmetric:
    correction = 0.5 * math.sqrt(a_t) * 4 * apply(t_matrix, mask**2 * (apply(t_matrix, known) - apply(t_matrix, f)))
    state = apply(t_matrix, (f + apply(wiener(SIGMA), correction)).clamp(-1, 1))
    teps = (y - math.sqrt(a_t) * state) / math.sqrt(1 - a_t)
    torch.testing.assert_close(seen[0], math.sqrt(a_p) * state + math.sqrt(1 - a_p) * teps, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("heun", [False, True], ids=["euler", "heun"])
def test_guided_flow_steps_match_the_closed_form(heun: bool) -> None:
    """docs/math.md §13: for an x1-predicting flow (T = I) with network k y + c, the data estimate is D = k y + c,
    inpainting guidance with signal a_s = s gives D' = D + w s k m^2 (x_a - D), and the guided velocity is
    v' = (D' - (1 - sigma_min) y) / (1 - (1 - sigma_min) s)."""
    sigma_min, k, c, w = 0.1, 0.6, 0.2, 1.5
    process = FunctionalFlowMatching(GridDomain(1, 1), IdentityMollifier(), sigma_min=sigma_min, prediction="x1")
    known = torch.linspace(-0.5, 0.5, N, dtype=torch.float64).expand(3, 1, N)
    mask = torch.rand(1, 1, N, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    guidance = InpaintingGuidance(known, mask, IdentityMollifier(), w)

    def v(y: torch.Tensor, s: float) -> torch.Tensor:
        d = k * y + c
        guided = d + w * s * k * mask**2 * (known - d)
        return (guided - (1 - sigma_min) * y) / (1 - (1 - sigma_min) * s)

    y0 = start()
    y = hand_integrate(v, y0, heun)
    network = lambda y, s, cond: k * y + c  # noqa: E731
    got = (sample_heun if heun else sample_euler)(network, y0, grid_of(process, 3), process=process, guidance=guidance,
                                                  denoise=False)
    torch.testing.assert_close(got, y, rtol=1e-12, atol=1e-12)


def test_flow_time_is_at_least_float32() -> None:
    """A bfloat16 state still gives the model its time in float32 (in bfloat16, s = 0.99 would become 0.98828)."""
    process = FunctionalFlowMatching(GridDomain(1, 1), IdentityMollifier())
    times: list[torch.Tensor] = []

    def network(y: torch.Tensor, s: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        times.append(s)
        return torch.zeros_like(y)

    grid = torch.tensor([1.0, 0.01, 0.0], dtype=torch.float64)
    sample_euler(network, start().bfloat16(), grid, process=process, denoise=False)
    assert [t.dtype for t in times] == [torch.float32] * 2 and float(times[1][0]) == pytest.approx(0.99, abs=1e-7)
