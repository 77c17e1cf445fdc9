"""Spectral convolution (Li et al. 2021, FNO) on a cell-centred grid, extended evenly at its borders (docs/math.md §17)."""

import torch
from torch import nn

from funcdiff._typing import Float, Tensor


def mirrored(x: Float[Tensor, "b c *n"]) -> Float[Tensor, "b c *m"]:
    """``x`` extended evenly along every spatial axis (``(b, c, *n)`` -> ``(b, c, *2n)``): the period of its cosine series."""
    for axis in range(2, x.ndim):
        x = torch.cat([x, x.flip(axis)], dim=axis)
    return x


class SpectralConv(nn.Module):
    """``K v = F^-1 (R . F v)`` over the Fourier bins ``|j| < modes`` per axis of the evenly extended grid, where ``R``
    mixes channels per bin; higher bins are dropped, so the output is band-limited by construction.

    Bin ``j`` of an axis is ``j / 2`` cycles per unit length at every resolution (the extension doubles the period),
    so the same weights act on the same frequencies of the function at any grid: the layer is discretisation
    invariant. A grid with fewer bins than ``modes`` uses the ones it has (its band is the limit).

    Args:
        in_channels, out_channels: channels mixed per bin.
        modes: bins kept per axis (positive and negative ones on every axis but the last, which the real FFT halves).
        depthwise: one complex gain per channel and bin instead of a channel-mixing matrix (``in_channels`` must equal
            ``out_channels``): a global depthwise filter, ``channels`` times cheaper; the blocks' MLPs mix channels.
    """

    def __init__(self, in_channels: int, out_channels: int, modes: tuple[int, ...], *, depthwise: bool = False) -> None:
        super().__init__()
        if not modes or min(modes) < 1:
            raise ValueError(f"modes must give one positive count per axis, got {modes}")
        if depthwise and in_channels != out_channels:
            raise ValueError(f"a depthwise spectral convolution keeps its channels, got {in_channels} -> {out_channels}")
        self.modes = tuple(modes)
        self.depthwise = depthwise
        blocks = 2 ** (len(modes) - 1)  # corners of the kept bins: +/- on each axis but the last
        shape = (blocks, in_channels, *modes, 2) if depthwise else (blocks, in_channels, out_channels, *modes, 2)
        self.weight = nn.Parameter(torch.randn(shape) / (in_channels if depthwise else in_channels * out_channels))

    def extra_repr(self) -> str:
        return f"{self.weight.shape[1]}, modes={self.modes}, depthwise={self.depthwise}"

    def forward(self, x: Float[Tensor, "b c *grid"]) -> Float[Tensor, "b o *grid"]:
        """The band-limited kernel integral of ``x`` on its grid (computed in float32 at least)."""
        b, _, *shape = x.shape
        if len(shape) != len(self.modes):
            raise ValueError(f"x has {len(shape)} spatial axes, this layer {len(self.modes)}")
        dtype = x.dtype
        work = mirrored(x.float() if dtype in (torch.float16, torch.bfloat16) else x)
        axes = tuple(range(2, work.ndim))
        spectrum = torch.fft.rfftn(work, dim=axes)
        out = spectrum.new_zeros(b, self.weight.shape[1 if self.depthwise else 2], *spectrum.shape[2:])
        last = len(shape) - 1
        weight = torch.view_as_complex(self.weight.to(spectrum.real.dtype).contiguous())
        channels = (slice(None),) if self.depthwise else (slice(None), slice(None))
        for corner in range(weight.shape[0]):
            # Bins j with |j| < m: the last axis (real FFT) holds 0..m-1; every other axis is a full FFT of length 2n,
            # whose bins 0..m-1 are the positive ones and the last m-1 the negative ones -(m-1)..-1. Weight index r of
            # a negative corner is bin -(m - r), so a grid with fewer bins than modes takes the weights of its own bins.
            where, taps = [slice(None), slice(None)], []
            for axis, m in enumerate(self.modes):
                length = spectrum.shape[2 + axis]
                if axis < last and (corner >> axis) & 1:
                    count = min(m - 1, length // 2 - 1)
                    where.append(slice(length - count, length))
                    taps.append(slice(m - count, m))
                else:
                    count = min(m, length if axis == last else length // 2)
                    where.append(slice(0, count))
                    taps.append(slice(0, count))
            w = weight[(corner, *channels, *taps)]
            part = spectrum[tuple(where)]
            out[tuple(where)] = part * w if self.depthwise else torch.einsum("bi...,io...->bo...", part, w)
        full = torch.fft.irfftn(out, s=work.shape[2:], dim=axes)
        return full[(slice(None), slice(None), *(slice(0, n) for n in shape))].to(dtype)

