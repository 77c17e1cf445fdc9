"""Minibatch optimal-transport coupling: the pairing is optimal against brute force, the flow's loss pairs by it, and
it shortens the paths it trains on."""

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from funcdiff import GaussianMollifier, GridDomain, Points
from funcdiff.processes.coupling import ot_pairing
from funcdiff.processes.flow import FunctionalFlowMatching


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 6), st.integers(0, 2**31 - 1))
def test_the_pairing_is_the_cheapest_permutation(batch: int, seed: int) -> None:
    """No permutation of the source (all ``b!`` tried) costs less than `ot_pairing`'s; the result is a permutation."""
    generator = torch.Generator().manual_seed(seed)
    target, source = torch.randn(batch, 1, 4, 4, generator=generator), torch.randn(batch, 1, 4, 4, generator=generator)

    def cost(order) -> float:
        return sum(float((target[i] - source[j]).double().square().sum()) for i, j in enumerate(order))

    pairing = ot_pairing(target, source)
    assert sorted(pairing.tolist()) == list(range(batch))
    best = min(cost(order) for order in itertools.permutations(range(batch)))
    assert cost(pairing.tolist()) == pytest.approx(best, rel=1e-9, abs=1e-9)


def test_an_ot_flow_trains_on_shorter_paths_than_an_independent_one() -> None:
    """With the same data and noise draws, the OT flow's conditional velocities are shorter on average (the summed
    squared path length is what the pairing minimises), and the process records its coupling."""
    domain, mollifier = GridDomain(2, 1), GaussianMollifier(0.05)
    data = torch.rand(32, 1, 8, 8) * 2 - 1
    lengths = {}
    for coupling in ("independent", "ot"):
        process = FunctionalFlowMatching(domain, mollifier, coupling=coupling)
        def model(points, t, cond):
            return torch.zeros_like(points.values)

        losses = [float(process.loss(model, data, points=1.0, generator=torch.Generator().manual_seed(k), s=torch.zeros(32)))
                  for k in range(5)]
        lengths[coupling] = sum(losses)  # a zero model at s = 0: the loss is the mean squared velocity
    assert lengths["ot"] < 0.9 * lengths["independent"]
    assert FunctionalFlowMatching(domain, mollifier, coupling="ot").to_dict()["coupling"] == "ot"
    seen = []
    FunctionalFlowMatching(domain, mollifier, coupling="ot").loss(lambda p, t, c: seen.append(p) or torch.zeros_like(p.values), data,
                                                                 points=1.0, generator=torch.Generator().manual_seed(0), s=torch.ones(32))
    torch.testing.assert_close(seen[0].values, Points.from_dense(mollifier.mollify(data)).values, atol=1e-5, rtol=0)  # data kept in order
    with pytest.raises(ValueError, match="coupling must be one of"):
        FunctionalFlowMatching(domain, mollifier, coupling="sinkhorn")


def test_conditional_examples_are_paired_only_with_their_own_condition() -> None:
    """With conditions, the pairing permutes within each group of equal conditions (optimally there) and leaves an
    example whose condition is unique with its own noise."""
    generator = torch.Generator().manual_seed(4)
    target, source = torch.randn(7, 1, 4, 4, generator=generator), torch.randn(7, 1, 4, 4, generator=generator)
    cond = torch.tensor([[0], [1], [0], [1], [0], [2], [1]])
    pairing = ot_pairing(target, source, cond)
    assert bool((cond[pairing] == cond).all()) and int(pairing[5]) == 5
    for group in ([0, 2, 4], [1, 3, 6]):
        sub = ot_pairing(target[group], source[group])
        assert pairing[group].tolist() == [group[j] for j in sub.tolist()]
