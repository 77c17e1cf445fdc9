"""`score_sets` composes the metrics; `SetScores` reports them."""

import dataclasses
import json
import math

import pytest
import torch

from funcdiff.metrics import SetScores, frechet_distance, random_features, score_sets, spectrum_distance, swd_per_level
from tests.metrics.conftest import icons


def test_score_sets_reports_every_metric(reference: torch.Tensor) -> None:
    samples = icons("train", 32, 64)
    scores = score_sets(samples, reference, seed=2)
    assert scores.swd == tuple(swd_per_level(samples, reference, seed=2))
    assert scores.fd == frechet_distance(random_features(samples), random_features(reference))
    assert scores.spectrum == spectrum_distance(samples, reference)
    assert scores.swd_mean == pytest.approx(sum(scores.swd) / 2)
    assert json.loads(json.dumps(scores.as_dict())) == {
        "swd": list(scores.swd),
        "fd": scores.fd,
        "kid": scores.kid,
        "spectrum": scores.spectrum,
        "swd_mean": scores.swd_mean,
    }
    with pytest.raises(dataclasses.FrozenInstanceError):
        scores.fd = 0.0  # type: ignore[misc]


def test_score_sets_at_64_px_has_three_levels() -> None:
    scores = score_sets(icons("train", 64, 16), icons("test", 64, 16))
    assert isinstance(scores, SetScores) and len(scores.swd) == 3


@pytest.mark.parametrize(
    ("samples", "match"),
    [
        (torch.zeros(4, 1, 64, 64), "same resolution"),
        (torch.zeros(4, 3, 32, 32), "same number of channels"),
        (torch.zeros(1, 1, 32, 32), "at least 2 images"),
        (torch.full((4, 1, 32, 32), math.inf), "NaN"),
    ],
)
def test_score_sets_refuses_bad_sets(samples: torch.Tensor, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        score_sets(samples, torch.zeros(4, 1, 32, 32))
