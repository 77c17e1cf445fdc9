"""Forward marginals, chain composition and the closed-form posterior of the mollified process (docs/math.md §3, §4, §7)."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from funcdiff import GaussianMollifier, IdentityMollifier, GridDomain, MollifiedDDPM
from funcdiff.processes import Schedule
from tests.helpers import mollifier_matrix, sample_moments

grid_shapes = st.sampled_from([(5,), (8,), (3, 4), (4, 4)])


def random_schedule(seed: int, steps: int) -> Schedule:
    """A schedule with random betas in (1e-3, 0.3), float64."""
    betas = torch.rand(steps, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 0.3 + 1e-3
    return Schedule(torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod(1 - betas, 0)]))


def dense_operator(mollifier, shape: tuple[int, ...]) -> torch.Tensor:
    """T as an explicit matrix, computed independently of the DCT code (identity for the white-noise process)."""
    if isinstance(mollifier, IdentityMollifier):
        return torch.eye(torch.Size(shape).numel(), dtype=torch.float64)
    return mollifier_matrix(shape, mollifier.sigma)


@given(
    seed=st.integers(0, 2**16),
    shape=grid_shapes,
    sigma=st.one_of(st.none(), st.floats(0.02, 0.2)),
    data=st.data(),
)
def test_posterior_matches_dense_gaussian_conditioning(seed: int, shape: tuple[int, ...], sigma: float | None, data) -> None:
    """docs/math.md §4: condition the joint Gaussian of (y_{t-1}, y_t) | x0 with dense float64 algebra; compare."""
    steps = 12
    t = data.draw(st.integers(1, steps))
    mollifier = IdentityMollifier() if sigma is None else GaussianMollifier(sigma)
    process = MollifiedDDPM(GridDomain(len(shape), 1), random_schedule(seed, steps), mollifier)
    a = process.schedule.alpha_bar
    gen = torch.Generator().manual_seed(seed)
    x0 = torch.randn(1, 1, *shape, generator=gen, dtype=torch.float64)
    y_t = torch.randn(1, 1, *shape, generator=gen, dtype=torch.float64)

    T = dense_operator(mollifier, shape)
    TT = T @ T.T
    x, y = x0.flatten(), y_t.flatten()
    alpha_t = a[t] / a[t - 1]
    cov_prev, cov_t = (1 - a[t - 1]) * TT, (1 - a[t]) * TT
    cross = alpha_t.sqrt() * (1 - a[t - 1]) * TT
    gain = cross @ torch.linalg.pinv(cov_t, hermitian=True, rtol=1e-12)
    mean = a[t - 1].sqrt() * T @ x + gain @ (y - a[t].sqrt() * T @ x)
    cov = cov_prev - gain @ cross.T

    got_mean, got_var = process.posterior(x0, y_t, torch.tensor([t]))
    torch.testing.assert_close(got_mean.flatten(), mean, rtol=1e-7, atol=1e-7)
    torch.testing.assert_close(got_var[0] * TT, cov, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("mollifier", [GaussianMollifier(0.08), IdentityMollifier()], ids=["gaussian", "identity"])
def test_forward_marginal_and_chain_moments(mollifier) -> None:
    """docs/math.md §3: q(y_t | x0) = N(sqrt(abar) T x0, (1 - abar) T T*), and q(y_t | y_{t-1}) composes to it."""
    shape, num = (8,), 40_000
    process = MollifiedDDPM(GridDomain(1, 1), random_schedule(3, 6), mollifier)
    gen = torch.Generator().manual_seed(1)
    x0 = torch.randn(1, 1, *shape, dtype=torch.float64, generator=gen).expand(num, 1, *shape)
    t = torch.full((num,), 4)
    a = process.schedule.alpha_bar
    T = dense_operator(mollifier, shape)
    mean_expected = a[4].sqrt() * T @ x0[0].flatten()
    cov_expected = (1 - a[4]) * T @ T.T

    direct = process.q_sample(x0, t, torch.randn(x0.shape, generator=gen, dtype=torch.float64))
    y_prev = process.q_sample(x0, t - 1, torch.randn(x0.shape, generator=gen, dtype=torch.float64))
    beta = process.schedule.beta[4]
    chained = (1 - beta).sqrt() * y_prev + beta.sqrt() * mollifier.mollify(torch.randn(x0.shape, generator=gen, dtype=torch.float64))

    # Monte-Carlo error of a mean is sd / sqrt(num) and of a covariance entry about sqrt(2 / num) * variance:
    # 5 of those is a bound that a correct implementation exceeds with probability ~1e-6 per entry.
    sd = cov_expected.diagonal().max().sqrt()
    for samples in (direct, chained):
        mean, cov = sample_moments(samples.reshape(num, -1))
        assert (mean - mean_expected).abs().max() < 5 * sd / num**0.5
        assert (cov - cov_expected).abs().max() < 5 * (2 / num) ** 0.5 * sd**2
