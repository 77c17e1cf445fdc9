"""Time grids (docs/math.md §14): their spacing against the closed forms, and the grids a sampler refuses."""

import math

import pytest
import torch

from funcdiff import FunctionalFlowMatching, GridDomain, IdentityMollifier, MollifiedDDPM, cosine_schedule, linear_schedule
from funcdiff.processes import respace
from funcdiff.sampling import check_grid, discrete_steps, flow_times, karras, sample_ddim, uniform_logsnr, uniform_t

DDPM = MollifiedDDPM(GridDomain(1, 1), cosine_schedule(1000), IdentityMollifier())
FLOW = FunctionalFlowMatching(GridDomain(1, 1), IdentityMollifier(), sigma_min=0.05)


def flow_sigma(s: torch.Tensor) -> torch.Tensor:
    """``sigma = sigma_s / alpha_s = (1 - 0.95 s) / s`` of `FLOW`'s path."""
    return (1 - 0.95 * s) / s


@pytest.mark.parametrize("steps", [1, 4, 37, 1000])
def test_uniform_t_is_the_respaced_steps_for_a_ddpm_and_even_for_a_flow(steps: int) -> None:
    """A DDPM's uniform grid is round(linspace(T, 1, k)) then 0 (Nichol & Dhariwal 2021); a flow's is s = j / k."""
    assert discrete_steps(DDPM, uniform_t(DDPM, steps)) == [*respace(1000, steps), 0]
    assert flow_times(uniform_t(FLOW, steps)) == pytest.approx([j / steps for j in range(steps + 1)], abs=1e-15)


@pytest.mark.parametrize("steps", [3, 10, 25])
def test_karras_spacing_on_a_flow(steps: int) -> None:
    """Interior times of a flow's Karras grid have sigma_i = (80^(1/7) + i/k (sigma_min^(1/7) - 80^(1/7)))^7 with
    sigma_min = 0.05 / 1 the path's value at s = 1; the grid starts at the prior and ends at the data."""
    grid = karras(FLOW, steps)
    s = torch.tensor(flow_times(grid), dtype=torch.float64)
    assert grid[0] == 1 and grid[-1] == 0 and len(grid) == steps + 1
    low = 0.05
    i = torch.arange(1, steps, dtype=torch.float64)
    expected = (80 ** (1 / 7) + i / steps * (low ** (1 / 7) - 80 ** (1 / 7))) ** 7
    torch.testing.assert_close(flow_sigma(s[1:-1]), expected, rtol=1e-9, atol=0)


def test_karras_on_a_ddpm_rounds_to_steps_whose_sigma_follows_the_formula() -> None:
    """A DDPM's Karras grid rounds to integer steps whose sigma = sqrt((1 - abar) / abar) is within one step of the
    formula's, between sigma(step 1) and 80."""
    steps = discrete_steps(DDPM, karras(DDPM, 12))
    abar = DDPM.schedule.alpha_bar.double()
    sigma = ((1 - abar) / abar).sqrt()
    low, high = float(sigma[1]), 80.0
    for i, t in enumerate(steps[1:-1], start=1):
        want = (high ** (1 / 7) + i / 12 * (low ** (1 / 7) - high ** (1 / 7))) ** 7
        assert float(sigma[t - 1]) <= want <= float(sigma[t + 1]), (i, t)


@pytest.mark.parametrize("process", [FLOW, MollifiedDDPM(GridDomain(1, 1), linear_schedule(1000), IdentityMollifier())],
                         ids=["flow", "ddpm-linear"])
def test_uniform_logsnr_spacing(process) -> None:
    """Interior points are evenly spaced in lambda = log(a^2 / s^2) (a DDPM to within its integer steps)."""
    grid = uniform_logsnr(process, 8)
    if isinstance(process, MollifiedDDPM):
        abar = process.schedule.alpha_bar.double()[discrete_steps(process, grid)[1:-1]]
        lam = torch.log(abar / (1 - abar))
    else:
        s = torch.tensor(flow_times(grid)[1:-1], dtype=torch.float64)
        lam = 2 * torch.log(s / (1 - 0.95 * s))
    gaps = lam.diff()
    assert float(gaps.max() / gaps.min()) < 1.05, gaps


def test_samplers_refuse_bad_grids() -> None:
    """A grid must be strictly decreasing, within [0, 1] and end at 0; builders refuse bad step counts and rho."""
    y = torch.zeros(1, 1, 8)
    for bad in ([1.0, 0.5], [1.0, 0.5, 0.5, 0.0], [1.0, 0.2, 0.5, 0.0], [1.5, 0.0], [0.0], [1.0, math.nan, 0.0]):
        with pytest.raises(ValueError, match="time grid"):
            check_grid(torch.tensor(bad, dtype=torch.float64))
    with pytest.raises(ValueError, match="time grid"):
        sample_ddim(lambda y, t, c: y, y, torch.tensor([1.0, 0.5], dtype=torch.float64), process=DDPM)
    for builder in (uniform_t, uniform_logsnr, karras):
        with pytest.raises(ValueError, match="steps must be a positive int"):
            builder(FLOW, 0)
    with pytest.raises(ValueError, match="rho"):
        karras(FLOW, 5, rho=0.0)
