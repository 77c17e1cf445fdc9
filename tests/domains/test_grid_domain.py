"""Points, GridDomain subsampling, resolution-consistent white noise (docs/math.md §2) and example I/O."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from funcdiff import GaussianMollifier, GridDomain, Points
from funcdiff.domains import box_average, read_png, read_wav, write_png, write_wav

shapes = st.lists(st.integers(1, 6), min_size=1, max_size=3).map(tuple)


@given(shape=shapes, scheme=st.sampled_from(["uniform", "stratified"]), data=st.data())
def test_subsample_draws_distinct_cells_and_gathers_their_values(shape: tuple[int, ...], scheme: str, data) -> None:
    """n distinct cells per example, values read at those cells, scatter back recovers them."""
    total = math.prod(shape)
    n = data.draw(st.integers(1, total))
    domain = GridDomain(len(shape), 2, scheme=scheme)
    x = torch.randn(3, 2, *shape)
    p = domain.subsample(x, n, generator=torch.Generator().manual_seed(0))
    assert p.values.shape == (3, n, 2) and p.shape == shape
    assert all(len(set(row.tolist())) == n for row in p.flat)
    dense, mask = p.to_dense()
    assert int(mask.sum()) == 3 * n
    torch.testing.assert_close(dense * mask, x * mask)
    assert bool(((p.coords > 0) & (p.coords < 1)).all())


def test_stratified_sampling_spreads_points() -> None:
    """Stratified sampling puts exactly one point in each run of total / n row-major cells."""
    p = GridDomain(2, 1, scheme="stratified").subsample(torch.zeros(4, 1, 8, 8), 16, generator=torch.Generator().manual_seed(1))
    assert bool((torch.div(p.flat, 4, rounding_mode="floor") == torch.arange(16)).all())


def test_points_round_trip_and_cell_centre_convention() -> None:
    """All points of a field scatter back to it; coordinates are cell centres (i + 0.5) / N, axis by axis."""
    x = torch.randn(2, 3, 4, 5)
    p = Points.from_dense(x)
    dense, mask = p.to_dense()
    assert torch.equal(dense, x) and bool(mask.all())
    torch.testing.assert_close(p.coords[0, 6], torch.tensor([1.5 / 4, 1.5 / 5]))
    assert torch.equal(p.values[0, 6], x[0, :, 1, 1])


def test_white_noise_variance_and_correlation_agree_across_resolutions() -> None:
    """docs/math.md §2: per-point variance of T eps and its correlation at a fixed distance agree at N_ref, 2 N_ref, 4 N_ref."""
    domain, T, ref = GridDomain(1, 1), GaussianMollifier(0.04), 32
    gen = torch.Generator().manual_seed(0)
    stats = []
    for n in (ref, 2 * ref, 4 * ref):
        field = T.mollify(domain.white_noise(4000, (1, n), (ref,), generator=gen))[:, 0]
        centre, offset = n // 2, n // 16  # the points 1/2 and 1/2 + 1/16 (to half a cell)
        var = field[:, centre].var().item()
        corr = torch.corrcoef(torch.stack([field[:, centre], field[:, centre + offset]]))[0, 1].item()
        stats.append((var, corr))
    # Monte-Carlo errors with 4000 draws: ~2.2 % on a variance, ~0.01 on a correlation; plus half a cell of offset.
    for var, corr in stats[1:]:
        assert abs(var / stats[0][0] - 1) < 0.1
        assert abs(corr - stats[0][1]) < 0.06


def test_white_noise_nests_under_box_averaging() -> None:
    """docs/math.md §2: noise at 2N box-averaged to N has the distribution of noise at N (variance (N / N_ref)^d, independent)."""
    domain = GridDomain(2, 1)
    gen = torch.Generator().manual_seed(0)
    fine = box_average(domain.white_noise(3000, (1, 16, 16), (4, 4), generator=gen), 2)
    coarse = domain.white_noise(3000, (1, 8, 8), (4, 4), generator=gen)
    for field in (fine, coarse):
        flat = field.reshape(3000, -1)
        assert abs(flat.var(0).mean().item() / 4.0 - 1) < 0.03  # (8 / 4)^2 = 4
        assert abs(torch.corrcoef(flat[:, :2].T)[0, 1].item()) < 0.08


def test_png_and_wav_round_trip(tmp_path) -> None:
    """Images (d = 2) and audio (d = 1) are written and read back within 8- and 16-bit quantisation."""
    image = torch.rand(3, 5, 7) * 2 - 1
    back = read_png(write_png(image, tmp_path / "x.png"))
    assert back.shape == (3, 5, 7) and (back - image).abs().max() <= 1 / 127.5
    grey = read_png(write_png(image[:1], tmp_path / "g.png"), channels=1)
    assert grey.shape == (1, 5, 7)
    audio = torch.rand(2, 100) * 2 - 1
    signal, rate = read_wav(write_wav(audio, tmp_path / "a.wav", sample_rate=8000))
    assert rate == 8000 and signal.shape == (2, 100) and (signal - audio).abs().max() <= 1 / 32767


def test_bad_input() -> None:
    """Clear errors: bad ndim/channels/resolution, points beyond the grid, a field of the wrong shape."""
    with pytest.raises(ValueError, match="ndim"):
        GridDomain(0, 1)
    with pytest.raises(ValueError, match="channels"):
        GridDomain(2, 0)
    with pytest.raises(ValueError, match="resolution"):
        GridDomain(2, 1).grid_shape((4, 4, 4))
    with pytest.raises(ValueError, match="points=17"):
        GridDomain(2, 1).subsample(torch.zeros(1, 1, 4, 4), 17)
    with pytest.raises(ValueError, match="x must have shape"):
        GridDomain(2, 3).subsample(torch.zeros(1, 1, 4, 4), 4)
    with pytest.raises(ValueError, match="1 or 3 channels"):
        write_png(torch.zeros(2, 4, 4), "unused.png")
