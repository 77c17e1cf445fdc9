"""Data sets of observations at scattered points (docs/math.md §20): their items are dictionaries ``{"values": (n, c),
"coords": (n, d)}``, which the loader batches and `as_scattered` turns into `funcdiff.points.Scattered`; they say so
by a true ``scattered`` attribute and give the grid they are read on as ``shape``."""

from collections.abc import Mapping, Sequence

from torch import Tensor
from torch.utils.data import Dataset

from funcdiff.data.labels import fields_of
from funcdiff.points import Scattered


def is_scattered(data: Dataset | Sequence[Tensor]) -> bool:
    """Whether a data set holds observations at scattered points."""
    return bool(getattr(data, "scattered", False))


def example_shape(data: Dataset | Sequence[Tensor]) -> tuple[int, ...]:
    """``(c, *grid)`` of one example: a scattered data set's channels and the grid a model reads it on (its
    ``shape``), else the shape of its first field."""
    return tuple(data.shape) if is_scattered(data) else tuple(fields_of(data)[0].shape)


def as_scattered(batch: Mapping[str, Tensor]) -> Scattered:
    """A loader's batch of a scattered data set's items as `Scattered` points."""
    return Scattered(batch["values"], batch["coords"])
