"""Random-CNN features, Fréchet distance and KID: stored feature values (identical across runs and machines), closed
forms and brute-force oracles, and the ordering of corruptions on real icons."""

import math

import numpy as np
import pytest
import torch

from funcdiff.metrics import frechet_distance, kernel_distance, random_features
from tests.metrics.conftest import blur, upsampled

COLUMNS = [0, 17, 31, 32, 95, 96, 223, 224, 479]  # first and last of every layer's block, and a few inside

# Computed once with funcdiff.metrics at its first commit and pasted here: the weights come from
# np.random.default_rng(0), so these hold under every torch version and machine.
STORED_1x32 = [
    [
        0.0,
        1.160219390367977,
        1.0193630728234435,
        0.9523708706733395,
        0.08503356807634137,
        0.0,
        1.0633835604217308,
        0.18661140875269736,
        0.32059036760135723,
    ],
    [
        0.4729484868611108,
        8.768151978901499e-06,
        0.0,
        0.011499263758591605,
        1.1991319764312234,
        0.09843222820500519,
        0.7991579311333752,
        0.0,
        0.45544035340109684,
    ],
]
STORED_3x48 = [
    [
        0.3915476219395454,
        0.7108371745695586,
        0.0,
        0.0720951573468005,
        0.0,
        0.008408390069449349,
        0.0,
        0.4517476299938024,
        0.9372779505255888,
    ],
    [
        0.0,
        0.006260558189023764,
        0.5908922733603771,
        0.2805328355990047,
        0.0,
        0.0007062473802323606,
        0.0016616180211376968,
        0.0,
        0.08097572501801278,
    ],
]


@pytest.mark.parametrize(
    ("x", "stored"),
    [
        (torch.linspace(-1, 1, 2 * 32 * 32).reshape(2, 1, 32, 32), STORED_1x32),
        (torch.linspace(-1, 1, 2 * 3 * 48 * 48).reshape(2, 3, 48, 48).sin(), STORED_3x48),
    ],
)
def test_features_match_stored_values(x: torch.Tensor, stored: list[list[float]]) -> None:
    features = random_features(x)
    assert features.shape == (2, 480) and features.dtype == torch.float64
    torch.testing.assert_close(features[:, COLUMNS], torch.tensor(stored, dtype=torch.float64), rtol=1e-5, atol=1e-9)


def test_features_do_not_depend_on_batching_and_work_at_any_resolution() -> None:
    x = torch.rand(5, 1, 40, 17, generator=torch.Generator().manual_seed(0)) * 2 - 1
    torch.testing.assert_close(random_features(x, batch_size=2), random_features(x), rtol=1e-10, atol=1e-12)


def _with_moments(z: np.ndarray, mean: np.ndarray, scales: np.ndarray, basis: np.ndarray) -> torch.Tensor:
    """Rows with sample mean ``mean`` and sample covariance ``basis diag(scales^2) basis^T`` exactly."""
    centred = z - z.mean(0)
    values, vectors = np.linalg.eigh(centred.T @ centred / (len(z) - 1))
    white = centred @ vectors @ np.diag(values**-0.5) @ vectors.T  # sample covariance exactly I
    return torch.from_numpy(mean + white @ np.diag(scales) @ basis.T)


def test_frechet_distance_matches_the_closed_form_for_commuting_covariances() -> None:
    # Same eigenbasis: FD = |mu1 - mu2|^2 + sum_i (s1_i - s2_i)^2 with s the standard deviations along the basis.
    rng = np.random.default_rng(0)
    d = 12
    basis, _ = np.linalg.qr(rng.standard_normal((d, d)))
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    s1, s2 = rng.uniform(0.1, 2, d), rng.uniform(0.1, 2, d)
    a = _with_moments(rng.standard_normal((300, d)), mu1, s1, basis)
    b = _with_moments(rng.standard_normal((200, d)), mu2, s2, basis)
    expected = np.square(mu1 - mu2).sum() + np.square(s1 - s2).sum()
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)


def test_frechet_distance_matches_the_eigenvalues_of_s1_s2_in_general() -> None:
    # Independent route: Tr (S1 S2)^(1/2) = sum of square roots of the (real, positive) eigenvalues of S1 S2.
    rng = np.random.default_rng(1)
    a = rng.standard_normal((100, 6)) @ rng.standard_normal((6, 6))
    b = rng.standard_normal((80, 6)) @ rng.standard_normal((6, 6)) + 0.5
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    cross = np.sqrt(np.linalg.eigvals(s1 @ s2).real).sum()
    expected = np.square(a.mean(0) - b.mean(0)).sum() + np.trace(s1) + np.trace(s2) - 2 * cross
    assert frechet_distance(torch.from_numpy(a), torch.from_numpy(b)) == pytest.approx(expected, rel=1e-9)


def test_kernel_distance_matches_a_brute_force_unbiased_mmd() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((12, 3)), rng.standard_normal((12, 3)) + 0.4
    k = lambda x, y: (x @ y / 3 + 1) ** 3  # noqa: E731
    xx = sum(k(a[i], a[j]) for i in range(12) for j in range(12) if i != j) / (12 * 11)
    yy = sum(k(b[i], b[j]) for i in range(12) for j in range(12) if i != j) / (12 * 11)
    xy = sum(k(a[i], b[j]) for i in range(12) for j in range(12)) / 144
    got = kernel_distance(torch.from_numpy(a), torch.from_numpy(b), subsets=5, subset_size=100)
    assert got == pytest.approx(xx + yy - 2 * xy, rel=1e-9)


def test_kernel_distance_is_near_zero_for_one_distribution_and_positive_for_two() -> None:
    g = torch.Generator().manual_seed(3)
    a, b = torch.randn(1000, 16, generator=g, dtype=torch.float64), torch.randn(1000, 16, generator=g, dtype=torch.float64)
    same = kernel_distance(a, b, subsets=20, subset_size=500)
    shifted = kernel_distance(a, b + 0.3, subsets=20, subset_size=500)
    assert abs(same) < 0.05 * shifted  # unbiased: 0 in expectation, |same| ~ 0.004 here from sampling
    assert kernel_distance(a, b, subsets=20, subset_size=500, seed=1) != same


def test_fd_and_kid_real_vs_real_is_at_the_floor_and_corruptions_are_ordered(
    real: torch.Tensor, reference: torch.Tensor, noise: torch.Tensor
) -> None:
    ref = random_features(reference)

    def scores(x: torch.Tensor) -> tuple[float, float]:
        features = random_features(x)
        return frechet_distance(features, ref), kernel_distance(features, ref)

    fd_floor, kid_floor = scores(real)
    assert fd_floor < 5 and abs(kid_floor) < 0.01  # N=256 at 32 px; README §3 gives 0.90 and 4e-5 at N=1000
    # The random features barely see noise of std <= 0.05 at N=256 (the set-size bias dominates), so stronger noise.
    fd_noisy = [scores(real + s * noise)[0] for s in (0.05, 0.1, 0.2)]
    assert fd_floor < fd_noisy[0] < fd_noisy[1] < fd_noisy[2]
    kid_noisy = [scores(real + s * noise)[1] for s in (0.2, 0.3, 0.4)]
    assert kid_floor < kid_noisy[0] < kid_noisy[1] < kid_noisy[2]
    for strength in ([scores(blur(real, k)) for k in (1, 2)], [scores(torch.roll(real, (k, k), (2, 3))) for k in (1, 2, 4)]):
        fds, kids = zip(*strength)
        assert fd_floor < min(fds) and list(fds) == sorted(fds)
        assert kid_floor < min(kids) and list(kids) == sorted(kids)
    fd_up, kid_up = scores(upsampled(real, 16))
    assert fd_up > 1.5 * fd_floor and kid_up > 10 * kid_floor


@pytest.mark.parametrize(
    ("a", "b", "match"),
    [
        (torch.zeros(1, 4), torch.zeros(5, 4), "at least 2 rows"),
        (torch.zeros(5, 4), torch.zeros(5, 3), "same feature width"),
        (torch.full((5, 4), math.nan), torch.zeros(5, 4), "NaN"),
    ],
)
def test_distances_refuse_bad_features(a: torch.Tensor, b: torch.Tensor, match: str) -> None:
    for distance in (frechet_distance, kernel_distance):
        with pytest.raises(ValueError, match=match):
            distance(a, b)


def test_random_features_refuse_bad_images() -> None:
    with pytest.raises(ValueError, match="height and width >= 16"):
        random_features(torch.zeros(2, 1, 15, 32))
    with pytest.raises(ValueError, match="batch_size"):
        random_features(torch.zeros(2, 1, 16, 16), batch_size=0)
    with pytest.raises(ValueError, match="subset_size"):
        kernel_distance(torch.zeros(3, 2), torch.zeros(3, 2), subset_size=1)
