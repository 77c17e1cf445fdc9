"""Fréchet distance and kernel inception distance on a fixed random CNN: no downloaded weights, identical under
every torch version (random-embedding evaluation as in Naeem et al. 2020; KID from Bińkowski et al. 2018).
Absolute values shrink with resolution, so compare within one resolution, next to the real/real floor
(shared/data/README.md §3)."""

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F
from beartype import beartype
from jaxtyping import jaxtyped

from funcdiff._typing import Float, Tensor
from funcdiff.metrics._checks import check_images

WIDTHS = (32, 64, 128, 256)
FEATURES = sum(WIDTHS)


@functools.cache
def _weights(channels: int) -> tuple[Tensor, ...]:
    """He-normal 3 x 3 kernels of the four layers, drawn in order from ``np.random.default_rng(0)``, in float64."""
    rng = np.random.default_rng(0)
    out, fan_in = [], channels
    for width in WIDTHS:
        out.append(torch.from_numpy(rng.standard_normal((width, fan_in, 3, 3)) * math.sqrt(2 / (9 * fan_in))))
        fan_in = width
    return tuple(out)


@jaxtyped(typechecker=beartype)
def random_features(x: Float[Tensor, "n c h w"], *, batch_size: int = 256) -> Float[Tensor, "n 480"]:
    """480-d features of a fixed random CNN: global average pools of its four ReLU layers, concatenated, in float64.

    The net has four 3 x 3 stride-2 convolutions (padding 1, widths 32/64/128/256, zero bias) with He-normal weights
    from ``np.random.default_rng(0)``; it is fully convolutional, so any resolution works. Everything runs in float64
    (2-3x slower than float32 on CPU, but float32 results moved by 1e-5 relative with the batch size alone).

    Args:
        x: at least 2 finite images of side >= 16, any number of channels.
        batch_size: images per forward pass (bounds memory only).

    Raises:
        ValueError: on invalid images (`check_images`) or a non-positive ``batch_size``.
    """
    check_images(x, "x")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    weights = [w.to(x.device) for w in _weights(x.shape[1])]
    out = []
    with torch.no_grad():
        for batch in x.double().split(batch_size):
            pooled = []
            for w in weights:
                batch = F.relu(F.conv2d(batch, w, stride=2, padding=1))
                pooled.append(batch.mean(dim=(2, 3)))
            out.append(torch.cat(pooled, dim=1))
    return torch.cat(out)


def _moments(a: Float[Tensor, "n d"]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance of the rows, as float64 numpy arrays."""
    a = a.detach().cpu().double().numpy()
    mean = a.mean(0)
    centred = a - mean
    return mean, centred.T @ centred / (a.shape[0] - 1)


@jaxtyped(typechecker=beartype)
def frechet_distance(a: Float[Tensor, "n d"], b: Float[Tensor, "m e"]) -> float:
    """Fréchet distance ``|mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))`` between Gaussians fitted to two feature sets.

    ``Tr (S1 S2)^(1/2)`` is the sum of square roots of the eigenvalues of the symmetric ``S1^(1/2) S2 S1^(1/2)``
    (same spectrum as ``S1 S2``), from numpy's symmetric eigensolvers in float64 (no ``scipy.linalg.sqrtm``; numpy's,
    because ``torch.linalg.eigh`` took 7 s on a 480 x 480 matrix here, numpy 0.3 s), tiny negative eigenvalues set to 0.

    Raises:
        ValueError: if either set has fewer than 2 rows, the widths differ, or a value is NaN or Inf.
    """
    _check_features(a, b)
    mu1, s1 = _moments(a)
    mu2, s2 = _moments(b)
    values, vectors = np.linalg.eigh(s1)
    root = (vectors * np.sqrt(values.clip(min=0))) @ vectors.T
    middle = root @ s2 @ root
    cross = np.sqrt(np.linalg.eigvalsh((middle + middle.T) / 2).clip(min=0)).sum()
    return float(np.square(mu1 - mu2).sum() + np.trace(s1) + np.trace(s2) - 2 * cross)


def _polynomial_kernel(a: Float[Tensor, "n d"], b: Float[Tensor, "m d"]) -> Float[Tensor, "n m"]:
    """``k(x, y) = (x . y / d + 1)^3`` for all pairs of rows."""
    return (a @ b.T / a.shape[1] + 1) ** 3


@jaxtyped(typechecker=beartype)
def kernel_distance(
    a: Float[Tensor, "n d"], b: Float[Tensor, "m e"], *, subsets: int = 50, subset_size: int = 500, seed: int = 0
) -> float:
    """Kernel inception distance: unbiased MMD^2 with the kernel ``(x . y / d + 1)^3``, averaged over random subsets.

    Args:
        a, b: feature sets of the same width, at least 2 rows each.
        subsets: number of random subsets (drawn without replacement within a subset); one when the capped
            ``subset_size`` covers both sets whole.
        subset_size: rows per subset, capped at the smaller set's size.
        seed: seeds the subsets.

    Raises:
        ValueError: on invalid feature sets or non-positive ``subsets`` / ``subset_size``.
    """
    _check_features(a, b)
    if subsets < 1 or subset_size < 2:
        raise ValueError(f"subsets must be >= 1 and subset_size >= 2, got {subsets} and {subset_size}")
    a, b = a.double(), b.double()
    m = min(subset_size, a.shape[0], b.shape[0])
    if m == a.shape[0] == b.shape[0]:
        subsets = 1  # every subset is then both whole sets, and the unbiased MMD^2 ignores their order
    generator = torch.Generator().manual_seed(seed)
    total = 0.0
    for _ in range(subsets):
        x = a[torch.randperm(a.shape[0], generator=generator)[:m].to(a.device)]
        y = b[torch.randperm(b.shape[0], generator=generator)[:m].to(b.device)]
        kxx, kyy = _polynomial_kernel(x, x), _polynomial_kernel(y, y)
        within = (kxx.sum() - kxx.diagonal().sum() + kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
        total += float(within - 2 * _polynomial_kernel(x, y).mean())
    return total / subsets


def _check_features(a: Float[Tensor, "n d"], b: Float[Tensor, "m e"]) -> None:
    """Raise ``ValueError`` unless both feature sets are finite, have at least 2 rows, and the same width."""
    if a.shape[0] < 2 or b.shape[0] < 2:
        raise ValueError(f"a and b must have at least 2 rows each, got {a.shape[0]} and {b.shape[0]}")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"a and b must have the same feature width, got {a.shape[1]} and {b.shape[1]}")
    if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
        raise ValueError("a or b contains NaN or Inf")
