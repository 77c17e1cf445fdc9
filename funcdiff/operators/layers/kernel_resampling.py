"""Resampling a depthwise kernel to another resolution so that its support keeps its size in domain units (docs/math.md §8)."""

import torch.nn.functional as F

from funcdiff._typing import Float, Tensor

_INTERPOLATION = {1: "linear", 2: "bilinear", 3: "trilinear"}


def resampled_size(kernel_size: int, size: int, reference_size: int) -> int:
    """Odd tap count ``k_N = 2 round((k_ref N / N_ref - 1) / 2) + 1`` for one axis, at least ``min(3, k_ref)``.

    Python's round (half to even) reproduces the reference rule of docs/reference-differences.md §2: 7 taps become 13 at 2x and 29 at 4x.
    """
    scaled = kernel_size * size / reference_size
    return max(min(3, kernel_size), 2 * round((scaled - 1) / 2) + 1)


def resampled_shape(kernel_size: int, shape: tuple[int, ...], reference_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The kernel shape to use on a grid of ``shape`` for a kernel of ``kernel_size`` taps per axis at ``reference_shape``."""
    return tuple(resampled_size(kernel_size, n, ref) for n, ref in zip(shape, reference_shape))


def resample_kernel(weight: Float[Tensor, "c *taps"], kernel_shape: tuple[int, ...]) -> Float[Tensor, "c *taps2"]:
    """Multilinear resampling of the taps to ``kernel_shape`` that keeps every channel's tap mean (docs/math.md §8).

    The taps are stretched over the same support (``align_corners=True``: the end taps stay at the ends, and at
    2x - 1 taps the old taps reappear exactly at even positions). Plain resampling changes each channel's tap mean,
    which the count normalisation turns into a change of the operator's scale (12 % at 2x for a Gaussian kernel).
    We restore the mean by *adding* the per-channel difference of means to every tap. A multiplicative rescale
    ``w * mean_ref / mean_new`` would do the same for kernels of one sign but divides by a near-zero number for
    kernels whose taps average to about zero (common after training); the additive correction is bounded by the
    resampling error itself, is exact for uniform kernels (they resample to themselves) and is linear in the weight.
    """
    if tuple(weight.shape[1:]) == tuple(kernel_shape):
        return weight
    ndim = weight.ndim - 1
    resized = F.interpolate(weight.unsqueeze(0), size=kernel_shape, mode=_INTERPOLATION[ndim], align_corners=True).squeeze(0)
    dims = tuple(range(1, ndim + 1))
    correction = weight.mean(dim=dims, keepdim=True) - resized.mean(dim=dims, keepdim=True)
    return resized + correction

