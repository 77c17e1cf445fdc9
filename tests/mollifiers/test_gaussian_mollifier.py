"""The Gaussian mollifier and its Wiener inverse (docs/math.md §1)."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from funcdiff import GaussianMollifier, IdentityMollifier
from funcdiff.domains import box_average
from funcdiff.mollifiers import dct, idct
from funcdiff.registry import build
from tests.helpers import dct_matrix, gaussian_conv_symmetric, mollifier_matrix

shapes = st.lists(st.integers(1, 7), min_size=1, max_size=3).map(tuple)
sigmas = st.floats(0.005, 0.3)


@given(n=st.integers(1, 33))
def test_dct_matches_explicit_matrix_and_inverts(n: int) -> None:
    """docs/math.md §1: the FFT DCT-II is the orthonormal DCT-II, and idct inverts it."""
    x = torch.randn(3, n, dtype=torch.float64)
    torch.testing.assert_close(dct(x), x @ dct_matrix(n).T, rtol=0, atol=1e-12)
    torch.testing.assert_close(idct(dct(x)), x, rtol=0, atol=1e-12)


@given(shape=shapes, sigma=sigmas)
def test_mollify_equals_dense_operator(shape: tuple[int, ...], sigma: float) -> None:
    """docs/math.md §1: T = IDCT(g * DCT(.)) with g(k) = exp(-(pi |k|)^2 sigma^2 / 2), for 1-D, 2-D, 3-D and non-square grids."""
    x = torch.randn(2, 3, *shape, dtype=torch.float64)
    expected = (x.reshape(6, -1) @ mollifier_matrix(shape, sigma).T).reshape(x.shape)
    torch.testing.assert_close(GaussianMollifier(sigma).mollify(x), expected, rtol=0, atol=1e-10)


@given(shape=shapes, sigma=sigmas)
def test_linear_self_adjoint_and_constant_preserving(shape: tuple[int, ...], sigma: float) -> None:
    """docs/math.md §1: T is linear, self-adjoint, and g(0) = 1 keeps constants."""
    T = GaussianMollifier(sigma)
    f, h = torch.randn(2, 1, 2, *shape, dtype=torch.float64)
    a, b = 0.7, -1.3
    torch.testing.assert_close(T.mollify(a * f + b * h), a * T.mollify(f) + b * T.mollify(h), rtol=0, atol=1e-10)
    torch.testing.assert_close((T.mollify(f) * h).sum(), (f * T.mollify(h)).sum(), rtol=0, atol=1e-10)
    constant = torch.full((1, 2, *shape), 0.37, dtype=torch.float64)
    torch.testing.assert_close(T.mollify(constant), constant, rtol=0, atol=1e-12)


@given(sigma_px=st.floats(1.0, 4.0), seed=st.integers(0, 2**16))
def test_keeps_data_in_range(sigma_px: float, seed: int) -> None:
    """docs/math.md §1: T is an average, so [-1, 1]-valued data stay in [-1, 1].

    On the grid the band-limited kernel has tiny negative lobes (-1.6e-4 per tap at 1 pixel, -2e-11 at 2 pixels),
    so the bound holds to 1e-3 from 1 pixel and to 1e-8 from 2 pixels.
    """
    x = torch.rand(2, 1, 24, 20, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).mul(2).sub(1).sign()
    y = GaussianMollifier(sigma_px / 24).mollify(x)
    assert y.abs().max() <= 1 + (1e-8 if sigma_px >= 2 else 1e-3)


@pytest.mark.parametrize("sigma_px", [1.5, 2.0, 3.5])
def test_equals_direct_gaussian_convolution(sigma_px: float) -> None:
    """docs/math.md §1: the DCT blur is a Gaussian convolution with half-sample symmetric boundaries."""
    n = 64
    x = torch.randn(3, n, dtype=torch.float64)
    direct = gaussian_conv_symmetric(x, sigma_px)
    spectral = GaussianMollifier(sigma_px / n).mollify(x[:, None])[:, 0]
    # the sampled Gaussian's spectrum aliases by 2 exp(-pi^2 sigma_px^2 / 2) at the Nyquist frequency, and the
    # direct kernel is cut at 6 sigma (tails ~1e-8): the two agree to that, no better.
    atol = 4 * math.exp(-(math.pi**2) * sigma_px**2 / 2) * x.abs().max().item() + 1e-8
    torch.testing.assert_close(spectral, direct, rtol=0, atol=atol)


def test_commutes_with_mirror_symmetry() -> None:
    """docs/math.md §1: T commutes with flipping any axis of the grid."""
    T = GaussianMollifier(0.05)
    x = torch.randn(2, 1, 9, 12, dtype=torch.float64)
    for axis in (2, 3):
        torch.testing.assert_close(T.mollify(x.flip(axis)), T.mollify(x).flip(axis), rtol=0, atol=1e-12)


def test_wiener_round_trip_on_band_limited_input() -> None:
    """docs/math.md §1: W T f -> f on band-limited f; the error per mode is inv_snr^2 / (g^2 + inv_snr^2) and vanishes at 0."""
    n, sigma = 32, 0.03
    T = GaussianMollifier(sigma)
    coeffs = torch.zeros(1, 1, n, n, dtype=torch.float64)
    coeffs[..., :6, :6] = torch.randn(6, 6, dtype=torch.float64)
    f = idct(idct(coeffs, dim=2), dim=3)
    g = T.spectrum((n, n))[:6, :6]
    for inv_snr in (0.1, 0.05, 0.01):
        bound = (inv_snr**2 / (g**2 + inv_snr**2)).max() * coeffs.abs().sum()
        assert (T.unmollify(T.mollify(f), inv_snr) - f).abs().max() <= bound
    torch.testing.assert_close(T.unmollify(T.mollify(f), 0.0), f, rtol=0, atol=1e-9)


def test_consistent_across_resolutions() -> None:
    """docs/math.md §1: T at 2N box-averaged to N agrees with T at N for a smooth function, to discretisation error."""
    T = GaussianMollifier(0.04)
    errors = []
    for n in (16, 32, 64):
        fine = _smooth_field(2 * n)
        errors.append((box_average(T.mollify(fine), 2) - T.mollify(box_average(fine, 2))).abs().max().item())
    # the error is O(1/N^2) (second-order box averaging): it falls by ~4x per doubling and is small at 64.
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 2e-4
    assert errors[0] / errors[1] > 3


def test_works_on_a_4096_grid() -> None:
    """docs/math.md §1 at 4096 x 4096 (the O(N log N) route): a DCT-II mode cos(pi k1 u) cos(pi k2 v) plus a constant is
    scaled by g = exp(-pi^2 (k1^2 + k2^2) sigma^2 / 2) and the constant kept."""
    n, (k1, k2), sigma = 4096, (1000, 300), 1 / 4096
    u = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    mode = (torch.cos(math.pi * k1 * u)[:, None] * torch.cos(math.pi * k2 * u)[None, :]).float()
    T = GaussianMollifier(sigma)
    g = math.exp(-(math.pi**2) * (k1**2 + k2**2) * sigma**2 / 2)  # 0.73: far from both 0 and 1
    blurred = T.mollify((mode + 0.25)[None, None])[0, 0]
    assert (blurred - (g * mode + 0.25)).abs().max() < 1e-4


def test_identity_and_config_round_trip() -> None:
    """The identity mollifier leaves fields alone; both kinds rebuild from their config."""
    x = torch.randn(2, 3, 5)
    assert torch.equal(IdentityMollifier().mollify(x), x) and torch.equal(IdentityMollifier().unmollify(x), x)
    for m in (GaussianMollifier(0.1), IdentityMollifier()):
        assert build(m.to_dict()).to_dict() == m.to_dict()


def test_half_precision_input_keeps_dtype() -> None:
    """bf16 fields are transformed in float32 and returned in bf16."""
    x = torch.randn(1, 1, 8, 8).bfloat16()
    assert GaussianMollifier(0.1).mollify(x).dtype == torch.bfloat16


@pytest.mark.parametrize("sigma", [0.0, -1.0, math.inf, math.nan])
def test_bad_sigma(sigma: float) -> None:
    """sigma must be a finite positive number."""
    with pytest.raises(ValueError, match="sigma"):
        GaussianMollifier(sigma)


def test_bad_field_shape() -> None:
    """A field without spatial axes is refused."""
    with pytest.raises(ValueError, match="x must be a dense field"):
        GaussianMollifier(0.1).mollify(torch.randn(3, 4))


def _smooth_field(n: int) -> torch.Tensor:
    """Cell averages of a smooth 2-D function at resolution n, (1, 1, n, n) float64."""
    edges = torch.linspace(0, 1, n + 1, dtype=torch.float64)
    # exact cell averages of sin(2 pi a u + p) along each axis
    def cell_mean(a: float, p: float) -> torch.Tensor:
        w = 2 * math.pi * a
        return (-torch.cos(w * edges[1:] + p) + torch.cos(w * edges[:-1] + p)) * n / w
    return (cell_mean(1.5, 0.3)[:, None] * cell_mean(2.0, 1.1)[None, :])[None, None]
