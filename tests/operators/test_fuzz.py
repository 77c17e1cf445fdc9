"""Fuzzing the operators' public entries: wrong shapes, dtypes and types, empty sizes, NaN and Inf. Every call returns
the right result (finite where its input is) or refuses at once with a clear error; a valid call is never refused.

Each example spoils at most one thing (a *flaw*), so that every check is reached by a valid call otherwise."""

import functools
import math
import os

import jaxtyping
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from funcdiff.operators import InftyDiffOperator, SparseDepthwiseConv, available_backends, preset_config
from funcdiff.operators.kernels.backends import make_plan, sparse_sum
from funcdiff.points import Points
from tests.strategies import CLEAR_ERRORS, FLOAT_DTYPES, finite, tensors, wrong_types

# FUZZ_EXAMPLES=1000 for a deep run; the operator tests call a whole network per example and take a quarter.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "100"))
cheap = settings(max_examples=EXAMPLES, deadline=None)
few = settings(max_examples=max(1, EXAMPLES // 4), deadline=None)

NOT_FLOAT = (torch.int64, torch.int32, torch.bool, torch.complex64)
INDEX_FLAWS = ("off_grid", "negative", "float_index", "empty_batch", "empty_points", "rank", "axes", "not_a_tensor")
KERNEL_FLAWS = ("short", "long", "even", "zero", "negative_taps")
TIME_FLAWS = ("t_count", "t_rank", "t_dtype", "t_type")


def outcome(call: functools.partial) -> object | None:
    """The result of ``call``, or None when it refused with a clear error; funcdiff's own refusals are one line."""
    try:
        return call()
    except CLEAR_ERRORS as error:
        message = str(error).strip()
        assert message, f"{type(error).__name__} without a message"
        assert isinstance(error, jaxtyping.TypeCheckError) or "\n" not in message, message
        return None


def flaws(*kinds: str) -> st.SearchStrategy[str]:
    """``"none"`` a third of the time, else one of ``kinds``."""
    return st.sampled_from(("none",) * max(1, len(kinds) // 2) + kinds)


@st.composite
def lattice(draw: st.DrawFn, ndim: int, *, max_points: int = 12) -> tuple[torch.Tensor, tuple[int, ...]]:
    """Distinct lattice positions ``(b, n, ndim)`` of a grid of 1 to 6 cells per axis, and the grid's shape."""
    shape = tuple(draw(st.lists(st.integers(1, 6), min_size=ndim, max_size=ndim)))
    cells = math.prod(shape)
    batch, n = draw(st.integers(1, 2)), draw(st.integers(1, min(cells, max_points)))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    flat = torch.stack([torch.randperm(cells, generator=gen)[:n] for _ in range(batch)])
    return torch.stack(torch.unravel_index(flat, shape), dim=-1), shape


def spoil_index(index: torch.Tensor, shape: tuple[int, ...], how: str) -> object:
    """``index`` spoilt in one way of `INDEX_FLAWS` for a grid of ``shape`` (unchanged for any other ``how``)."""
    spoilt = index.clone()
    if how == "off_grid":
        spoilt[0, 0, 0] = shape[0]
    elif how == "negative":
        spoilt[-1, -1, -1] = -1
    return {
        "float_index": index.float(), "empty_batch": index[:0], "empty_points": index[:, :0], "rank": index[0],
        "axes": torch.cat([index, index[..., :1]], dim=-1), "not_a_tensor": index.tolist(),
    }.get(how, spoilt)


def spoil_kernel(taps: list[int], how: str) -> tuple[int, ...]:
    """An odd kernel shape spoilt in one way of `KERNEL_FLAWS` (unchanged for any other ``how``)."""
    return tuple({"short": taps[1:], "long": [*taps, 3], "even": [2, *taps[1:]], "zero": [0, *taps[1:]],
                  "negative_taps": [-1, *taps[1:]]}.get(how, taps))


def times(draw: st.DrawFn, batch: int, how: str) -> object:
    """One float time per example (NaN or Inf at times), or one spoilt in one way of `TIME_FLAWS`."""
    shape = {"t_count": (batch + 1,), "t_rank": (batch, 1)}.get(how, (batch,))
    if how == "t_type":
        return draw(wrong_types)
    return draw(tensors(shape, dtypes=NOT_FLOAT if how == "t_dtype" else FLOAT_DTYPES))


def oracle_sum(index: torch.Tensor, kernel_shape: tuple[int, ...], x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``sum_{q present, |q - p| <= k // 2} weight[:, tap(q - p)] x[q]`` by brute force over all pairs, in float64."""
    b, n, _ = index.shape
    half = torch.tensor([k // 2 for k in kernel_shape])
    strides = torch.tensor([math.prod(kernel_shape[a + 1 :]) for a in range(len(kernel_shape))])
    diff = index[:, None, :, :] - index[:, :, None, :]  # (b, p, q, d): q's position relative to p
    inside = (diff.abs() <= half).all(-1)
    tap = ((diff + half) * strides).sum(-1).clamp(0, math.prod(kernel_shape) - 1)
    terms = weight.double().t()[tap] * x.double().view(b, 1, n, -1)  # (b, p, q, c)
    return torch.where(inside[..., None], terms, 0.0).sum(2).reshape(b * n, -1)


@functools.cache
def tiny_operator() -> InftyDiffOperator:
    """A small float32 operator with two channels on 2-d grids, in eval mode."""
    torch.manual_seed(0)
    return InftyDiffOperator(preset_config("tiny", channels=2, resolution=8)).eval()


@cheap
@given(ndim=st.integers(1, 3), flaw=flaws(*INDEX_FLAWS, *KERNEL_FLAWS, "dtype"), data=st.data())
def test_make_plan_and_sparse_sum(ndim: int, flaw: str, data: st.DataObject) -> None:
    """A plan is built exactly for distinct positions on the grid, an odd kernel of the grid's rank and a float dtype;
    its counts and sums then equal a brute-force sum over all pairs of points (NaN and Inf where they reach)."""
    index, shape = data.draw(lattice(ndim))
    kernel_shape = spoil_kernel(data.draw(st.lists(st.sampled_from([1, 3, 5]), min_size=ndim, max_size=ndim)), flaw)
    dtype = data.draw(st.sampled_from(NOT_FLOAT if flaw == "dtype" else FLOAT_DTYPES))
    backend = data.draw(st.sampled_from(("auto", *available_backends("cpu"))))
    spoilt = spoil_index(index, shape, flaw)
    plan = outcome(functools.partial(make_plan, spoilt, shape, kernel_shape, backend=backend, dtype=dtype))
    # The native kernel computes in float32/64 only; asked for by name with half precision, it refuses.
    assert (plan is not None) == (flaw == "none" and not (backend == "native" and dtype not in (torch.float32, torch.float64)))
    if plan is None:
        return
    ones = torch.ones(math.prod(index.shape[:2]), 1, dtype=torch.float64)
    torch.testing.assert_close(plan.count.double(), oracle_sum(index, kernel_shape, ones, torch.ones(1, math.prod(kernel_shape))))
    c = data.draw(st.integers(1, 3))
    x = data.draw(tensors((ones.shape[0], c), dtypes=(torch.float32, torch.float64)))
    weight = torch.randn(c, math.prod(kernel_shape), dtype=torch.float64)
    out = sparse_sum(x, weight, plan)
    assert out.dtype == x.dtype and out.shape == x.shape
    torch.testing.assert_close(out.double(), oracle_sum(index, kernel_shape, x, weight), equal_nan=True, atol=1e-4, rtol=1e-4)


@cheap
@given(flaw=flaws("rows", "no_channels", "x_rank", "empty", "taps", "channels", "w_rank", "x_dtype", "w_dtype"), data=st.data())
def test_sparse_sum_refuses_what_does_not_fit_its_plan(flaw: str, data: st.DataObject) -> None:
    """Features must be ``(rows of the plan, c >= 1)`` and the weight ``(c, taps)``, both floating; else a clear error.
    Finite features and weights give a finite sum in any float dtype."""
    index, shape = data.draw(lattice(2))
    plan = make_plan(index, shape, (3, 3), backend=data.draw(st.sampled_from(available_backends("cpu"))), dtype=torch.float32)
    rows = math.prod(index.shape[:2])
    x_shape = {"rows": (rows + 1, 2), "no_channels": (rows, 0), "x_rank": (rows,), "empty": (0, 2)}.get(flaw, (rows, 2))
    w_shape = {"taps": (2, 8), "channels": (3, 9), "w_rank": (18,)}.get(flaw, (2, 9))
    x = data.draw(tensors(x_shape, dtypes=NOT_FLOAT if flaw == "x_dtype" else FLOAT_DTYPES))
    weight = data.draw(tensors(w_shape, dtypes=NOT_FLOAT if flaw == "w_dtype" else FLOAT_DTYPES))
    out = outcome(functools.partial(sparse_sum, x, weight, plan))
    assert (out is not None) == (flaw == "none")
    if out is not None:
        assert out.shape == x.shape and out.dtype == x.dtype
        assert finite(out) or not (finite(x) and finite(weight))


@cheap
@given(ndim=st.integers(1, 3), flaw=flaws("rank", "channels", "empty_batch", "empty_axis", "dtype", "chunk"), data=st.data())
def test_conv_forward_dense(ndim: int, flaw: str, data: st.DataObject) -> None:
    """A non-empty dense field of the convolution's rank and channels is convolved in any float dtype and equals the
    sparse path on all of its points; anything else is refused."""
    conv = SparseDepthwiseConv(2, 3, ndim=ndim, reference_shape=(4,) * ndim, backend="gather")
    spatial = data.draw(st.lists(st.integers(1, 5), min_size=ndim, max_size=ndim))
    spatial = {"rank": spatial[1:], "empty_axis": [0, *spatial[1:]]}.get(flaw, spatial)
    shape = (0 if flaw == "empty_batch" else data.draw(st.integers(1, 2)), 3 if flaw == "channels" else 2, *spatial)
    x = data.draw(tensors(shape, dtypes=NOT_FLOAT if flaw == "dtype" else FLOAT_DTYPES))
    chunk_rows = data.draw(st.integers(-1, 0) if flaw == "chunk" else st.one_of(st.none(), st.integers(1, 4)))
    out = outcome(functools.partial(conv.forward_dense, x, chunk_rows=chunk_rows))
    assert (out is not None) == (flaw == "none")
    if out is None:
        return
    assert out.shape == x.shape and out.dtype == x.dtype
    if finite(x):
        assert finite(out)
        sparse = conv(Points.from_dense(x)).transpose(1, 2).reshape(x.shape)
        half = x.dtype in (torch.float16, torch.bfloat16)
        torch.testing.assert_close(out, sparse, atol=5e-2 if half else 1e-5, rtol=5e-2 if half else 1e-5)


@few
@given(flaw=flaws("rank", "channels", "empty_batch", "empty_axis", "x_dtype", "chunk", *TIME_FLAWS), data=st.data())
def test_operator_forward_dense(flaw: str, data: st.DataObject) -> None:
    """The operator takes a non-empty float32 field of its channels on a 2-d grid and one float time per example; it
    then agrees with `forward` on all points and is finite for finite input. Anything else is refused."""
    op = tiny_operator()
    spatial = data.draw(st.lists(st.integers(1, 6), min_size=2, max_size=2))
    spatial = {"rank": spatial[1:], "empty_axis": [0, *spatial[1:]]}.get(flaw, spatial)
    batch = 0 if flaw == "empty_batch" else data.draw(st.integers(1, 2))
    dtype = data.draw(st.sampled_from((torch.float64, torch.bfloat16) if flaw == "x_dtype" else (torch.float32,)))
    x = data.draw(tensors((batch, 3 if flaw == "channels" else 2, *spatial), dtypes=(dtype,)))
    t = times(data.draw, batch, flaw)
    chunk_points = data.draw(st.integers(-1, 0) if flaw == "chunk" else st.one_of(st.none(), st.integers(4, 160)))
    with torch.no_grad():
        out = outcome(functools.partial(op.forward_dense, x, t, chunk_points=chunk_points))
    assert (out is not None) == (flaw == "none")
    if out is None:
        return
    assert out.shape == x.shape and out.dtype == torch.float32
    if finite(x) and finite(t):
        assert finite(out)
        with torch.no_grad():
            at_points = op(Points.from_dense(x), t).transpose(1, 2).reshape(x.shape)
        torch.testing.assert_close(out, at_points, atol=1e-4, rtol=1e-4)


@few
@given(flaw=flaws("ndim", "channels", "dtype", *TIME_FLAWS), data=st.data())
def test_operator_forward_on_points(flaw: str, data: st.DataObject) -> None:
    """The operator takes float32 points of its channels on a 2-d grid of any size and one float time per example;
    each example's prediction is then its own (finite for finite input). Anything else is refused."""
    op = tiny_operator()
    index, shape = data.draw(lattice(3 if flaw == "ndim" else 2, max_points=40))
    dtype = data.draw(st.sampled_from((torch.float64, torch.bfloat16) if flaw == "dtype" else (torch.float32,)))
    values = data.draw(tensors((*index.shape[:2], 1 if flaw == "channels" else 2), dtypes=(dtype,)))
    points, t = Points(values, index, shape), times(data.draw, index.shape[0], flaw)
    with torch.no_grad():
        out = outcome(functools.partial(op, points, t))
    assert (out is not None) == (flaw == "none")
    if out is None:
        return
    assert out.shape == values.shape and out.dtype == torch.float32
    if finite(values) and finite(t):
        assert finite(out)
        with torch.no_grad():
            first = op(Points(values[:1], index[:1], shape), t[:1])
        torch.testing.assert_close(out[:1], first, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_operator_refuses_features_of_another_dtype(dtype: torch.dtype) -> None:
    """Features in another dtype than the parameters are refused in one line; under autocast half precision is fine."""
    op, x = tiny_operator(), torch.randn(1, 2, 8, 8, dtype=dtype)
    with pytest.raises(TypeError, match=f"input is {dtype} but the operator's parameters are torch.float32"):
        op.forward_dense(x, torch.rand(1))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        if dtype == torch.bfloat16:
            assert op.forward_dense(x, torch.rand(1)).shape == x.shape
        else:
            with pytest.raises(TypeError, match="input is torch.float64"):
                op.forward_dense(x, torch.rand(1))
