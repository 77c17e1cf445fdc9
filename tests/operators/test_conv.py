"""Sparse depthwise convolution (docs/math.md §8): backends against a brute-force sum, invariances, resampling."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from funcdiff.domains.grid import GridDomain, box_average
from funcdiff.operators.layers import conv as conv_module
from funcdiff.operators.kernels.backends import available_backends, choose_backend, make_plan, sparse_sum
from funcdiff.operators.layers.conv import SparseDepthwiseConv
from funcdiff.operators.layers.kernel_resampling import resample_kernel, resampled_size
from funcdiff.points import Points

BACKENDS = available_backends("cpu")


def brute_force(conv: SparseDepthwiseConv, points: Points) -> torch.Tensor:
    """docs/math.md §8 term by term: an O(n^2) search of each point's window, then the count-normalised sum."""
    weight = conv.kernel(points.shape)
    half = torch.tensor(weight.shape[1:]) // 2
    out = torch.zeros_like(points.values)
    for b in range(points.values.shape[0]):
        index = points.index[b]
        for p in range(index.shape[0]):
            delta = index - index[p]
            near = (delta.abs() <= half).all(-1)
            taps = weight[(slice(None), *(delta[near] + half).T)]
            out[b, p] = (taps.T * points.values[b, near]).sum(0) * conv.kernel_size**conv.ndim / near.sum()
    return out


def random_points(ndim: int, shape: tuple[int, ...], fraction: float, channels: int, seed: int) -> Points:
    """A random subset of a random field, in a random (not row-major) order."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2, channels, *shape, generator=gen, dtype=torch.float64)
    points = GridDomain(ndim, channels).subsample(x, fraction, generator=gen)
    perm = torch.randperm(points.index.shape[1], generator=gen)
    return Points(points.values[:, perm], points.index[:, perm], points.shape)


grids = st.sampled_from([(1, (23,)), (2, (9, 7)), (2, (6, 6)), (3, (5, 4, 6))])


@settings(deadline=None, max_examples=15)
@given(grid=grids, fraction=st.floats(0.05, 1.0), kernel=st.sampled_from([1, 3, 5]), seed=st.integers(0, 99))
def test_backends_match_brute_force_and_each_other(grid: tuple, fraction: float, kernel: int, seed: int) -> None:
    """Every backend gives the docs/math.md §8 sum, and the same input and weight gradients, for d = 1, 2, 3."""
    ndim, shape = grid
    points = random_points(ndim, shape, fraction, 3, seed)
    conv = SparseDepthwiseConv(3, kernel, ndim=ndim, reference_shape=shape).double()
    expected = brute_force(conv, points)
    grads = []
    for backend in BACKENDS:
        conv.backend = backend
        values = points.values.clone().requires_grad_()
        out = conv(points.with_values(values))
        torch.testing.assert_close(out, expected)
        grads.append(torch.autograd.grad(out.square().sum(), (values, conv.weight)))
    for got, want in zip(grads[1], grads[0]):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fraction", [0.3, 0.9])
def test_gradcheck(backend: str, fraction: float) -> None:
    """Autograd of the sparse sum (custom, or PyTorch's for crowded dense plans) against finite differences."""
    points = random_points(2, (4, 4), fraction, 2, 0)
    plan = make_plan(points.index, points.shape, (3, 3), backend=backend, dtype=torch.float64)
    values = points.values.reshape(-1, 2).clone().requires_grad_()
    weight = torch.randn(2, 9, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v, w: sparse_sum(v, w, plan), (values, weight))


@settings(deadline=None, max_examples=15)
@given(
    grid=grids, fraction=st.floats(0.02, 1.0), seed=st.integers(0, 99), scale=st.sampled_from([0.5, 1.0, 2.0, 3.0]),
    backend=st.sampled_from(BACKENDS),
)
def test_uniform_kernel_keeps_constants(grid: tuple, fraction: float, seed: int, scale: float, backend: str) -> None:
    """docs/math.md §8: with uniform taps a constant field stays constant at any density, resolution and at the borders."""
    ndim, reference = grid
    shape = tuple(max(1, round(s * scale)) for s in reference)
    conv = SparseDepthwiseConv(2, 5, ndim=ndim, reference_shape=reference, backend=backend).double()
    with torch.no_grad():
        conv.weight.fill_(0.3)
    points = random_points(ndim, shape, fraction, 2, seed)
    out = conv(points.with_values(torch.full_like(points.values, 2.0)))
    torch.testing.assert_close(out, torch.full_like(out, 2.0 * 0.3 * 5**ndim))


@settings(deadline=None, max_examples=10)
@given(grid=grids, seed=st.integers(0, 99), backend=st.sampled_from(BACKENDS))
def test_permuting_points_permutes_output(grid: tuple, seed: int, backend: str) -> None:
    """The operator acts on a set of points: reordering them reorders the output (docs/math.md §8)."""
    ndim, shape = grid
    points = random_points(ndim, shape, 0.4, 2, seed)
    conv = SparseDepthwiseConv(2, 3, ndim=ndim, reference_shape=shape, backend=backend).double()
    perm = torch.randperm(points.index.shape[1], generator=torch.Generator().manual_seed(seed))
    permuted = Points(points.values[:, perm], points.index[:, perm], points.shape)
    torch.testing.assert_close(conv(permuted), conv(points)[:, perm])


@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("chunk_rows", [None, 1, 3])
def test_all_points_equal_dense_convolution(ndim: int, chunk_rows: int | None) -> None:
    """All points through the sparse path equal the dense count-normalised convolution, chunked or not (docs/math.md §8)."""
    shape = {1: (17,), 2: (8, 7), 3: (5, 6, 4)}[ndim]
    x = torch.randn(2, 3, *shape, dtype=torch.float64)
    conv = SparseDepthwiseConv(3, 3, ndim=ndim, reference_shape=tuple(s // 2 + 1 for s in shape)).double()
    dense = conv.forward_dense(x, chunk_rows=chunk_rows)
    for backend in BACKENDS:
        conv.backend = backend
        torch.testing.assert_close(conv(Points.from_dense(x)), dense.flatten(2).transpose(1, 2))


def test_interior_equals_plain_convolution_at_full_density() -> None:
    """At full density away from the borders the integral is the plain depthwise convolution (docs/math.md §8)."""
    x = torch.randn(1, 2, 12, 12, dtype=torch.float64)
    conv = SparseDepthwiseConv(2, 5, ndim=2, reference_shape=(12, 12)).double()
    plain = torch.nn.functional.conv2d(x, conv.weight.unsqueeze(1), groups=2)
    torch.testing.assert_close(conv.forward_dense(x)[..., 2:-2, 2:-2], plain)


@settings(deadline=None, max_examples=25)
@given(
    ndim=st.integers(1, 3), sizes=st.lists(st.integers(1, 13), min_size=3, max_size=3),
    taps=st.lists(st.integers(0, 3), min_size=3, max_size=3), seed=st.integers(0, 99),
)
def test_fft_correlation_equals_direct(ndim: int, sizes: list[int], taps: list[int], seed: int) -> None:
    """The FFT path computes PyTorch's depthwise 'valid' cross-correlation, for any size (smooth or not) and d."""
    kernel = [2 * t + 1 for t in taps[:ndim]]
    shape = [k + s - 1 for k, s in zip(kernel, sizes)]
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 3, *shape, generator=gen, dtype=torch.float64)
    weight = torch.randn(3, *kernel, generator=gen, dtype=torch.float64)
    direct = {1: torch.nn.functional.conv1d, 2: torch.nn.functional.conv2d, 3: torch.nn.functional.conv3d}[ndim]
    torch.testing.assert_close(conv_module.fft_correlate(x, weight), direct(x, weight.unsqueeze(1), groups=3))


@settings(deadline=None, max_examples=25)
@given(
    ndim=st.integers(1, 3), sizes=st.lists(st.integers(1, 13), min_size=3, max_size=3),
    taps=st.lists(st.integers(0, 6), min_size=3, max_size=3), flags=st.lists(st.booleans(), min_size=3, max_size=3),
    seed=st.integers(0, 99),
)
def test_fft_correlation_with_implicit_zero_padding_equals_padding_first(
    ndim: int, sizes: list[int], taps: list[int], flags: list[bool], seed: int
) -> None:
    """Axes flagged zero-padded give PyTorch's 'same' correlation there (zeros beyond the border), kernels longer than
    the axis included; unflagged axes stay 'valid'."""
    kernel, implicit = [2 * t + 1 for t in taps[:ndim]], tuple(flags[:ndim])
    shape = [s if z else k + s - 1 for k, s, z in zip(kernel, sizes, implicit)]
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 3, *shape, generator=gen, dtype=torch.float64)
    weight = torch.randn(3, *kernel, generator=gen, dtype=torch.float64)
    direct = {1: torch.nn.functional.conv1d, 2: torch.nn.functional.conv2d, 3: torch.nn.functional.conv3d}[ndim]
    padding = tuple(k // 2 if z else 0 for k, z in zip(kernel, implicit))
    expected = direct(x, weight.unsqueeze(1), padding=padding, groups=3)
    torch.testing.assert_close(conv_module.fft_correlate(x, weight, zero_padded=implicit), expected)


@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("chunk_rows", [None, 2])
def test_large_kernels_use_the_fft_and_agree(ndim: int, chunk_rows: int | None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Far above the reference resolution forward_dense convolves by FFT, with the direct result (float32, chunked)."""
    shape = {1: (64,), 2: (24, 20), 3: (9, 8, 10)}[ndim]
    conv = SparseDepthwiseConv(4, 5, ndim=ndim, reference_shape=tuple(max(1, s // 3) for s in shape))
    x = torch.randn(2, 4, *shape)
    monkeypatch.setattr(conv_module, "FFT_MIN_TAPS", 10**9)
    direct = conv.forward_dense(x, chunk_rows=chunk_rows)
    calls = []
    fft = conv_module.fft_correlate
    monkeypatch.setattr(conv_module, "fft_correlate", lambda *a, **k: calls.append(1) or fft(*a, **k))
    monkeypatch.setattr(conv_module, "FFT_MIN_TAPS", 1)
    by_fft = conv.forward_dense(x, chunk_rows=chunk_rows)
    taps = conv.kernel_shape(shape)[0]
    assert taps > 2 and len(calls) == (1 if chunk_rows is None else math.ceil(shape[0] / max(chunk_rows, taps)))
    torch.testing.assert_close(by_fft, direct, rtol=1e-5, atol=1e-5)


def test_kernel_transforms_are_kept_between_calls_only_while_the_weight_is_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without gradients a second FFT evaluation reuses the kernel's transform (one rfftn of the input, none of the
    kernel) with the same result; after an in-place weight update, under autograd, or above the size bound the
    kernel is transformed again and the result follows the new weight."""
    monkeypatch.setattr(conv_module, "FFT_MIN_TAPS", 1)
    conv, x = SparseDepthwiseConv(3, 5, ndim=2, reference_shape=(8, 8)), torch.randn(1, 3, 24, 24)
    transforms = []
    rfftn = torch.fft.rfftn
    monkeypatch.setattr(torch.fft, "rfftn", lambda *a, **k: transforms.append(1) or rfftn(*a, **k))
    with torch.no_grad():
        first = conv.forward_dense(x)
        assert len(transforms) == 2 and torch.equal(conv.forward_dense(x), first) and len(transforms) == 3
        conv.weight.mul_(2)
        assert torch.allclose(conv.forward_dense(x), 2 * first, atol=1e-5) and len(transforms) == 5
    for _ in range(2):
        conv.forward_dense(x).sum().backward()
    assert len(transforms) == 9 and conv.weight.grad is not None
    monkeypatch.setattr(conv_module, "SPECTRUM_CACHE_BYTES", 0)
    with torch.no_grad():
        conv.forward_dense(x)
        conv.forward_dense(x)
    assert len(transforms) == 13


def test_resampled_size_rule() -> None:
    """docs/reference-differences.md §2's rounding rule: 7 taps at 2x are 13, at 4x 29, at 1/2 x 3; always odd."""
    assert [resampled_size(7, n, 256) for n in (128, 256, 512, 1024, 2048)] == [3, 7, 13, 29, 57]
    assert all(resampled_size(k, n, 32) % 2 == 1 for k in (1, 3, 5, 7) for n in range(1, 200))


@settings(deadline=None, max_examples=20)
@given(kernel=st.sampled_from([3, 5, 7]), size=st.integers(1, 31), seed=st.integers(0, 99))
def test_resampling_keeps_tap_mean(kernel: int, size: int, seed: int) -> None:
    """Resampled taps keep each channel's mean exactly, including near-zero-mean kernels (docs/math.md §8)."""
    weight = torch.randn(4, kernel, kernel, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    weight = weight - weight.mean(dim=(1, 2), keepdim=True) + torch.tensor([0.0, 1e-9, 1.0, -2.0]).view(4, 1, 1).double()
    resized = resample_kernel(weight, (2 * (size // 2) + 1, kernel))
    torch.testing.assert_close(resized.mean(dim=(1, 2)), weight.mean(dim=(1, 2)))


def _gaussian_conv(shape: tuple[int, int]) -> SparseDepthwiseConv:
    conv = SparseDepthwiseConv(1, 7, ndim=2, reference_shape=shape).double()
    taps = torch.arange(7, dtype=torch.float64) - 3
    with torch.no_grad():
        conv.weight.copy_(torch.exp(-(taps[:, None] ** 2 + taps[None] ** 2) / 8).unsqueeze(0))
    return conv


@pytest.mark.parametrize("factor", [2, 4])
def test_resolution_consistency_keeps_scale(factor: int) -> None:
    """A smooth field at factor x N, through the resampled kernel and box-averaged to N, matches the output at N.

    Tolerance: 1.5 % of the output's range (discretisation error of a 7-tap kernel); without the mean-keeping
    correction the error is about 12 % at 2x (docs/math.md §8), which this bound would catch.
    """
    n = 32
    conv = _gaussian_conv((n, n))
    def field(m: int) -> torch.Tensor:
        c = (torch.arange(m, dtype=torch.float64) + 0.5) / m
        return (torch.sin(2 * math.pi * c)[:, None] * torch.cos(2 * math.pi * c)[None] + 1.0).view(1, 1, m, m)
    coarse = conv.forward_dense(field(n))
    fine = box_average(conv.forward_dense(field(factor * n)), factor)
    interior = (slice(None), slice(None), slice(4, -4), slice(4, -4))
    assert (fine - coarse)[interior].abs().max() < 0.015 * coarse.abs().max()


def test_backend_validation() -> None:
    """Unknown backends and even kernels are rejected with ValueError naming the argument."""
    points = random_points(2, (5, 5), 0.5, 1, 0)
    with pytest.raises(ValueError, match="backend"):
        make_plan(points.index, points.shape, (3, 3), backend="nope", dtype=torch.float64)
    with pytest.raises(ValueError, match="kernel_size"):
        SparseDepthwiseConv(1, 4, ndim=2, reference_shape=(5, 5))
    with pytest.raises(ValueError, match="ndim"):
        SparseDepthwiseConv(1, 3, ndim=4, reference_shape=(5, 5, 5, 5))
    assert {"dense", "gather"} <= set(available_backends("cpu"))


def test_torchsparse_backend_is_refused_clearly() -> None:
    """No torchsparse adapter exists (its depthwise kernel is in an uninstallable fork): asking for one says so."""
    points = random_points(2, (9, 7), 0.4, 2, 0)
    conv = SparseDepthwiseConv(2, 3, ndim=2, reference_shape=(9, 7)).double()
    conv.backend = "torchsparse"
    with pytest.raises(ValueError, match="torchsparse.*not available"):
        conv(points)


def test_auto_choice_and_environment_override(monkeypatch: pytest.MonkeyPatch) -> None:
    """``auto`` follows FUNCDIFF_SPARSE_BACKEND when set, otherwise picks an available backend."""
    points = random_points(2, (9, 7), 0.4, 2, 0)
    conv = SparseDepthwiseConv(2, 3, ndim=2, reference_shape=(9, 7)).double()
    assert conv.plan(points).backend in available_backends("cpu")
    assert choose_backend(1, 1 << 20, (1024, 1024), taps=29 * 29, device=torch.device("cpu"), dtype=torch.float32) == "dense"
    monkeypatch.setenv("FUNCDIFF_SPARSE_BACKEND", "gather")
    assert conv.plan(points).backend == "gather"
