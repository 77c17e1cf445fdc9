"""Shapes: closed-form signed distances, exact nesting across resolutions, examples fixed by their index, the fixed
split, and the resolution check."""

import math

import pytest
import torch

import funcdiff.data.shapes as shapes
from funcdiff.data.shapes import MASTER, Primitive, ShapeVolumes, allowed_resolutions, master_inside, random_primitives
from funcdiff.domains import box_average
from funcdiff.factory import make_dataset

IDENTITY = torch.eye(3)


def stacked(dataset: ShapeVolumes) -> torch.Tensor:
    """All fields of a data set as one batch."""
    return torch.stack([dataset[i] for i in range(len(dataset))])


def test_signed_distances_match_closed_forms() -> None:
    """Each primitive's distance at points whose distance is known by hand (centre, surface, outside, corner)."""
    p = torch.tensor([[0.0, 0.0, 0.0], [0.3, 0.0, 0.0], [0.0, 0.0, 0.5], [0.2, 0.2, 0.2]])
    torch.testing.assert_close(shapes.sphere_sdf(p, 0.3), torch.tensor([-0.3, 0.0, 0.2, math.sqrt(0.12) - 0.3]))
    torch.testing.assert_close(shapes.box_sdf(p, 0.1, 0.1, 0.1), torch.tensor([-0.1, 0.2, 0.4, math.sqrt(3 * 0.01)]))
    ring = torch.tensor([[0.2, 0.0, 0.0], [0.0, 0.0, 0.0], [0.2, 0.0, 0.1], [0.0, 0.35, 0.0]])
    torch.testing.assert_close(shapes.torus_sdf(ring, 0.2, 0.05), torch.tensor([-0.05, 0.15, 0.05, 0.1]))
    rod = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 0.3], [0.1, 0.0, 0.1], [0.0, 0.0, 0.25]])
    torch.testing.assert_close(shapes.capsule_sdf(rod, 0.2, 0.05), torch.tensor([-0.05, 0.05, 0.05, 0.0]))


def test_a_sphere_fills_its_volume_and_rotations_are_rotations() -> None:
    """A lone sphere's occupancy averages to 4/3 pi r^3 (to 1 %); random rotations are orthonormal with det +1."""
    sphere = Primitive("sphere", (0.3,), torch.tensor([0.5, 0.5, 0.5]), IDENTITY)
    fraction = master_inside([sphere]).double().mean()
    assert float(fraction) == pytest.approx(4 / 3 * math.pi * 0.3**3, rel=0.01)
    rotation = shapes.random_rotation(torch.Generator().manual_seed(0))
    torch.testing.assert_close(rotation @ rotation.T, IDENTITY, atol=1e-6, rtol=0)
    assert float(torch.linalg.det(rotation)) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("index", [0, 1, 7, 42])
def test_block_skipping_equals_evaluating_every_cell(index: int) -> None:
    """`master_inside` decides far blocks from their centre; it must agree with the distance at every master cell."""
    primitives = random_primitives(index)
    every_cell = shapes.union_sdf(primitives, shapes.cell_centres(MASTER)) < 0
    assert torch.equal(master_inside(primitives), every_cell.reshape(MASTER, MASTER, MASTER))


@pytest.mark.parametrize("resolution", [1, 2, 4, 8, 16, 32])
def test_shapes_nest_exactly_under_box_averaging(resolution: int) -> None:
    """The 2 x 2 x 2 box-average of the shapes at 2r equals the shapes at r to 1e-6."""
    coarse = stacked(ShapeVolumes(resolution=resolution, limit=3))
    fine = stacked(ShapeVolumes(resolution=2 * resolution, limit=3))
    assert coarse.shape == (3, 1, resolution, resolution, resolution)
    torch.testing.assert_close(box_average(fine, 2), coarse, atol=1e-6, rtol=0)


def test_examples_are_fixed_by_their_index() -> None:
    """Two data sets built apart give equal examples; the primitives of an index never change, and indices differ."""
    first, again = ShapeVolumes(resolution=16, limit=5), ShapeVolumes(resolution=16, size=300, limit=5)
    for i in range(5):
        assert torch.equal(first[i], again[i])
    for a, b in zip(random_primitives(3), random_primitives(3), strict=True):
        assert a.kind == b.kind and a.sizes == b.sizes and torch.equal(a.centre, b.centre) and torch.equal(a.rotation, b.rotation)
    assert not torch.equal(first[0], first[1])


def test_split_is_disjoint_fixed_and_about_a_tenth() -> None:
    """Train and test share no shape, cover every index, and the held-out share is near 10 %."""
    train, test = ShapeVolumes(resolution=4), ShapeVolumes(resolution=4, split="test")
    assert set(train.indices).isdisjoint(test.indices)
    assert sorted(train.indices + test.indices) == list(range(2048))
    assert 0.07 < len(test) / 2048 < 0.13
    assert ShapeVolumes(resolution=4, split="test", size=4096).indices[: len(test)] == test.indices


def test_values_lie_in_range_with_inside_and_outside() -> None:
    """Every field lies in [-1, 1] and has cells wholly outside and cells mostly inside; at 64 it is binary."""
    fields = stacked(ShapeVolumes(resolution=16, limit=20))
    assert fields.shape == (20, 1, 16, 16, 16) and fields.dtype == torch.float32
    assert float(fields.min()) >= -1 and float(fields.max()) <= 1
    assert bool((fields.flatten(1) == -1).any(1).all()) and bool((fields.flatten(1) > 0).any(1).all())
    master = ShapeVolumes(resolution=MASTER, limit=2)[1]
    assert set(master.unique().tolist()) == {-1.0, 1.0}


def test_registered_kind_and_shape_attribute() -> None:
    """``shapes`` builds through the factory like the other data sets; ``shape`` is ``(1, r, r, r)``."""
    data = make_dataset("shapes", resolution=8, limit=2)
    assert isinstance(data, ShapeVolumes) and data.shape == (1, 8, 8, 8) and len(data) == 2


@pytest.mark.parametrize("resolution", [0, 3, 12, 128, True])
def test_a_resolution_not_dividing_the_master_is_refused(resolution: int) -> None:
    """The error lists the allowed resolutions."""
    assert allowed_resolutions() == [1, 2, 4, 8, 16, 32, 64]
    with pytest.raises(ValueError, match=r"resolution must be one of \[1, 2, 4, 8, 16, 32, 64\]"):
        ShapeVolumes(resolution=resolution)


def test_bad_size_or_limit_is_refused() -> None:
    """``size`` and ``limit`` must be positive."""
    with pytest.raises(ValueError, match="size"):
        ShapeVolumes(resolution=8, size=0)
    with pytest.raises(ValueError, match="limit"):
        ShapeVolumes(resolution=8, limit=0)
