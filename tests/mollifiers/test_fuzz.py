"""Fuzzing the mollifiers and the DCT: every call either returns the right result (against dense float64 matrices)
or refuses with a clear error, and a valid call is never refused."""

import math

import torch
from hypothesis import given
from hypothesis import strategies as st

from funcdiff import GaussianMollifier, IdentityMollifier
from funcdiff.mollifiers import dct, idct
from tests.strategies import finite, fuzz, numbers, outcome, tensors, wrong_types
from tests.helpers import dct_matrix, mollifier_matrix

FIELD_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
TOLERANCE = {torch.float64: 1e-10, torch.float32: 1e-5, torch.float16: 2e-2, torch.bfloat16: 5e-2}


def is_field(x: torch.Tensor) -> bool:
    """Whether ``x`` is a floating field ``(b, c, *spatial)`` with no empty axis."""
    return x.dtype in FIELD_DTYPES and x.ndim >= 3 and 0 not in x.shape


def slices_finite(x: torch.Tensor) -> torch.Tensor:
    """Per ``(b, c)`` slice: whether all of it is finite."""
    return x.isfinite().flatten(2).all(-1)


@fuzz
@given(sigma=st.one_of(numbers, wrong_types, st.floats(1e-300, 1e300)))
def test_gaussian_constructor(sigma) -> None:
    """GaussianMollifier is built from a finite float sigma > 0 and refuses anything that is not a finite real > 0
    (an int, refused by the test-time checker, is accepted without it); its blur is finite and keeps constants,
    whatever the size of sigma."""
    mollifier = outcome(lambda: GaussianMollifier(sigma))
    positive = isinstance(sigma, (int, float)) and not isinstance(sigma, bool) and math.isfinite(sigma) and sigma > 0
    if positive and isinstance(sigma, float):
        assert mollifier is not None
    if mollifier is not None:
        assert positive
        assert mollifier.sigma == float(sigma)
        x = torch.randn(2, 1, 5, 3, dtype=torch.float64)
        y = mollifier.mollify(x)
        assert finite(y)
        torch.testing.assert_close(y.mean((2, 3)), x.mean((2, 3)), rtol=0, atol=1e-12)


@fuzz
@given(
    x=tensors(), sigma=st.floats(0.005, 0.3), inverse=st.booleans(), inv_snr=st.one_of(st.floats(0.01, 1.0), numbers, wrong_types)
)
def test_gaussian_apply_and_inverse(x: torch.Tensor, sigma: float, inverse: bool, inv_snr) -> None:
    """T and its Wiener inverse equal their dense matrices (docs/math.md §1) for floating fields of any rank, dtype kept;
    NaN or Inf spreads over its own (b, c) slice only; anything else is refused, as is an inv_snr that is not a finite
    number >= 0."""
    mollifier = GaussianMollifier(sigma)
    out = outcome(lambda: mollifier.unmollify(x, inv_snr) if inverse else mollifier.mollify(x))
    good_snr = isinstance(inv_snr, float) and 0 <= inv_snr < math.inf
    if is_field(x) and (not inverse or good_snr):
        assert out is not None
    if out is None:
        return
    assert is_field(x) and out.shape == x.shape and out.dtype == x.dtype
    assert torch.equal(slices_finite(out), slices_finite(x))
    shape = tuple(x.shape[2:])
    matrix = mollifier_matrix(shape, sigma)
    if inverse:
        g = mollifier.spectrum(shape).flatten()
        basis = torch.ones(1, 1, dtype=torch.float64)
        for n in shape:
            basis = torch.kron(basis, dct_matrix(n))
        matrix = basis.T @ torch.diag(g / (g**2 + float(inv_snr) ** 2)) @ basis
    flat = x.double().flatten(2)
    expected = (flat @ matrix.T).reshape(x.shape)
    keep = slices_finite(x)
    tol = TOLERANCE[x.dtype] * max(1.0, float(expected[keep].abs().max()) if bool(keep.any()) else 1.0)
    torch.testing.assert_close(out.double()[keep], expected[keep], rtol=0, atol=tol)


@fuzz
@given(x=tensors(), inverse=st.booleans())
def test_identity_apply_and_inverse(x: torch.Tensor, inverse: bool) -> None:
    """The identity returns every floating field unchanged (NaN included) and refuses anything else."""
    mollifier = IdentityMollifier()
    out = outcome(lambda: mollifier.unmollify(x) if inverse else mollifier.mollify(x))
    assert (out is not None) == is_field(x)
    if out is not None:
        assert out is x


@fuzz
@given(x=tensors(), dim=st.integers(-6, 5), inverse=st.booleans())
def test_dct(x: torch.Tensor, dim: int, inverse: bool) -> None:
    """dct and idct are the orthonormal DCT-II matrix and its transpose along ``dim`` for non-empty float32 and float64
    tensors; other dtypes, axes that do not exist and empty tensors are refused."""
    out = outcome(lambda: idct(x, dim) if inverse else dct(x, dim))
    valid = x.dtype in (torch.float32, torch.float64) and -x.ndim <= dim < x.ndim and x.numel() > 0
    assert (out is not None) == valid
    if out is None:
        return
    matrix = dct_matrix(x.shape[dim])
    expected = (x.double().movedim(dim, -1) @ (matrix if inverse else matrix.T)).movedim(-1, dim)
    keep = expected.isfinite()
    assert out.shape == x.shape and out.dtype == x.dtype
    tol = TOLERANCE[x.dtype] * max(1.0, float(expected[keep].abs().max()) if bool(keep.any()) else 1.0)
    torch.testing.assert_close(out.double()[keep], expected[keep], rtol=0, atol=tol)
