"""Fuzzing the domain's public entries and `Points`: every call either returns the right result or refuses with a
clear error, and a valid call is never refused."""

import itertools
import math

import torch
from hypothesis import given
from hypothesis import strategies as st

from funcdiff import GridDomain, Points
from funcdiff.domains import box_average, white_noise
from tests.strategies import (
    FLOAT_DTYPES, fields, finite, fuzz, is_count, is_shape, numbers, outcome, sizes, tensors, wrong_types,
)




@fuzz
@given(
    ndim=sizes,
    channels=sizes,
    value_range=st.one_of(st.tuples(numbers, numbers), st.tuples(numbers), wrong_types),
    scheme=st.one_of(st.sampled_from(["uniform", "stratified", "random"]), wrong_types),
)
def test_grid_domain_constructor(ndim, channels, value_range, scheme) -> None:
    """A GridDomain is built exactly when ndim and channels are positive ints, value_range two ordered numbers and the
    scheme known; it then keeps them."""
    domain = outcome(lambda: GridDomain(ndim, channels, value_range, scheme))
    valid = (
        is_count(ndim) and is_count(channels) and scheme in ("uniform", "stratified") and isinstance(value_range, tuple)
        and len(value_range) == 2 and all(isinstance(v, float) for v in value_range) and value_range[0] < value_range[1]
    )
    if valid:
        assert domain is not None
    if domain is not None:
        assert (domain.ndim, domain.channels, domain.scheme) == (ndim, channels, scheme)
        assert domain.value_range == tuple(float(v) for v in value_range) and domain.value_range[0] < domain.value_range[1]


@fuzz
@given(
    ndim=st.integers(1, 3),
    channels=st.integers(1, 2),
    scheme=st.sampled_from(["uniform", "stratified"]),
    n=st.one_of(st.integers(-1, 130), st.floats(-0.5, 1.5), st.sampled_from([math.nan, math.inf]), st.booleans(), wrong_types),
    data=st.data(),
)
def test_subsample(ndim: int, channels: int, scheme: str, n, data) -> None:
    """subsample draws the requested number of distinct cells and reads x there (NaN included), or refuses: an empty
    or foreign field, a count outside [1, cells], a fraction outside (0, 1] or a non-number."""
    domain = GridDomain(ndim, channels, scheme=scheme)
    x = data.draw(fields(ndim, channels))
    points = outcome(lambda: domain.subsample(x, n, generator=torch.Generator().manual_seed(0)))
    good_field = x.ndim == ndim + 2 and x.shape[1] == channels and 0 not in x.shape
    total = math.prod(x.shape[2:])
    if isinstance(n, float):
        count = max(1, round(n * total)) if 0 < n <= 1 else None
    else:
        count = n if is_count(n) and n <= total else None
    if good_field and count is not None:
        assert points is not None
    if points is None:
        return
    assert points.values.shape == (x.shape[0], count, channels) and points.shape == x.shape[2:]
    for b in range(x.shape[0]):
        cells = [tuple(i) for i in points.index[b].tolist()]
        assert len(set(cells)) == count
        expected = torch.stack([x[(b, slice(None), *cell)] for cell in cells])
        torch.testing.assert_close(points.values[b], expected, rtol=0, atol=0, equal_nan=True)


@fuzz
@given(
    batch=sizes,
    shape=st.one_of(st.lists(st.integers(-1, 4), max_size=4).map(tuple), wrong_types),
    reference=st.one_of(st.lists(st.integers(-1, 4), max_size=3).map(tuple), wrong_types),
    dtype=st.sampled_from(FLOAT_DTYPES),
)
def test_white_noise(batch, shape, reference, dtype: torch.dtype) -> None:
    """white_noise returns finite noise of shape (batch, *shape) in dtype, or refuses an empty or mismatched shape."""
    noise = outcome(lambda: white_noise(batch, shape, reference, generator=torch.Generator().manual_seed(0), dtype=dtype))
    valid = is_count(batch) and is_shape(shape) and is_shape(reference) and len(shape) == len(reference) + 1
    if valid:
        assert noise is not None
    if noise is not None:
        assert noise.shape == (batch, *shape) and noise.dtype == dtype and finite(noise)


@fuzz
@given(x=tensors(), factor=sizes)
def test_box_average(x: torch.Tensor, factor) -> None:
    """box_average is the mean over blocks of factor cells per axis (recomputed cell by cell), or refuses a factor that
    is not a positive int dividing every axis, a field without spatial axes or a non-floating one."""
    out = outcome(lambda: box_average(x, factor))
    valid = x.ndim >= 3 and x.dtype.is_floating_point and is_count(factor) and all(s % factor == 0 for s in x.shape[2:])
    if valid:
        assert out is not None
    if out is None:
        return
    coarse = tuple(s // factor for s in x.shape[2:])
    assert out.shape == (*x.shape[:2], *coarse) and out.dtype == x.dtype
    for cell in itertools.product(*map(range, coarse)):
        block = x[(slice(None), slice(None), *(slice(i * factor, (i + 1) * factor) for i in cell))]
        expected = block.double().flatten(2).mean(-1)
        tol = 1e-12 if x.dtype == torch.float64 else 1e-2
        torch.testing.assert_close(out[(slice(None), slice(None), *cell)].double(), expected, rtol=tol, atol=tol, equal_nan=True)


@st.composite
def point_sets(draw):
    """Values, index and grid shape for `Points`, usually consistent, sometimes off the grid or of the wrong kind."""
    b, n, d = (draw(st.integers(0, 3)) for _ in range(3))
    shape = tuple(draw(st.lists(st.integers(0, 5), min_size=d, max_size=d)))
    shape = draw(st.one_of(st.just(shape), st.lists(st.integers(-1, 5), max_size=3).map(tuple)))
    high = max(shape, default=1) + draw(st.integers(-1, 1))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    index = torch.randint(draw(st.integers(-1, 0)), max(high, 1), (b, n, d), generator=gen)
    index = index.to(draw(st.sampled_from([torch.int64, torch.int32, torch.float32])))
    values = draw(tensors(draw(st.sampled_from([(b, n, 2), (b, n), (b, n + 1, 1)])), dtypes=(torch.float32, torch.int64)))
    return values, index, shape


@fuzz
@given(args=point_sets())
def test_points_constructor(args) -> None:
    """Points are made exactly from float values (b, n, c), an integer index (b, n, d) inside a grid of d positive
    sizes with b, n >= 1; they then scatter back to their cells at centres inside (0, 1)^d."""
    values, index, shape = args
    points = outcome(lambda: Points(values, index, shape))
    valid = (
        values.ndim == 3 and values.dtype.is_floating_point and index.dtype in (torch.int32, torch.int64)
        and values.shape[:2] == index.shape[:2] and 0 not in values.shape[:2] and is_shape(shape)
        and index.shape[-1] == len(shape)
        and all(bool(((index[..., a] >= 0) & (index[..., a] < s)).all()) for a, s in enumerate(shape))
    )
    assert (points is not None) == valid
    if points is None:
        return
    dense, mask = points.to_dense()
    assert int(mask.sum()) == len({(b, *i) for b in range(index.shape[0]) for i in map(tuple, index[b].tolist())})
    assert bool(((points.coords > 0) & (points.coords < 1)).all())
    last = {}
    for b in range(index.shape[0]):
        for j, cell in enumerate(map(tuple, index[b].tolist())):
            last[(b, cell)] = j
    for (b, cell), j in last.items():
        assert bool(mask[(b, 0, *cell)])
        if len(set(map(tuple, index[b].tolist()))) == index.shape[1]:  # with repeated cells, which value lands is unspecified
            torch.testing.assert_close(dense[(b, slice(None), *cell)], values[b, j], equal_nan=True)
