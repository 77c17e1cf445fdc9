"""Real image sets for the metric tests: built-in icons in [-1, 1], held-out glyphs as the reference."""

import functools

import pytest
import torch
import torch.nn.functional as F

from funcdiff.factory import make_dataset

COUNT = 256


@functools.cache
def icons(split: str, resolution: int, count: int = COUNT) -> torch.Tensor:
    """The first ``count`` icons of ``split`` at ``resolution``, shape ``(count, 1, resolution, resolution)``."""
    dataset = make_dataset("icons", resolution=resolution, split=split)
    return torch.stack([dataset[i] for i in range(count)])


def blur(x: torch.Tensor, times: int) -> torch.Tensor:
    """``times`` passes of a 3 x 3 box blur with replicated borders (independent of the metrics' binomial blur)."""
    kernel = torch.full((1, 1, 3, 3), 1 / 9, dtype=x.dtype)
    for _ in range(times):
        x = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel)
    return x


def upsampled(x: torch.Tensor, low: int) -> torch.Tensor:
    """``x`` box-downsampled to ``low`` px and bicubic-upsampled back: a model that adds no detail above ``low``."""
    small = F.interpolate(x, size=low, mode="area")
    return F.interpolate(small, size=x.shape[-1], mode="bicubic", align_corners=False).clamp(-1, 1)


@pytest.fixture(scope="module")
def real() -> torch.Tensor:
    """Training icons at 32 px: the 'samples' of a perfect model."""
    return icons("train", 32)


@pytest.fixture(scope="module")
def reference() -> torch.Tensor:
    """Held-out icons at 32 px."""
    return icons("test", 32)


@pytest.fixture(scope="module")
def noise() -> torch.Tensor:
    """A fixed standard Gaussian draw shaped like ``real``."""
    return torch.randn(COUNT, 1, 32, 32, generator=torch.Generator().manual_seed(1))
