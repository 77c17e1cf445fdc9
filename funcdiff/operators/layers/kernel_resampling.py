"""Resampling a depthwise kernel to another resolution so that its support keeps its size in domain units (docs/math.md §8)."""

from typing import Literal, get_args

import torch
import torch.nn.functional as F

from funcdiff._typing import Float, Tensor

Resampling = Literal["bandlimited", "linear"]
"""How kernels and grid read-outs change resolution: band-limited (sinc / DCT, docs/math.md §16) or multilinear."""
RESAMPLINGS: tuple[str, ...] = get_args(Resampling)

_INTERPOLATION = {1: "linear", 2: "bilinear", 3: "trilinear"}


def check_resampling(resampling: str) -> None:
    """Raise ``ValueError`` unless ``resampling`` is one of `RESAMPLINGS`."""
    if resampling not in RESAMPLINGS:
        raise ValueError(f"resampling must be one of {RESAMPLINGS}, got {resampling!r}")


def resampled_size(kernel_size: int, size: int, reference_size: int) -> int:
    """Odd tap count ``k_N = 2 round((k_ref N / N_ref - 1) / 2) + 1`` for one axis, at least ``min(3, k_ref)``.

    Python's round (half to even) reproduces the reference rule of docs/reference-differences.md §2: 7 taps become 13 at 2x and 29 at 4x.
    """
    scaled = kernel_size * size / reference_size
    return max(min(3, kernel_size), 2 * round((scaled - 1) / 2) + 1)


def resampled_shape(kernel_size: int, shape: tuple[int, ...], reference_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The kernel shape to use on a grid of ``shape`` for a kernel of ``kernel_size`` taps per axis at ``reference_shape``."""
    return tuple(resampled_size(kernel_size, n, ref) for n, ref in zip(shape, reference_shape))


def sinc_matrix(taps: int, new_taps: int, *, dtype: torch.dtype, device: torch.device) -> Float[Tensor, "m k"]:
    """Whittaker-Shannon interpolation of ``taps`` samples at ``new_taps`` positions spread over the same support
    (end taps at the ends): row ``j`` is ``sinc(p_j - i)``, ``p_j = j (taps - 1) / (new_taps - 1)``.

    The kernel is zero outside its taps, so this finite sum is its exact band-limited interpolant: every row lies in
    the span of the reference band, and at whole positions ``p_j`` it returns the old tap.
    """
    i = torch.arange(taps, dtype=torch.float64, device=device)
    p = torch.linspace(0.0, taps - 1.0, new_taps, dtype=torch.float64, device=device) if new_taps > 1 else i.new_full((1,), (taps - 1) / 2)
    return torch.sinc(p[:, None] - i[None, :]).to(dtype)


def _sinc_resample(weight: Tensor, kernel_shape: tuple[int, ...]) -> Tensor:
    """The taps' separable sinc interpolant (`sinc_matrix` along every spatial axis)."""
    for axis, new in enumerate(kernel_shape, start=1):
        matrix = sinc_matrix(weight.shape[axis], new, dtype=weight.dtype, device=weight.device)
        weight = torch.movedim(torch.tensordot(weight, matrix, dims=([axis], [1])), -1, axis)
    return weight


def resample_kernel(
    weight: Float[Tensor, "c *taps"], kernel_shape: tuple[int, ...], resampling: Resampling = "bandlimited"
) -> Float[Tensor, "c *taps2"]:
    """The taps resampled to ``kernel_shape`` over the same support, keeping every channel's tap mean (docs/math.md §8, §16).

    ``"bandlimited"``: each channel's mean is the uniform kernel over the support (what a constant kernel is at every
    resolution, so uniform kernels resample to themselves and constants stay constant at any density); the rest is
    the taps' Whittaker-Shannon (sinc) interpolant, separable per axis, which has no energy above the reference grid's
    Nyquist frequency up to its truncation to the support, so a kernel run on a finer grid does not image the trained
    band there. ``"linear"``: multilinear (``align_corners=True``), whose spectrum repeats the reference band mirrored
    about its Nyquist frequency (the resampling of the first releases, kept for their checkpoints). The end taps stay
    at the ends; at ``2 k - 1`` taps the old taps reappear at even positions up to the mean correction. On a coarser
    grid (fewer taps) both sample the interpolant without low-passing it first.

    Resampling changes each channel's tap mean, which the count normalisation turns into a change of the operator's
    scale (12 % at 2x for a Gaussian kernel under linear resampling). We restore the mean by *adding* the per-channel
    difference of means to every tap. A multiplicative rescale would divide by a near-zero number for kernels whose
    taps average to about zero (common after training); the additive correction is bounded by the resampling error
    itself, is exact for uniform kernels and is linear in the weight.
    """
    if tuple(weight.shape[1:]) == tuple(kernel_shape):
        return weight
    ndim = weight.ndim - 1
    dims = tuple(range(1, ndim + 1))
    check_resampling(resampling)
    mean = weight.mean(dim=dims, keepdim=True)
    if resampling == "linear":
        resized = F.interpolate(weight.unsqueeze(0), size=kernel_shape, mode=_INTERPOLATION[ndim], align_corners=True).squeeze(0)
    else:
        resized = _sinc_resample(weight - mean, tuple(kernel_shape))
    return resized + (mean - resized.mean(dim=dims, keepdim=True))
