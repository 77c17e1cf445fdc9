"""Clear errors from Points and the grid domain: indices off the grid, empty batches and point sets, bad sizes."""

import math

import pytest
import torch

from funcdiff import GridDomain, Points
from funcdiff.domains import box_average, nested_white_noise, white_noise


@pytest.mark.parametrize(
    "index, message",
    [
        ([[[0, 5]]], r"index along axis 1 must lie in \[0, 4\), got values in \[5, 5\]"),  # flat 5 would wrap onto cell (1, 1)
        ([[[-1, 0]]], r"index along axis 0 must lie in \[0, 4\), got values in \[-1, -1\]"),
        ([[[4, 0]]], r"index along axis 0 must lie in \[0, 4\), got values in \[4, 4\]"),
        ([[[3, 3], [0, -2]]], r"axis 1 must lie in \[0, 4\), got values in \[-2, 3\]"),
    ],
)
def test_points_refuse_indices_off_the_grid(index: list, message: str) -> None:
    """An index outside [0, N) along any axis is refused instead of wrapping onto another cell, in the constructor and
    in `Points.gather` (before any value is read)."""
    index = torch.tensor(index)
    values = torch.zeros(1, index.shape[1], 1)
    with pytest.raises(ValueError, match=message):
        Points(values, index, (4, 4))
    with pytest.raises(ValueError, match=message):
        Points.gather(torch.zeros(1, 1, 4, 4), index)


def test_points_refuse_empty_sets_and_bad_grids() -> None:
    """No example, point or channel, integer values or a grid with an empty axis: clear errors."""
    for values in (torch.zeros(1, 0, 1), torch.zeros(0, 3, 1), torch.zeros(1, 3, 0)):
        index = torch.zeros(*values.shape[:2], 2, dtype=torch.long)
        with pytest.raises(ValueError, match=rf"at least one example, point and channel, got values of shape \({values.shape[0]}, "):
            Points(values, index, (4, 4))
    with pytest.raises(ValueError, match=r"shape must be a tuple of one or more positive ints, got \(4, 0\)"):
        Points(torch.zeros(1, 1, 1), torch.zeros(1, 1, 2, dtype=torch.long), (4, 0))
    with pytest.raises((TypeError, ValueError), match="values"):
        Points(torch.zeros(1, 1, 1, dtype=torch.long), torch.zeros(1, 1, 2, dtype=torch.long), (4, 4))
    with pytest.raises((TypeError, ValueError), match="index"):
        Points(torch.zeros(1, 1, 1), torch.zeros(1, 1, 2), (4, 4))


def test_points_accept_the_corners() -> None:
    """0 and N - 1 are on the grid along every axis, for int32 and int64 indices."""
    for dtype in (torch.int32, torch.int64):
        index = torch.tensor([[[0, 0], [3, 4]]], dtype=dtype)
        p = Points(torch.ones(1, 2, 1), index, (4, 5))
        assert p.flat.tolist() == [[0, 19]]


def test_domain_refuses_empty_batches_and_counts() -> None:
    """subsample, draw_index and white_noise with no examples or no points raise ValueErrors naming the argument."""
    domain = GridDomain(2, 1)
    with pytest.raises(ValueError, match=r"x must have shape \(b, 1, N, N\) with no empty axis, got \(0, 1, 4, 4\)"):
        domain.subsample(torch.zeros(0, 1, 4, 4), 4)
    with pytest.raises(ValueError, match=r"x must have shape .* got \(2, 1, 0, 4\)"):
        domain.subsample(torch.zeros(2, 1, 0, 4), 4)
    with pytest.raises(ValueError, match="points=0 must lie in"):
        domain.subsample(torch.zeros(2, 1, 4, 4), 0)
    with pytest.raises(ValueError, match="batch must be a positive int, got 0"):
        domain.draw_index(0, (4, 4), 3)
    with pytest.raises(ValueError, match="batch must be a positive int, got 0"):
        domain.white_noise(0, (1, 4, 4), (4, 4))
    with pytest.raises(ValueError, match=r"shape must be a tuple of one or more positive ints, got \(0, 4, 4\)"):
        white_noise(2, (0, 4, 4), (4, 4))
    with pytest.raises(ValueError, match=r"reference_shape must be a tuple of one or more positive ints, got \(4, 0\)"):
        white_noise(2, (1, 4, 4), (4, 0))


def test_domain_constructor_and_resolution_refuse_non_ints() -> None:
    """ndim, channels and resolutions are positive ints (not bools, floats or strings); value_range two numbers."""
    # Wrong types are TypeErrors from the test-time type checker, ValueErrors from funcdiff without it; both name the argument.
    for bad in (0, -1, 2.0, "2", True, None):
        with pytest.raises((ValueError, TypeError), match="ndim"):
            GridDomain(bad, 1)  # type: ignore[arg-type]
        with pytest.raises((ValueError, TypeError), match="channels"):
            GridDomain(1, bad)  # type: ignore[arg-type]
    for bad in ((1.0,), (0.0, math.nan), (1.0, -1.0), ("a", "b"), (0.0, 1.0, 2.0)):
        with pytest.raises((ValueError, TypeError), match="value_range"):
            GridDomain(1, 1, value_range=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="resolution"):
        GridDomain(2, 1).grid_shape((True, 4))  # type: ignore[arg-type]


def test_box_average_and_nesting_refuse_bad_factors() -> None:
    """box_average's factor is a positive int and its field has spatial axes; nest shapes match the sampling grid."""
    for bad in (0, -2, 1.5, True):
        with pytest.raises((ValueError, TypeError), match="factor"):
            box_average(torch.zeros(1, 1, 4, 4), bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="x must be a dense field"):
        box_average(torch.zeros(1, 4), 2)
    with pytest.raises(ValueError, match="nest_shape"):
        nested_white_noise(1, (1, 8, 8), (8, 8), (16,))
    with pytest.raises(ValueError, match="nest_shape"):
        nested_white_noise(1, (1, 8, 8), (8, 8), (16, 0))
