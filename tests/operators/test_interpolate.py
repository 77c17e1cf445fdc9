"""Points <-> grid (docs/math.md §8): exact k-nearest search, inverse-distance weights, cell-centre multilinear reads."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from funcdiff.domains.grid import GridDomain
from funcdiff.operators.kernels import native
from funcdiff.operators.layers.interpolate import cell_centres, grid_to_points, knn_to_grid, nearest_points
from funcdiff.points import Points

grids = st.sampled_from([(1, (40,), (9,)), (2, (16, 12), (5, 8)), (2, (10, 10), (20, 20)), (3, (6, 5, 7), (3, 4, 2))])


IMPLEMENTATIONS = ["torch"] + (["native"] if native.load() is not None else [])


@settings(deadline=None, max_examples=20)
@given(
    grid=grids, fraction=st.floats(0.0, 1.0), seed=st.integers(0, 99), k=st.integers(1, 4),
    implementation=st.sampled_from(IMPLEMENTATIONS),
)
def test_nearest_points_match_brute_force(grid: tuple, fraction: float, seed: int, k: int, implementation: str) -> None:
    """The lattice-aware search (PyTorch and C++) finds the same k nearest distances as an all-pairs search."""
    ndim, shape, target = grid
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 1, *shape, generator=gen)
    points = GridDomain(ndim, 1).subsample(x, max(k, round(fraction * x[0, 0].numel())), generator=gen)
    rows, dist = nearest_points(points, target, k, implementation=implementation)
    nodes = cell_centres(target, dtype=torch.float64, device=x.device)
    all_pairs = torch.cdist(nodes.expand(2, -1, -1), points.coords.double()).square()
    torch.testing.assert_close(dist, all_pairs.topk(k, largest=False).values)
    flat_coords = points.coords.double().reshape(-1, ndim)
    torch.testing.assert_close((flat_coords[rows] - nodes.unsqueeze(1)).square().sum(-1), dist)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize(("shape", "target", "fraction"), [
    ((16, 16), (8, 8), 1.0), ((20, 20), (8, 8), 1.0), ((24,), (6,), 1.0), ((12, 12), (4, 6), 0.5), ((6, 6, 6), (3, 3, 3), 1.0),
    ((16, 16), (16, 16), 0.5), ((12, 12), (12, 12), 0.3), ((24,), (8,), 0.5),  # nodes on cell centres: ties at the window's edge
])
def test_nearest_points_break_ties_by_lattice_position(shape, target, fraction, implementation: str) -> None:
    """Equidistant points, everywhere between regular grids, come nearest first and then in row-major order of their
    lattice positions: both implementations return the rows of an all-pairs search sorted by (distance, position),
    for every example of a batch whatever the others need."""
    gen = torch.Generator().manual_seed(0)
    batch = 4
    x = torch.randn(batch, 1, *shape, generator=gen)
    points = GridDomain(len(shape), 1).subsample(x, fraction, generator=gen) if fraction < 1 else Points.from_dense(x)
    rows, dist = nearest_points(points, target, 3, implementation=implementation)
    nodes = cell_centres(target, dtype=torch.float64, device=x.device)
    size = torch.tensor(shape, dtype=torch.float64)
    for b in range(batch):
        coords = (points.index[b].double() + 0.5) / size
        d2 = (coords[None] - nodes[:, None]).square().sum(-1)  # (nodes, n), the search's own arithmetic
        position = torch.zeros(coords.shape[0], dtype=torch.long)
        for axis, n in enumerate(shape):
            position = position * n + points.index[b, :, axis]
        by_position = position.argsort()
        order = by_position[d2[:, by_position].sort(dim=-1, stable=True).indices[:, :3]]
        assert torch.equal(rows[b] - b * points.values.shape[1], order)
        torch.testing.assert_close(dist[b], d2.gather(1, order), rtol=0, atol=0)


@pytest.mark.parametrize("shape", [(12,), (6, 9), (4, 3, 5)])
def test_knn_exact_on_coincident_grid(shape: tuple[int, ...]) -> None:
    """Points on every cell of the target grid are copied exactly (zero distance takes all the weight)."""
    x = torch.randn(2, 3, *shape)
    torch.testing.assert_close(knn_to_grid(Points.from_dense(x), shape), x)


def test_knn_weights_are_inverse_squared_distance() -> None:
    """One node between three points gets their average weighted by 1/d^2 (Qi et al. 2017, Eq. 2)."""
    index = torch.tensor([[[0, 0], [0, 2], [3, 3]]])
    points = Points(torch.tensor([[[1.0], [2.0], [4.0]]]), index, (4, 4))
    out = knn_to_grid(points, (1, 1))
    d2 = ((index[0].double() + 0.5) / 4 - 0.5).square().sum(-1)
    w = (1 / d2) / (1 / d2).sum()
    torch.testing.assert_close(out.view(()), (w * torch.tensor([1.0, 2.0, 4.0]).double()).sum().float())


@pytest.mark.parametrize("shape", [(12,), (6, 9), (4, 3, 5)])
def test_grid_to_points_exact_on_nodes(shape: tuple[int, ...]) -> None:
    """Reading a grid at its own cell centres returns its values."""
    x = torch.randn(2, 3, *shape, dtype=torch.float64)
    points = Points.from_dense(x)
    torch.testing.assert_close(grid_to_points(x, points.coords), points.values)


@pytest.mark.parametrize("axis", [0, 1])
def test_grid_to_points_convention(axis: int) -> None:
    """A field varying along one axis only is read back along that axis: no transposition, no quadrant effect.

    The official code passed (row, col) in [0, 1] to ``grid_sample`` and read a transposed lower-right quadrant
    (docs/reference-differences.md §8.2); a linear ramp in cell-centre coordinates must be reproduced exactly between nodes.
    """
    shape = (8, 8)
    centres = (torch.arange(8, dtype=torch.float64) + 0.5) / 8
    ramp = centres.view(8, 1) if axis == 0 else centres.view(1, 8)
    grid = ramp.expand(shape).reshape(1, 1, *shape)
    coords = torch.rand(1, 50, 2, dtype=torch.float64) * (7 / 8) + 1 / 16
    torch.testing.assert_close(grid_to_points(grid, coords)[0, :, 0], coords[0, :, axis])


def test_grid_to_points_clamps_at_borders() -> None:
    """Beyond the outermost cell centres the border value is held, not faded to zero."""
    grid = torch.ones(1, 1, 4, 4)
    coords = torch.tensor([[[0.0, 0.0], [1.0, 1.0], [0.0, 1.0]]])
    torch.testing.assert_close(grid_to_points(grid, coords), torch.ones(1, 3, 1))


def test_knn_gradients_reach_features() -> None:
    """Features get gradients through the weighted sum."""
    x = torch.randn(1, 2, 8, 8)
    points = GridDomain(2, 2).subsample(x, 0.3)
    values = points.values.clone().requires_grad_()
    knn_to_grid(points.with_values(values), (4, 4)).sum().backward()
    assert values.grad is not None and values.grad.abs().sum() > 0


def test_validation() -> None:
    """Mismatched grid dimension and non-positive k raise ValueError naming the argument."""
    points = Points.from_dense(torch.randn(1, 1, 4, 4))
    with pytest.raises(ValueError, match="grid_shape"):
        knn_to_grid(points, (4,))
    with pytest.raises(ValueError, match="k must"):
        knn_to_grid(points, (4, 4), k=0)
