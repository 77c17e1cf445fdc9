"""Integer box sums nest exactly; the hash split is disjoint, complete and deterministic."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from funcdiff.data import box_sums, split_indices, sums_to_field
from funcdiff.domains import box_average


@given(exponent=st.integers(0, 4), factor_exponent=st.integers(0, 4), seed=st.integers(0, 2**16))
def test_box_sums_are_the_box_average(exponent: int, factor_exponent: int, seed: int) -> None:
    """Integer block sums mapped to [-1, 1] equal the float box-average of the pixels."""
    factor = 2**factor_exponent
    side = 2**exponent * factor
    images = np.random.default_rng(seed).integers(0, 256, (2, side, side), dtype=np.uint8)
    field = sums_to_field(box_sums(images, factor), factor)
    full = torch.from_numpy(images.astype(np.float64) / 127.5 - 1)[:, None]
    torch.testing.assert_close(field[:, None].double(), box_average(full, factor), atol=1e-6, rtol=0)


def test_box_sums_use_an_exact_integer_type() -> None:
    """The sums fit the narrowest exact type, up to a single 512 x 512 block."""
    white = np.full((512, 512), 255, dtype=np.uint8)
    assert box_sums(white, 1).dtype == np.uint8
    assert box_sums(white, 16).dtype == np.uint16
    assert box_sums(white, 512).dtype == np.uint32
    assert box_sums(white, 512).item() == 255 * 512**2
    assert sums_to_field(box_sums(white, 512), 512).item() == 1.0


def test_box_sums_reject_a_factor_that_does_not_divide() -> None:
    """A factor that does not divide the image is a ValueError naming it."""
    with pytest.raises(ValueError, match="factor"):
        box_sums(np.zeros((6, 6), dtype=np.uint8), 4)


def test_split_is_disjoint_complete_and_deterministic() -> None:
    """Train and test partition the keys, hold out about the fraction, and depend only on the seed."""
    keys = [f"item{i}" for i in range(2000)]
    train = split_indices(keys, "train", fraction=0.1, seed=0)
    test = split_indices(keys, "test", fraction=0.1, seed=0)
    assert not set(train) & set(test)
    assert sorted(train + test) == list(range(2000))
    assert 150 < len(test) < 250
    assert test == split_indices(keys, "test", fraction=0.1, seed=0)
    assert test != split_indices(keys, "test", fraction=0.1, seed=1)


def test_split_of_an_item_does_not_depend_on_the_others() -> None:
    """Removing items never moves the others across the split."""
    keys = [f"item{i}" for i in range(100)]
    test = {keys[i] for i in split_indices(keys, "test", fraction=0.3, seed=0)}
    fewer = keys[::3]
    assert {fewer[i] for i in split_indices(fewer, "test", fraction=0.3, seed=0)} == test & set(fewer)


def test_split_validates_the_fraction() -> None:
    """A held-out fraction outside [0, 1) is a ValueError naming test_fraction."""
    with pytest.raises(ValueError, match="test_fraction"):
        split_indices(["a"], "train", fraction=1.0, seed=0)
