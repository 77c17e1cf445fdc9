"""Each domain's samples are scored by its evaluator, picked from a table a user's domain can join."""

import pytest

from funcdiff import AudioDomain, GridDomain
from funcdiff.domains.base import Domain
from funcdiff.evaluation import EVALUATORS, Evaluator, evaluator_for, register_evaluator
from funcdiff.evaluation.evaluators import AUDIO, IMAGES


class PolarDomain(GridDomain):
    """A user's domain (a stand-in): functions on a polar grid."""


def test_built_in_domains_and_a_users_domain(monkeypatch) -> None:
    """Audio clips get the audio evaluation, grids the images'; a user's domain may register its own ahead of them;
    images must be square; a domain nothing scores is a clear error."""
    monkeypatch.setattr("funcdiff.evaluation.evaluators.EVALUATORS", dict(EVALUATORS))
    assert evaluator_for(AudioDomain(1.0)) is AUDIO and evaluator_for(GridDomain(2, 1)) is IMAGES
    assert AUDIO.resolution(AudioDomain(1.0), (4000,)) == 4000 and IMAGES.resolution(GridDomain(2, 1), (32, 32)) == 32
    with pytest.raises(ValueError, match="square images"):
        IMAGES.resolution(GridDomain(2, 1), (32, 48))
    mine = Evaluator(resolution=lambda domain, shape: shape[0], evaluate=lambda samples, **options: (None, None),
                     describe=lambda study: "", titles=("Polar evaluation", "Polar resolution study"),
                     read_folder=lambda folder, channels: (0, None))
    assert evaluator_for(PolarDomain(2, 1)) is IMAGES
    register_evaluator(PolarDomain, mine)
    assert evaluator_for(PolarDomain(2, 1)) is mine and evaluator_for(GridDomain(2, 1)) is IMAGES

    class Nowhere(Domain):
        """A domain that no evaluator knows."""

        ndim, channels, value_range = 2, 1, (-1.0, 1.0)
        grid_shape = draw_index = white_noise = to_dict = lambda self, *a, **k: None

    with pytest.raises(ValueError, match="no evaluation scores samples of a Nowhere"):
        evaluator_for(Nowhere())
