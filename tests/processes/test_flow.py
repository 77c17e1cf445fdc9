"""Functional flow matching (docs/math.md §11): the conditional path and velocity, the loss, and the Euler and Heun
samplers against the closed-form Gaussian flow."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from funcdiff import FunctionalFlowMatching, GaussianMollifier, GridDomain, IdentityMollifier, Points, sample_euler, sample_heun
from tests.helpers import mollifier_matrix, grid_of

N = 6  # a 1-D grid small enough for dense Gaussian algebra


def dense_T(sigma: float | None, n: int = N) -> torch.Tensor:
    """T as an explicit float64 matrix (the identity when sigma is None)."""
    return torch.eye(n, dtype=torch.float64) if sigma is None else mollifier_matrix((n,), sigma)


def flow(sigma: float | None, **options) -> FunctionalFlowMatching:
    """A 1-D, one-channel flow with a Gaussian (or no) mollifier."""
    return FunctionalFlowMatching(GridDomain(1, 1), IdentityMollifier() if sigma is None else GaussianMollifier(sigma), **options)


@given(
    seed=st.integers(0, 10_000),
    s=st.floats(0.0, 1.0),
    sigma=st.one_of(st.none(), st.floats(0.05, 0.3)),
    sigma_min=st.sampled_from([0.0, 0.01, 0.2]),
)
def test_conditional_path_and_velocity(seed: int, s: float, sigma: float | None, sigma_min: float) -> None:
    """y_s = T(s x1 + (1 - (1 - sigma_min) s) eps) by an explicit matrix; u_s = dy_s/ds (central difference) =
    T(x1 - (1 - sigma_min) eps); the endpoints are T eps and T(x1 + sigma_min eps)."""
    process = flow(sigma, sigma_min=sigma_min)
    gen = torch.Generator().manual_seed(seed)
    x1, eps = (torch.randn(2, 1, N, generator=gen, dtype=torch.float64) for _ in range(2))
    T = dense_T(sigma)

    def state(time: float) -> torch.Tensor:
        return process.path(x1, torch.full((2,), time, dtype=torch.float64), eps)[0]

    y_s, u_s = process.path(x1, torch.full((2,), s, dtype=torch.float64), eps)
    expected = (T @ (s * x1 + (1 - (1 - sigma_min) * s) * eps).reshape(2, N).T).T.reshape(2, 1, N)
    torch.testing.assert_close(y_s, expected)
    h = 1e-4
    numeric = (state(min(s + h, 1.0)) - state(max(s - h, 0.0))) / (min(s + h, 1.0) - max(s - h, 0.0))
    torch.testing.assert_close(u_s, numeric, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(state(0.0), (T @ eps.reshape(2, N).T).T.reshape(2, 1, N))
    torch.testing.assert_close(state(1.0), (T @ (x1 + sigma_min * eps).reshape(2, N).T).T.reshape(2, 1, N))


@given(seed=st.integers(0, 10_000), s=st.floats(0.0, 0.99), sigma_min=st.sampled_from([0.0, 0.1]))
def test_x1_prediction_gives_the_conditional_velocity(seed: int, s: float, sigma_min: float) -> None:
    """An x1-predicting model that outputs the true x1 yields exactly the conditional velocity u_s (docs/math.md §11)."""
    process = flow(0.1, sigma_min=sigma_min, prediction="x1")
    gen = torch.Generator().manual_seed(seed)
    x1, eps = (torch.randn(3, 1, N, generator=gen, dtype=torch.float64) for _ in range(2))
    time = torch.full((3,), s, dtype=torch.float64)
    y_s, u_s = process.path(x1, time, eps)
    torch.testing.assert_close(process.velocity(x1, y_s, time), u_s)


@pytest.mark.parametrize("prediction", ["velocity", "x1"])
def test_loss_scores_the_velocity_at_the_drawn_points(prediction: str) -> None:
    """docs/math.md §11: the model sees y_s = T(s x1 + (1 - (1 - sigma_min) s) eps) at the domain's points and is scored
    there against u_s = T(x1 - (1 - sigma_min) eps) (or the unmollified x1), replayed with a dense float64 T."""
    process = FunctionalFlowMatching(GridDomain(2, 2), GaussianMollifier(0.1), sigma_min=0.1, prediction=prediction)
    x1 = torch.rand(3, 2, 6, 8, dtype=torch.float64) * 2 - 1
    seen: list[tuple[Points, torch.Tensor]] = []

    def model(p: Points, s: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        seen.append((p, s))
        return 0.5 * p.values

    loss = process.loss(model, x1, points=20, generator=torch.Generator().manual_seed(0))
    ((p, s),) = seen
    gen = torch.Generator().manual_seed(0)
    s_replay = torch.rand(3, generator=gen).double().view(3, 1, 1)
    eps = torch.randn(x1.shape, generator=gen, dtype=torch.float64).reshape(3, 2, 48)
    T = mollifier_matrix((6, 8), 0.1)
    x = x1.reshape(3, 2, 48)
    y_s = (s_replay * x + (1 - 0.9 * s_replay) * eps) @ T.T
    target = (x - 0.9 * eps) @ T.T if prediction == "velocity" else x
    cells = p.index[..., 0] * 8 + p.index[..., 1]
    at = lambda f: torch.stack([f[i][:, cells[i]].T for i in range(3)])  # noqa: E731
    torch.testing.assert_close(s, s_replay.flatten())
    torch.testing.assert_close(p.values, at(y_s))
    torch.testing.assert_close(loss, (0.5 * at(y_s) - at(target)).square().mean())


class GaussianFlow:
    """x1 ~ N(mu, Sigma) on the grid; the exact marginal velocity E[y1 - y0 | y_s] in y-space (independent of
    the process's own formulas): with C1 = T Sigma T^T, C0 = T T^T and m = T mu,
    v*(y, s) = m + (s C1 - (1 - s) C0) (s^2 C1 + (1 - s)^2 C0)^-1 (y - s m)."""

    def __init__(self, sigma: float | None) -> None:
        u = (torch.arange(N, dtype=torch.float64) + 0.5) / N
        self.mu = 0.6 * torch.cos(math.pi * u)
        self.cov = 0.3 * torch.exp(-((u[:, None] - u[None, :]) ** 2) / (2 * 0.2**2)) + 0.05 * torch.eye(N, dtype=torch.float64)
        T = dense_T(sigma)
        self.m, self.C1, self.C0 = T @ self.mu, T @ self.cov @ T.T, T @ T.T

    def __call__(self, y: torch.Tensor, s: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        time = float(s[0])
        gain = (time * self.C1 - (1 - time) * self.C0) @ torch.linalg.inv(time**2 * self.C1 + (1 - time) ** 2 * self.C0)
        flat = y.reshape(-1, N).T
        return (self.m[:, None] + gain @ (flat - time * self.m[:, None])).T.reshape(y.shape)


def flow_map_error(sampler, sigma: float | None, steps: int) -> float:
    """Error of the final mean and covariance of y_1 against T mu and T Sigma T^T, computed exactly: the sampler is
    affine in y_0 for an affine velocity, so running it on 0 and on the unit vectors gives y_1 = M y_0 + c, and
    y_0 = T eps has covariance T T^T."""
    exact = GaussianFlow(sigma)
    process = flow(sigma)
    starts = torch.cat([torch.zeros(1, N, dtype=torch.float64), torch.eye(N, dtype=torch.float64)]).view(N + 1, 1, N)
    ends = sampler(exact, starts, grid_of(process, steps), process=process, denoise=False).view(N + 1, N)
    offset, M = ends[0], (ends[1:] - ends[0]).T
    mean_error = (offset - exact.m).abs().max()
    cov_error = (M @ exact.C0 @ M.T - exact.C1).abs().max()
    return float(max(mean_error, cov_error))


@pytest.mark.parametrize("sigma", [0.08, None], ids=["mollified", "white-noise"])
def test_samplers_reach_the_data_distribution_at_their_order(sigma: float | None) -> None:
    """docs/math.md §11: integrating v* from T eps ends at mean T mu and covariance T Sigma T^T; halving the step divides
    Euler's error by about 2 and Heun's by about 4."""
    euler = [flow_map_error(sample_euler, sigma, n) for n in (20, 40, 80)]
    heun = [flow_map_error(sample_heun, sigma, n) for n in (20, 40, 80)]
    print("euler", euler, "heun", heun)
    for a, b in zip(euler, euler[1:]):
        assert 1.7 < a / b < 2.3, euler
    for a, b in zip(heun, heun[1:]):
        assert 3.3 < a / b < 4.7, heun
    assert heun[-1] < 1e-3 and heun[-1] < euler[-1] / 10


def test_sampler_reports_the_wiener_filtered_state_and_refuses_bad_steps() -> None:
    """denoise=True returns W(y_1) (docs/math.md §1); steps must be a positive int; x1-prediction has no velocity at 1."""
    process = flow(0.08)
    exact = GaussianFlow(0.08)
    y_0 = process.prior(3, (1, N), (N,), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    state = sample_heun(exact, y_0, grid_of(process, 10), process=process, denoise=False)
    torch.testing.assert_close(sample_heun(exact, y_0, grid_of(process, 10), process=process), process.mollifier.unmollify(state))
    with pytest.raises(ValueError, match="steps"):
        sample_euler(exact, y_0, grid_of(process, 0), process=process)
    x1_flow = flow(0.08, prediction="x1")
    with pytest.raises(ValueError, match="s = 1"):
        x1_flow.velocity(y_0, y_0, torch.ones(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="sigma_min"):
        flow(0.08, sigma_min=1.0)


def test_an_x1_flow_reports_the_networks_own_estimate() -> None:
    """With x1 prediction the last Euler step lands on ``T xhat1`` and the reported sample is ``xhat1`` itself: a network
    that always answers one alternating field gets it back (``W T xhat1``, the old report, differs from it), with
    Euler and Heun steps alike; a velocity flow still reports ``W y_1``."""
    from funcdiff.sampling import uniform_t

    field = 0.5 * torch.tensor([(-1.0) ** i for i in range(N)], dtype=torch.float64).view(1, 1, N)
    process = flow(0.1, prediction="x1")
    y_0 = torch.randn(3, 1, N, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for sampler in (sample_euler, sample_heun):
        out = sampler(lambda y, s, cond: field.expand(y.shape[0], -1, -1), y_0, uniform_t(process, 5), process=process)
        torch.testing.assert_close(out, field.expand(3, -1, -1), rtol=0, atol=1e-12)
    assert float((process.mollifier.unmollify(process.mollifier.mollify(field), process.inv_snr) - field).abs().max()) > 1e-3
    velocity = flow(0.1, prediction="velocity")
    final = sample_euler(lambda y, s, cond: field.expand(y.shape[0], -1, -1), y_0, uniform_t(velocity, 5), process=velocity, denoise=False)
    reported = sample_euler(lambda y, s, cond: field.expand(y.shape[0], -1, -1), y_0, uniform_t(velocity, 5), process=velocity)
    torch.testing.assert_close(reported, velocity.mollifier.unmollify(final, velocity.inv_snr), rtol=0, atol=1e-12)
