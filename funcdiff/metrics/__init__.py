"""Weight-free sample-quality metrics for image sets ``(n, c, h, w)`` in [-1, 1]: SWD on Laplacian-pyramid patches,
Fréchet and kernel distances on a fixed random CNN, and a radial power-spectrum distance (shared/data/README.md §3)."""

from funcdiff.metrics.classifier import ImageClassifier, classify, train_classifier
from funcdiff.metrics.fidelity import psnr
from funcdiff.metrics.pyramid import laplacian_pyramid, swd_per_level
from funcdiff.metrics.random_features import frechet_distance, kernel_distance, random_features
from funcdiff.metrics.scores import SetScores, score_sets
from funcdiff.metrics.spectrum import radial_power_spectrum, spectrum_distance

__all__ = [
    "ImageClassifier",
    "SetScores",
    "classify",
    "frechet_distance",
    "kernel_distance",
    "laplacian_pyramid",
    "psnr",
    "radial_power_spectrum",
    "random_features",
    "score_sets",
    "spectrum_distance",
    "swd_per_level",
    "train_classifier",
]
