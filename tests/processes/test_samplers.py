"""Samplers end to end without a network: Gaussian data and its exact posterior-mean denoiser (docs/math.md §5, §6, §7)."""

import math

import pytest
import torch

from funcdiff import GaussianMollifier, GridDomain, IdentityMollifier, MollifiedDDPM, cosine_schedule, encode_ddim, sample_ddim, sample_ddpm
from tests.helpers import mollifier_matrix, sample_moments, grid_of

N = 8  # a 1-D grid of 8 cells keeps the exact denoiser a small dense solve


class GaussianData:
    """x0 ~ N(m, C) on an 8-cell grid: a smooth random field, and the exact E[T eps | y_t] / E[x0 | y_t]."""

    def __init__(self, process: MollifiedDDPM) -> None:
        u = (torch.arange(N, dtype=torch.float64) + 0.5) / N
        self.mean = 0.5 * torch.sin(2 * math.pi * u)
        self.cov = 0.2 * torch.exp(-((u[:, None] - u[None, :]) ** 2) / (2 * 0.15**2)) + 0.01 * torch.eye(N)
        mollifier = process.mollifier
        self.T = torch.eye(N, dtype=torch.float64) if isinstance(mollifier, IdentityMollifier) else mollifier_matrix((N,), mollifier.sigma)
        self.process = process
        self.calls = 0

    def __call__(self, y: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        """The Bayes-optimal network output for the process's prediction type."""
        self.calls += 1
        step = int(round(float(t[0]) * self.process.num_steps))
        a = self.process.schedule.alpha_bar[step]
        S = a * self.cov + (1 - a) * torch.eye(N, dtype=torch.float64)  # Cov(x_t); Cov(y_t) = T S T
        resid = y.reshape(-1, N).T - a.sqrt() * (self.T @ self.mean)[:, None]
        whitened = torch.linalg.solve(S, torch.linalg.solve(self.T, resid))
        if self.process.prediction == "mollified_eps":
            out = (1 - a).sqrt() * self.T @ whitened
        else:
            out = self.mean[:, None] + a.sqrt() * self.cov @ whitened
        return out.T.reshape(y.shape)

    def mollified_moments(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and covariance of T x0."""
        return self.T @ self.mean, self.T @ self.cov @ self.T.T


def make_process(mollifier, prediction: str = "mollified_eps", steps: int = 1000) -> MollifiedDDPM:
    """A cosine-schedule process."""
    return MollifiedDDPM(GridDomain(1, 1), cosine_schedule(steps), mollifier, prediction)


processes = pytest.mark.parametrize(
    "mollifier, prediction",
    [(GaussianMollifier(0.06), "mollified_eps"), (GaussianMollifier(0.06), "x0"), (IdentityMollifier(), "mollified_eps")],
    ids=["mollified-eps", "x0", "white-noise"],
)


def assert_moments(samples: torch.Tensor, data: GaussianData, *, tol_mean: float, tol_cov: float) -> None:
    """Sample mean and covariance of ``(num, 1, N)`` samples match T x0's within the given absolute tolerances."""
    mean, cov = sample_moments(samples.reshape(samples.shape[0], N))
    mean_expected, cov_expected = data.mollified_moments()
    print(f"moment errors: mean {(mean - mean_expected).abs().max():.4f}, cov {(cov - cov_expected).abs().max():.4f}")
    assert (mean - mean_expected).abs().max() < tol_mean, (mean - mean_expected).abs().max()
    assert (cov - cov_expected).abs().max() < tol_cov, (cov - cov_expected).abs().max()


# With 8000 samples the Monte-Carlo errors are ~0.005 (mean) and ~0.004 (covariance entries of size <= 0.21);
# the tolerances allow about 4 of those plus the sampler's own discretisation error.
NUM = 8000


@processes
def test_ddpm_reproduces_gaussian_data(mollifier, prediction: str) -> None:
    """Ancestral sampling with the exact denoiser reproduces the data's mean and covariance (docs/math.md §6)."""
    process = make_process(mollifier, prediction)
    data = GaussianData(process)
    gen = torch.Generator().manual_seed(0)
    y_T = process.prior(NUM, (1, N), (N,), generator=gen, dtype=torch.float64)
    samples = sample_ddpm(data, y_T, grid_of(process, 250), process=process, reference_shape=(N,), generator=gen, clip=False, denoise=False)
    assert_moments(samples, data, tol_mean=0.02, tol_cov=0.02)


@processes
def test_ddim_reproduces_gaussian_data_and_is_deterministic(mollifier, prediction: str) -> None:
    """DDIM with eta = 0 is deterministic and, with the exact denoiser, matches the data's moments (docs/math.md §6)."""
    process = make_process(mollifier, prediction)
    data = GaussianData(process)
    y_T = process.prior(NUM, (1, N), (N,), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    first = sample_ddim(data, y_T, grid_of(process, 100), process=process, reference_shape=(N,), clip=False, denoise=False)
    assert torch.equal(first, sample_ddim(data, y_T, grid_of(process, 100), process=process, reference_shape=(N,), clip=False, denoise=False))
    assert_moments(first, data, tol_mean=0.02, tol_cov=0.02)


def test_ddim_with_eta_one_is_stochastic_and_correct() -> None:
    """DDIM with eta = 1 uses fresh noise and still matches the data's moments."""
    process = make_process(GaussianMollifier(0.06))
    data = GaussianData(process)
    y_T = process.prior(NUM, (1, N), (N,), generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    a = sample_ddim(data, y_T, grid_of(process, 200), process=process, reference_shape=(N,), eta=1.0, generator=torch.Generator().manual_seed(3), clip=False, denoise=False)
    b = sample_ddim(data, y_T, grid_of(process, 200), process=process, reference_shape=(N,), eta=1.0, generator=torch.Generator().manual_seed(4), clip=False, denoise=False)
    assert not torch.equal(a, b)
    assert_moments(a, data, tol_mean=0.02, tol_cov=0.02)


@pytest.mark.parametrize("mollifier", [GaussianMollifier(0.06), IdentityMollifier()], ids=["mollified", "white-noise"])
def test_encode_then_decode_returns_the_start(mollifier) -> None:
    """docs/math.md §6: DDIM encoding inverts the eta = 0 sampler; the error shrinks as steps are added."""
    process = make_process(mollifier)
    data = GaussianData(process)
    x0 = (data.mean[:, None] + torch.linalg.cholesky(data.cov) @ torch.randn(N, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(5))).T
    x0 = x0.reshape(16, 1, N)
    target = mollifier.mollify(x0)
    errors = []
    for steps in (10, 50, 250):
        y_T = encode_ddim(data, x0, grid_of(process, steps), process=process)
        back = sample_ddim(data, y_T, grid_of(process, steps), process=process, reference_shape=(N,), clip=False, denoise=False)
        errors.append((back - target).abs().max().item())
    assert errors[0] > errors[1] > errors[2]
    print("encode-decode max errors at 10/50/250 steps:", errors)
    assert errors[2] < 0.03 and errors[0] / errors[2] > 10, errors


def test_final_sample_is_wiener_filtered_or_the_x0_estimate() -> None:
    """docs/math.md §6: the reported sample is W(T xhat0) under mollified-eps and the network's xhat0 under x0."""
    for prediction in ("mollified_eps", "x0"):
        process = make_process(GaussianMollifier(0.06), prediction, steps=100)
        data = GaussianData(process)
        y_T = process.prior(4, (1, N), (N,), generator=torch.Generator().manual_seed(6), dtype=torch.float64)
        state = sample_ddim(data, y_T, grid_of(process, 20), process=process, reference_shape=(N,), clip=False, denoise=False)
        final = sample_ddim(data, y_T, grid_of(process, 20), process=process, reference_shape=(N,), clip=False)
        if prediction == "mollified_eps":
            torch.testing.assert_close(final, process.mollifier.unmollify(state))
        else:
            torch.testing.assert_close(process.mollifier.mollify(final), state)


def test_clipping_keeps_the_estimate_in_range_and_callback_sees_every_step() -> None:
    """With clip=True, T xhat0 stays in [-1, 1]; the callback runs once per step with the decreasing noise times reached."""
    process = make_process(GaussianMollifier(0.06), steps=100)
    seen: list[int] = []

    def wild(y: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        return -10 * y

    def record(t: int, y: torch.Tensor, tx0: torch.Tensor) -> None:
        seen.append(t)
        assert tx0.abs().max() <= 1

    y_T = process.prior(2, (1, N), (N,), generator=torch.Generator().manual_seed(7))
    sample_ddpm(wild, y_T, grid_of(process, 10), process=process, reference_shape=(N,), generator=torch.Generator().manual_seed(8), callback=record)
    assert seen == sorted(seen, reverse=True) and len(seen) == 10 and seen[0] == 89 / 100 and seen[-1] == 0
