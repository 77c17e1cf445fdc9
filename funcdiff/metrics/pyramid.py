"""Sliced Wasserstein distance on Laplacian-pyramid patches (Karras et al. 2018, "Progressive growing of GANs",
appendix D): a weight-free metric per frequency band, finest level first. Coarse levels score global structure, the
finest level scores detail; per-level values are roughly comparable across resolutions (shared/data/README.md §3)."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F
from beartype import beartype
from jaxtyping import jaxtyped

from funcdiff._typing import Float, Tensor
from funcdiff.metrics._checks import check_pair

PATCH = 7


def _blur(x: Float[Tensor, "n c h w"]) -> Float[Tensor, "n c h w"]:
    """Separable 5-tap binomial blur ``[1, 4, 6, 4, 1] / 16`` with reflecting borders."""
    c = x.shape[1]
    kernel = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], dtype=x.dtype, device=x.device) / 16
    x = F.conv2d(F.pad(x, (2, 2, 0, 0), mode="reflect"), kernel.view(1, 1, 1, 5).expand(c, 1, 1, 5), groups=c)
    return F.conv2d(F.pad(x, (0, 0, 2, 2), mode="reflect"), kernel.view(1, 1, 5, 1).expand(c, 1, 5, 1), groups=c)


@jaxtyped(typechecker=beartype)
def laplacian_pyramid(x: Float[Tensor, "n c h w"], coarsest: int = 16) -> list[Float[Tensor, "n c _ _"]]:
    """Laplacian pyramid of ``x``: band-pass levels, finest first, then the low-pass image of side <= ``coarsest``.

    Each step blurs, keeps every second pixel, and stores ``x - upsample(low)`` with bilinear upsampling to the
    level's exact size, so ``levels[k] + upsample(low_k)`` rebuilds every level exactly (odd sizes included).

    Args:
        x: images; the pyramid stops once the shorter side is at most ``coarsest``.
        coarsest: the largest side the last (low-pass) level may have, at least 3 (the blur's reflect padding).

    Raises:
        ValueError: if ``coarsest < 3`` or ``x`` holds NaN or Inf.
    """
    if coarsest < 3:
        raise ValueError(f"coarsest must be at least 3, got {coarsest}")
    if not torch.isfinite(x).all():
        raise ValueError("x contains NaN or Inf")
    levels = []
    while min(x.shape[-2:]) > coarsest:
        low = _blur(x)[..., ::2, ::2]
        levels.append(x - F.interpolate(low, size=x.shape[-2:], mode="bilinear", align_corners=False))
        x = low
    return levels + [x]


def _descriptors(level: Float[Tensor, "n c h w"], per_image: int, generator: torch.Generator) -> np.ndarray:
    """``per_image`` random 7 x 7 x c patches of every image, flattened, normalised per channel over the whole set, float32."""
    n, c, h, w = level.shape
    rows = torch.randint(0, h - PATCH + 1, (n, per_image), generator=generator)
    cols = torch.randint(0, w - PATCH + 1, (n, per_image), generator=generator)
    offsets = torch.arange(PATCH)
    r = (rows[..., None, None] + offsets[:, None]).expand(n, per_image, PATCH, PATCH)
    q = (cols[..., None, None] + offsets[None, :]).expand(n, per_image, PATCH, PATCH)
    batch = torch.arange(n)[:, None, None, None].expand_as(r)
    out = level.permute(0, 2, 3, 1).cpu()[batch, r, q]  # (n, per_image, 7, 7, c)
    out = (out - out.mean(dim=(0, 1, 2, 3))) / out.std(dim=(0, 1, 2, 3)).clamp(min=1e-8)
    return out.reshape(n * per_image, -1).float().numpy()


def _sliced_wasserstein(a: np.ndarray, b: np.ndarray, directions: int, rng: np.random.Generator) -> float:
    """Mean over random unit directions of the 1-D Wasserstein-1 distance between the projected descriptor sets.

    Sets of different sizes are compared at ``min(len(a), len(b))`` common quantiles ``(i + 1/2) / m`` of their
    sorted projections (equal sizes compare every sorted value, as in Karras et al.).
    """
    theta = rng.standard_normal((directions, a.shape[1]))
    theta = (theta / np.linalg.norm(theta, axis=1, keepdims=True)).astype(np.float32)
    # float32 rows, one per direction, so each sort runs along contiguous memory; np.sort, because torch.sort was 3x
    # slower here and far slower along dim 0 (data README §3). np.sort releases the GIL: both sets sort at once.
    with ThreadPoolExecutor(2) as pool:
        pa, pb = pool.map(lambda d: np.sort(theta @ d.T, axis=1), (a, b))
    m = min(pa.shape[1], pb.shape[1])
    quantiles = (np.arange(m) + 0.5) / m
    pa, pb = (p if p.shape[1] == m else p[:, (quantiles * p.shape[1]).astype(np.int64)] for p in (pa, pb))
    return float(np.abs(pa - pb).mean(dtype=np.float64))


@jaxtyped(typechecker=beartype)
def swd_per_level(
    x: Float[Tensor, "n c h w"],
    y: Float[Tensor, "m k p q"],
    *,
    patches_per_image: int = 128,
    directions: int = 512,
    seed: int = 0,
) -> list[float]:
    """Sliced Wasserstein distance x 1e3 between two image sets at every Laplacian level (16 px low-pass), finest first.

    Descriptors are random 7 x 7 x c patches, normalised per channel by each set's own mean and std (Karras et al.),
    so a global contrast change is not seen. Sets of different sizes are compared at common quantiles. Deterministic
    given ``seed``.

    Args:
        x, y: image sets with the same channels and at least 2 images; their pyramids must have the same depth.
        patches_per_image: patches drawn from every image at every level.
        directions: random unit projection directions.
        seed: seeds the patch positions and the directions.

    Raises:
        ValueError: on invalid sets (`check_pair`), pyramids of different depths, or non-positive counts.
    """
    check_pair(x, y, ("x", "y"))
    if patches_per_image < 1 or directions < 1:
        raise ValueError(f"patches_per_image and directions must be positive, got {patches_per_image} and {directions}")
    px, py = laplacian_pyramid(x.double()), laplacian_pyramid(y.double())
    if len(px) != len(py):
        raise ValueError(f"x and y give pyramids of {len(px)} and {len(py)} levels; use sets of similar resolution")
    out = []
    for level, (lx, ly) in enumerate(zip(px, py)):
        generator = torch.Generator().manual_seed(seed + level)
        a, b = _descriptors(lx, patches_per_image, generator), _descriptors(ly, patches_per_image, generator)
        out.append(_sliced_wasserstein(a, b, directions, np.random.default_rng(seed + level)) * 1e3)
    return out
