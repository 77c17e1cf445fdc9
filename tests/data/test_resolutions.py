"""ResolutionMixture: which resolution each step trains at, and the coarsened batch (docs/math.md §15)."""

from collections import Counter

import pytest
import torch

from funcdiff.data import ResolutionMixture
from funcdiff.domains import GridDomain


def test_each_step_draws_one_factor_from_the_seed_and_step_alone() -> None:
    """The draw is a function of (seed, step): two instances agree, seeds differ, and every factor is drawn about
    equally often (uniform within 4 standard deviations over 3,000 steps)."""
    mixture = ResolutionMixture((4, 2, 1), seed=3)
    draws = [mixture.factor(k) for k in range(3000)]
    assert draws == [ResolutionMixture((4, 2, 1), seed=3).factor(k) for k in range(3000)]
    assert draws != [ResolutionMixture((4, 2, 1), seed=4).factor(k) for k in range(3000)]
    counts = Counter(draws)
    assert set(counts) == {4, 2, 1}
    assert all(abs(n - 1000) < 4 * (3000 * (1 / 3) * (2 / 3)) ** 0.5 for n in counts.values()), counts


def test_the_batch_is_the_box_average_of_the_fine_batch() -> None:
    """A step at factor f trains on the f x f block means of the data, the same nesting as the data's own resolutions."""
    domain = GridDomain(ndim=2, channels=1)
    x = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    mixture = ResolutionMixture((2, 1))
    steps = {mixture.factor(k): k for k in range(20)}
    coarse = mixture.batch(domain, x, steps[2])
    expected = torch.stack([torch.stack([x[:, :, 2 * i:2 * i + 2, 2 * j:2 * j + 2].mean(dim=(2, 3)) for j in range(4)], -1)
                            for i in range(4)], -2)
    assert coarse.shape == (2, 1, 4, 4) and torch.allclose(coarse, expected, atol=1e-6)
    assert mixture.batch(domain, x, steps[1]) is x


@pytest.mark.parametrize("factors", [(), (0,), (2, 2), (True,)])
def test_bad_factors_are_refused(factors) -> None:
    with pytest.raises(ValueError, match="factors"):
        ResolutionMixture(factors)


def test_factors_that_do_not_divide_the_grid_are_refused() -> None:
    with pytest.raises(ValueError, match=r"coarsening factors \[3\]"):
        ResolutionMixture((3, 1)).check((16, 16))
