"""Shared by the domain, mollifier and process tests: hypothesis strategies (tensors of any shape and dtype with NaN
and Inf, near-valid dense fields, values of the wrong type), `outcome` (a result or a clear error), `ours_or_checkers`
(a message match that tolerates the test-time type checker) and `assert_on_the_inputs_device`."""

import math
import os
from collections.abc import Callable
from typing import TypeVar

import torch
from beartype.roar import BeartypeCallHintViolation
from hypothesis import settings
from hypothesis import strategies as st

# What a refusal may be: funcdiff's own ValueError or TypeError, or the test-time type checker's error (jaxtyping's
# TypeCheckError is a TypeError; beartype's violation on an explicitly decorated function is not).
CLEAR_ERRORS = (ValueError, TypeError, BeartypeCallHintViolation)

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
ALL_DTYPES = (*FLOAT_DTYPES, torch.int64, torch.int32, torch.bool, torch.complex64)
SPECIALS = (math.nan, math.inf, -math.inf)

R = TypeVar("R")

# More examples than the profile's for these cheap properties; FUZZ_EXAMPLES=5000 for a deep run.
fuzz = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "60")))

wrong_types = st.sampled_from([None, "x", b"1", [1.0, 2.0], {"a": 1}, object()])
numbers = st.one_of(st.integers(-3, 5), st.floats(allow_nan=True, allow_infinity=True), st.booleans())
sizes = st.one_of(st.integers(-1, 6), st.booleans(), st.floats(-1, 6), wrong_types)


@st.composite
def tensors(draw, shape: tuple[int, ...] | None = None, dtypes: tuple[torch.dtype, ...] = ALL_DTYPES) -> torch.Tensor:
    """A tensor of ``shape`` (default: 0 to 5 axes of 0 to 5 cells) and one of ``dtypes``, one time in four with a
    NaN or an Inf (before any cast to a non-floating dtype)."""
    if shape is None:
        shape = tuple(draw(st.lists(st.integers(0, 5), max_size=5)))
    x = torch.randn(shape, generator=torch.Generator().manual_seed(draw(st.integers(0, 2**16))), dtype=torch.float64)
    if x.numel() and draw(st.integers(0, 3)) == 0:
        x.view(-1)[draw(st.integers(0, x.numel() - 1))] = draw(st.sampled_from(SPECIALS))
    dtype = draw(st.sampled_from(dtypes))
    if not dtype.is_floating_point and not dtype.is_complex:
        x = torch.nan_to_num(x)  # casting NaN to an integer is undefined behaviour
    return x.to(dtype)


@st.composite
def fields(draw, ndim: int, channels: int, *, finite: bool = False) -> torch.Tensor:
    """A float field ``(b, c, *spatial)`` for a domain of ``ndim`` and ``channels``: three times in four of that rank
    and channels with sizes 1 to 5, else of a neighbouring rank or channel count with sizes from 0; unless ``finite``,
    one time in four with a NaN or Inf."""
    broken = draw(st.integers(0, 3)) == 0
    low = 0 if broken else 1
    rank = draw(st.sampled_from([ndim - 1, ndim, ndim + 1])) if broken else ndim
    spatial = draw(st.lists(st.integers(low, 5), min_size=max(rank, 0), max_size=max(rank, 0)))
    c = draw(st.sampled_from([channels, channels + 1])) if broken else channels
    shape = (draw(st.integers(low, 3)), c, *spatial)
    if finite:
        gen = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
        return torch.randn(shape, generator=gen, dtype=torch.float64).to(draw(st.sampled_from(FLOAT_DTYPES[2:])))
    return draw(tensors(shape, dtypes=FLOAT_DTYPES))


def outcome(call: Callable[[], R]) -> R | None:
    """The result of ``call``, or None when it refused with a clear error (one of `CLEAR_ERRORS`, with a message)."""
    try:
        return call()
    except CLEAR_ERRORS as error:
        assert str(error).strip(), f"{type(error).__name__} without a message"
        return None


def ours_or_checkers(pattern: str) -> str:
    """A `pytest.raises` match for funcdiff's message ``pattern``, or the test-time type checker's when the argument's
    type is what is wrong (the checker then runs first; without it, as in the mutation run, funcdiff's must match)."""
    return rf"(?:{pattern})|Type-check error whilst checking the parameters"


def is_count(value: object, low: int = 1) -> bool:
    """Whether ``value`` is an int (not a bool) >= ``low``."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def is_shape(value: object) -> bool:
    """Whether ``value`` is a non-empty tuple of positive ints."""
    return isinstance(value, tuple) and len(value) > 0 and all(is_count(s) for s in value)


def assert_on_the_inputs_device(results: Callable[[], list[torch.Tensor]]) -> None:
    """``results()`` (computed from CPU inputs) gives CPU tensors equal to themselves when another default device (meta)
    is set: nothing is made on the default device instead of the inputs' one."""
    expected = results()
    with torch.device("meta"):
        got = results()
    for a, b in zip(got, expected, strict=True):
        assert a.device.type == "cpu"
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def finite(x: torch.Tensor) -> bool:
    """Whether every entry of ``x`` is finite."""
    return bool(x.isfinite().all())
