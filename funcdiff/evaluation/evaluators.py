"""Which evaluation scores a domain's samples: images by `evaluate`, audio clips by `evaluate_audio` (`evaluator_for`).

A user's domain gets its own with `register_evaluator`; the ``eval`` command asks only this table, never a domain's
class.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from funcdiff.domains.audio import AudioDomain
from funcdiff.domains.base import Domain
from funcdiff.domains.grid import GridDomain
from funcdiff.evaluation.audio import describe_audio, evaluate_audio, read_wav_folder
from funcdiff.evaluation.run import describe, evaluate, read_image_folder


@dataclass(frozen=True, kw_only=True)
class Evaluator:
    """How samples of one kind of domain are scored.

    Attributes:
        resolution: the resolution (side in pixels, sample rate in Hz) that names the grid ``reference_shape`` of a
            domain; raises ``ValueError`` for grids the evaluation cannot score.
        evaluate: ``(samples by resolution, *, data, training_resolution, out_dir, seconds_per_sample, seed,
            data_limit, details, title) -> (study, report path)``.
        describe: a few lines for the terminal from a study.
        titles: the report's title for an evaluation and for a resolution study.
        read_folder: ``(folder, channels) -> (resolution, samples)``: a folder of sample files of one resolution, for
            ``eval --samples``.
    """

    resolution: Callable[[Domain, tuple[int, ...]], int]
    evaluate: Callable[..., tuple[Any, Path]]
    describe: Callable[[Any], str]
    titles: tuple[str, str]
    read_folder: Callable[[Path, int], tuple[int, Any]]


def _square_side(domain: Domain, reference_shape: tuple[int, ...]) -> int:
    """The side of a square image grid; ``ValueError`` for other grids."""
    if len(reference_shape) != 2 or reference_shape[0] != reference_shape[1]:
        raise ValueError(f"eval scores square images and audio clips; this checkpoint's domain has shape {reference_shape}")
    return reference_shape[0]


def _evaluate_audio(samples: dict[int, Any], *, training_resolution: int, **options: Any) -> tuple[Any, Path]:
    """`evaluate_audio` with the training rate passed as the training resolution."""
    return evaluate_audio(samples, training_rate=training_resolution, **options)


def _read_square_images(folder: Path, channels: int) -> tuple[int, Any]:
    """The PNG images of ``folder`` and their side; ``ValueError`` unless they are square."""
    images = read_image_folder(folder, channels=channels)
    if images.shape[-1] != images.shape[-2]:
        raise ValueError(f"{folder}: the images must be square, got {tuple(images.shape[2:])}")
    return images.shape[-1], images


IMAGES = Evaluator(resolution=_square_side, evaluate=evaluate, describe=describe, titles=("Evaluation", "Resolution study"),
                   read_folder=_read_square_images)
"""Square images: SWD per Laplacian level, random-CNN FD and KID, spectra (`evaluate`)."""

AUDIO = Evaluator(resolution=lambda domain, shape: round(domain.sample_rate(shape[0])), evaluate=_evaluate_audio,
                  describe=describe_audio, titles=("Audio evaluation", "Audio resolution study"),
                  read_folder=lambda folder, channels: read_wav_folder(folder))
"""Audio clips: multi-resolution STFT distance, log-mel Fréchet distance, pitch and harmonicity (`evaluate_audio`)."""

EVALUATORS: dict[type, Evaluator] = {AudioDomain: AUDIO, GridDomain: IMAGES}
"""Domain classes to their evaluators; the first the domain is an instance of applies."""


def register_evaluator(domain_type: type, evaluator: Evaluator) -> None:
    """Score the samples of ``domain_type``'s domains (and its subclasses') with ``evaluator``, ahead of the built-in ones."""
    others = {k: v for k, v in EVALUATORS.items() if k is not domain_type}
    EVALUATORS.clear()
    EVALUATORS.update({domain_type: evaluator, **others})


def evaluator_for(domain: Domain) -> Evaluator:
    """The evaluator of ``domain``; ``ValueError`` naming the domain if none is registered."""
    for domain_type, evaluator in EVALUATORS.items():
        if isinstance(domain, domain_type):
            return evaluator
    raise ValueError(f"no evaluation scores samples of a {type(domain).__name__}; register one with "
                     "funcdiff.evaluation.register_evaluator")
