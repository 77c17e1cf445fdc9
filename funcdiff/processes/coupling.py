"""Minibatch optimal-transport coupling of noise and data for flow matching (Tong et al. 2024; Pooladian et al. 2023;
docs/math.md §11): within each batch, the pairing that minimises the summed squared L2 distance between the path's
endpoints, an assignment problem solved exactly."""

from typing import Literal

import numpy as np
import torch
from beartype import beartype
from jaxtyping import jaxtyped
from scipy.optimize import linear_sum_assignment

from funcdiff._typing import DenseField, Float, Int, Tensor

Coupling = Literal["independent", "ot"]
"""How a flow pairs noise with data in a batch: as drawn, or by minibatch optimal transport."""


@jaxtyped(typechecker=beartype)
def pairwise_sq_distances(a: DenseField, b: DenseField) -> Float[Tensor, "n m"]:
    """``||a_i - b_j||^2`` summed over channels and cells, in float64."""
    flat_a, flat_b = a.flatten(1).double(), b.flatten(1).double()
    return torch.cdist(flat_a, flat_b).square()


@jaxtyped(typechecker=beartype)
def ot_pairing(target: DenseField, source: DenseField, cond: Tensor | None = None) -> Int[Tensor, " b"]:
    """The permutation ``p`` minimising ``sum_i ||target_i - source_{p_i}||^2``: exact optimal transport between the
    two batches' empirical measures (equal weights, so an optimal plan is a permutation; Hungarian algorithm).

    With ``cond`` (one condition per example, e.g. class labels), examples are paired only within groups of equal
    conditions, so the noise each condition sees stays white (docs/math.md §11); unique conditions stay unpaired.
    """
    if target.shape != source.shape:
        raise ValueError(f"target and source must have one shape, got {tuple(target.shape)} and {tuple(source.shape)}")
    costs = pairwise_sq_distances(target, source).cpu().numpy()
    if cond is None:
        group = np.zeros(len(target), dtype=np.int64)
    else:
        group = torch.unique(cond.reshape(len(cond), -1), dim=0, return_inverse=True)[1].cpu().numpy()
    pairing = np.arange(len(target))
    for g in np.unique(group):
        members = np.flatnonzero(group == g)
        _, columns = linear_sum_assignment(costs[np.ix_(members, members)])
        pairing[members] = members[columns]
    return torch.from_numpy(pairing.astype(np.int64)).to(target.device)
