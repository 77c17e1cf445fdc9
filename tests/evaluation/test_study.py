"""The resolution study on real data whose answer is known: bicubic upsampling adds no detail (gain ~0), real
high-resolution glyphs have all of it (gain ~1) and box-average back to the low-resolution distribution."""

import math

import pytest
import torch

from funcdiff.domains.grid import box_average
from funcdiff.evaluation import bicubic, detail_gain, real_sets, run_study
from funcdiff.evaluation.study import Study

LIMIT = 160  # glyphs per split: rendering stays quick, and 64 of them per set are drawn from these


def test_detail_gain_is_the_share_of_the_gap_closed():
    assert detail_gain(10.0, 10.0, 2.0) == 0.0
    assert detail_gain(2.0, 10.0, 2.0) == 1.0
    assert detail_gain(8.0, 10.0, 2.0) == pytest.approx(0.25)
    assert detail_gain(12.0, 10.0, 2.0) == pytest.approx(-0.25)  # worse than the baseline
    assert math.isnan(detail_gain(3.0, 2.0, 2.0))  # no gap to close


def test_bicubic_is_clipped_upsampling():
    x = torch.tensor([[[[-1.0, 1.0], [1.0, -1.0]]]])
    up = bicubic(x, 8)
    assert up.shape == (1, 1, 8, 8) and up.min() >= -1 and up.max() <= 1
    assert box_average(up, 4).sign().equal(x.sign())


@pytest.fixture(scope="module")
def real_images(tmp_path_factory) -> dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Per resolution: a sample set (training glyphs other than the floor's), the reference and the floor's set."""
    mp = pytest.MonkeyPatch()
    mp.setenv("FUNCDIFF_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    out = {}
    for side in (32, 64):
        reference, other = real_sets("icons", side, 64, seed=0, limit=LIMIT)
        _, stand_in = real_sets("icons", side, 64, seed=1, limit=LIMIT)  # another draw of training glyphs
        out[side] = (stand_in, reference, other)
    mp.undo()
    return out


def study_of(samples: dict[int, torch.Tensor], images) -> Study:
    """`run_study` of ``samples`` against the fixture's real sets."""
    return run_study(samples, lambda side: images[side][1:], training_resolution=32)


def test_real_sets_are_disjoint_and_seeded(real_images):
    _, reference, other = real_images[32]
    again, _ = real_sets("icons", 32, 64, seed=0, limit=LIMIT)
    assert again.equal(reference)
    flat = lambda x: {tuple(v.tolist()) for v in x.flatten(1)}  # noqa: E731
    assert len(flat(reference) & flat(other)) <= 2  # a few glyphs are drawn alike in two icon names, nothing more


def test_bicubic_samples_gain_no_detail(real_images):
    low = real_images[32][0]
    study = study_of({32: low, 64: bicubic(low, 64)}, real_images)
    assert study.row(64).detail_gain == pytest.approx(0.0, abs=1e-12)  # the samples are the baseline itself
    other_low = real_sets("icons", 32, 64, seed=2, limit=LIMIT)[1]
    study = study_of({32: low, 64: bicubic(other_low, 64)}, real_images)
    assert abs(study.row(64).detail_gain) < 0.2


def test_real_high_resolution_data_gains_all_detail(real_images):
    low, high = real_images[32][0], real_images[64][0]
    study = study_of({32: low, 64: high}, real_images)
    row = study.row(64)
    assert row.detail_gain > 0.8
    assert row.finest_to_floor < 1.5
    assert study.box_to_floor(row) < 1.5  # box-averaged real 64 px glyphs are real 32 px glyphs


def test_blurred_high_resolution_data_gains_part_of_the_detail(real_images):
    low, high = real_images[32][0], real_images[64][0]
    blurred = (high + bicubic(box_average(high, 2), 64)) / 2
    gains = [study_of({32: low, 64: x}, real_images).row(64).detail_gain for x in (bicubic(low, 64), blurred, high)]
    assert gains[0] < gains[1] < gains[2]


def test_rows_below_the_training_resolution_have_no_baseline(real_images):
    study = study_of({32: real_images[32][0]}, real_images)
    row = study.row(32)
    assert row.bicubic is None and row.box is None and row.detail_gain is None and study.box_to_floor(row) is None
    with pytest.raises(KeyError, match="no row at 64"):
        study.row(64)


def test_non_images_are_refused(real_images):
    with pytest.raises((ValueError, TypeError)):  # the shape annotation, or without runtime checks, the function
        study_of({32: torch.zeros(4, 1, 32)}, real_images)
    with pytest.raises(ValueError, match="images"):
        study_of({32: torch.zeros(4, 1, 16, 16)}, real_images)


def test_the_box_check_box_averages(real_images):
    """A 2 x 2 checkerboard on top of pixel-doubled 32 px glyphs averages away exactly, so the box row scores the glyphs."""
    low = real_images[32][0]
    checker = 0.5 * (-1.0) ** (torch.arange(64)[:, None] + torch.arange(64)[None, :])
    high = (low.repeat_interleave(2, -1).repeat_interleave(2, -2) * 0.5 + checker).clamp(-1, 1)
    study = study_of({32: low * 0.5, 64: high}, real_images)
    box, low_scores = study.row(64).box, study.row(32).samples
    assert box.swd == pytest.approx(low_scores.swd, rel=1e-6) and box.fd == pytest.approx(low_scores.fd, rel=1e-6)
