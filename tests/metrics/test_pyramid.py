"""Laplacian pyramid and per-level SWD: exact reconstruction, the binomial blur against a direct convolution, the
sliced Wasserstein distance against closed forms, and the ordering of corruptions on real icons."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from funcdiff.metrics import laplacian_pyramid, swd_per_level
from funcdiff.metrics.pyramid import _sliced_wasserstein
from tests.metrics.conftest import blur, upsampled


@given(
    n=st.integers(1, 2),
    c=st.sampled_from([1, 3]),
    h=st.integers(16, 70),
    w=st.integers(16, 70),
    coarsest=st.integers(3, 20),
    seed=st.integers(0, 2**16),
)
def test_pyramid_reconstructs_exactly(n: int, c: int, h: int, w: int, coarsest: int, seed: int) -> None:
    x = torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2 - 1
    levels = laplacian_pyramid(x, coarsest=coarsest)
    assert levels[0].shape == x.shape
    assert min(levels[-1].shape[-2:]) <= coarsest
    assert all(min(level.shape[-2:]) > coarsest for level in levels[:-1])
    rebuilt = levels[-1]
    for band in reversed(levels[:-1]):
        rebuilt = band + F.interpolate(rebuilt, size=band.shape[-2:], mode="bilinear", align_corners=False)
    torch.testing.assert_close(rebuilt, x, rtol=0, atol=1e-12)


def test_low_pass_is_the_binomial_blur_with_reflect_padding_then_decimation() -> None:
    x = torch.rand(2, 3, 32, 24, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    k = np.array([1, 4, 6, 4, 1]) / 16
    kernel = np.outer(k, k)
    padded = np.pad(x.numpy(), ((0, 0), (0, 0), (2, 2), (2, 2)), mode="reflect")
    direct = np.zeros(x.shape)
    for i in range(5):
        for j in range(5):
            direct += kernel[i, j] * padded[:, :, i : i + 32, j : j + 24]
    low = laplacian_pyramid(x, coarsest=16)[-1]
    np.testing.assert_allclose(low.numpy(), direct[:, :, ::2, ::2], rtol=0, atol=1e-12)


def test_sliced_wasserstein_of_a_translated_set_is_the_mean_projected_shift() -> None:
    # W1 between a 1-D set and its translate by t is |t|, so the SWD is the mean of |theta . v| over unit directions;
    # E|theta_1| = Gamma(d/2) / (sqrt(pi) Gamma((d+1)/2)) for uniform directions in d dimensions.
    d = 49
    a = np.random.default_rng(0).standard_normal((1000, d)).astype(np.float32)
    v = np.zeros(d, dtype=np.float32)
    v[0] = 0.3
    expected = 0.3 * math.gamma(d / 2) / (math.sqrt(math.pi) * math.gamma((d + 1) / 2))
    got = _sliced_wasserstein(a, a + v, 4096, np.random.default_rng(1))
    assert got == pytest.approx(expected, rel=0.05)


def test_sliced_wasserstein_matches_sets_of_different_sizes_at_quantiles() -> None:
    a = np.random.default_rng(0).standard_normal((500, 10)).astype(np.float32)
    assert _sliced_wasserstein(a, np.repeat(a, 3, axis=0), 64, np.random.default_rng(1)) == pytest.approx(0.0, abs=1e-6)  # float32 sums
    assert _sliced_wasserstein(a, a[:250], 64, np.random.default_rng(1)) > 0.0


def test_swd_is_deterministic_given_the_seed(real: torch.Tensor, reference: torch.Tensor) -> None:
    x, y = real[:64], reference[:64]
    first = swd_per_level(x, y, patches_per_image=32, directions=64, seed=3)
    assert first == swd_per_level(x, y, patches_per_image=32, directions=64, seed=3)
    assert first != swd_per_level(x, y, patches_per_image=32, directions=64, seed=4)


def test_swd_ignores_an_affine_intensity_change_by_per_set_normalisation(real: torch.Tensor) -> None:
    x = real[:64]
    # The patches of y are drawn after those of x, so x against itself is not 0, but y's positions do not depend on
    # its values.
    same = swd_per_level(x, x, patches_per_image=32, directions=64)
    assert swd_per_level(x, 0.5 * x + 0.2, patches_per_image=32, directions=64) == pytest.approx(same, abs=1e-3)


def test_swd_levels_follow_the_resolution() -> None:
    x = torch.rand(4, 1, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert len(swd_per_level(x, x.flip(0), patches_per_image=8, directions=16)) == 3


def test_swd_real_vs_real_is_at_the_floor_and_corruptions_are_ordered(
    real: torch.Tensor, reference: torch.Tensor, noise: torch.Tensor
) -> None:
    floor = swd_per_level(real, reference)
    assert max(floor) < 30  # README §3: 8-13 at N=1000; more at N=256
    assert swd_per_level(real[:128], reference)[0] < 30  # sets of different sizes
    noisy = [swd_per_level(real + s * noise, reference)[0] for s in (0.02, 0.05, 0.1)]
    assert floor[0] < noisy[0] < noisy[1] < noisy[2]
    blurred = [swd_per_level(blur(real, k), reference)[0] for k in (1, 2)]
    assert 2 * floor[0] < blurred[0] < blurred[1]
    shifted = [swd_per_level(torch.roll(real, (k, k), (2, 3)), reference)[-1] for k in (1, 2, 4)]
    assert floor[-1] < shifted[0] < shifted[1] < shifted[2]
    # Missing detail shows at the finest level only; the coarse level stays near the floor.
    up = swd_per_level(upsampled(real, 16), reference)
    assert up[0] > 2.5 * floor[0] and up[-1] < 1.5 * floor[-1]


@pytest.mark.parametrize(
    ("x", "y", "match"),
    [
        (torch.zeros(4, 1, 32, 32), torch.zeros(4, 3, 32, 32), "same number of channels"),
        (torch.zeros(1, 1, 32, 32), torch.zeros(4, 1, 32, 32), "at least 2 images"),
        (torch.zeros(4, 1, 8, 32), torch.zeros(4, 1, 32, 32), "height and width >= 16"),
        (torch.full((4, 1, 32, 32), math.nan), torch.zeros(4, 1, 32, 32), "NaN"),
        (torch.zeros(4, 1, 64, 64), torch.zeros(4, 1, 32, 32), "pyramids of 3 and 2 levels"),
    ],
)
def test_swd_refuses_bad_sets(x: torch.Tensor, y: torch.Tensor, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        swd_per_level(x, y)


def test_pyramid_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="coarsest"):
        laplacian_pyramid(torch.zeros(1, 1, 32, 32), coarsest=2)
    with pytest.raises(ValueError, match="NaN"):
        laplacian_pyramid(torch.full((1, 1, 32, 32), math.inf))
