"""All weight-free metrics of a sample set against a reference set in one call (shared/data/README.md §3)."""

import dataclasses
from dataclasses import dataclass

from beartype import beartype
from jaxtyping import jaxtyped

from funcdiff._typing import Float, Tensor
from funcdiff.metrics._checks import check_pair
from funcdiff.metrics.pyramid import swd_per_level
from funcdiff.metrics.random_features import frechet_distance, kernel_distance, random_features
from funcdiff.metrics.spectrum import spectrum_distance


@dataclass(frozen=True)
class SetScores:
    """Scores of a sample set against a reference set; lower is better for all.

    Attributes:
        swd: sliced Wasserstein distance x 1e3 per Laplacian level, finest first (`swd_per_level`).
        fd: Fréchet distance on the random-CNN features (`frechet_distance`, `random_features`).
        kid: kernel distance on the same features, raw (not x 1e3) (`kernel_distance`).
        spectrum: RMS log10 radial power difference in the high band [h/4, h/2) (`spectrum_distance`).
    """

    swd: tuple[float, ...]
    fd: float
    kid: float
    spectrum: float

    @property
    def swd_mean(self) -> float:
        """Mean SWD x 1e3 over the pyramid levels."""
        return sum(self.swd) / len(self.swd)

    def as_dict(self) -> dict[str, float | list[float]]:
        """The scores as a JSON-ready dict, ``swd`` as a list and ``swd_mean`` added."""
        return {**dataclasses.asdict(self), "swd": list(self.swd), "swd_mean": self.swd_mean}


@jaxtyped(typechecker=beartype)
def score_sets(samples: Float[Tensor, "n c h w"], reference: Float[Tensor, "m k p q"], *, seed: int = 0) -> SetScores:
    """SWD per level, random-CNN FD and KID, and the high-band spectrum distance of ``samples`` against ``reference``.

    Args:
        samples, reference: image sets in [-1, 1] of the same channels and resolution, at least 2 images each.
        seed: seeds the SWD patches and directions and the KID subsets.

    Raises:
        ValueError: on invalid sets (`check_pair`) or different resolutions.
    """
    check_pair(samples, reference, ("samples", "reference"))
    if samples.shape[-2:] != reference.shape[-2:]:
        raise ValueError(
            f"samples and reference must have the same resolution, got {tuple(samples.shape[-2:])} and {tuple(reference.shape[-2:])}"
        )
    fa, fb = random_features(samples), random_features(reference)
    return SetScores(
        swd=tuple(swd_per_level(samples, reference, seed=seed)),
        fd=frechet_distance(fa, fb),
        kid=kernel_distance(fa, fb, seed=seed),
        spectrum=spectrum_distance(samples, reference),
    )
