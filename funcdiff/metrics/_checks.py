"""Input checks shared by the metrics: clear ``ValueError`` messages before any computation."""

import torch

from funcdiff._typing import Float, Tensor

MIN_RESOLUTION = 16


def check_images(x: Float[Tensor, "n c h w"], name: str) -> None:
    """Raise ``ValueError`` unless ``x`` is a set of at least two finite images of side >= 16."""
    if x.shape[0] < 2:
        raise ValueError(f"{name} must hold at least 2 images, got {x.shape[0]}")
    if min(x.shape[-2:]) < MIN_RESOLUTION:
        raise ValueError(f"{name} must have height and width >= {MIN_RESOLUTION}, got {tuple(x.shape[-2:])}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or Inf")


def check_pair(x: Float[Tensor, "n c h w"], y: Float[Tensor, "m k p q"], names: tuple[str, str]) -> None:
    """Raise ``ValueError`` unless both are valid image sets (`check_images`) with the same number of channels."""
    check_images(x, names[0])
    check_images(y, names[1])
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"{names[0]} and {names[1]} must have the same number of channels, got {x.shape[1]} and {y.shape[1]}")
