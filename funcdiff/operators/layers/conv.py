"""The sparse depthwise kernel integral of docs/math.md §8, on any subset of any grid of dimension 1, 2 or 3."""

import math
from typing import final

import torch
import torch.nn.functional as F
from beartype import beartype
from jaxtyping import jaxtyped
from torch import nn

from funcdiff._typing import Float, Tensor
from funcdiff.operators.kernels.backends import DEPTHWISE_CONV, BackendName, ConvPlan, make_plan, sparse_sum
from funcdiff.operators.layers.chunking import empty_in_layout, fill_chunks
from funcdiff.operators.layers.kernel_resampling import Resampling, check_resampling, resample_kernel, resampled_shape
from funcdiff.points import Points



@final
class SparseDepthwiseConv(nn.Module):
    """Depthwise kernel integral over the present lattice neighbours, ``(k_ref^d / |N(u)|) sum kappa_N(u - w) v(w)``.

    The kernel is learnt at ``reference_shape`` and resampled (`resample_kernel`) on grids of other shapes, so its
    support keeps its size in domain units; the count normalisation makes the sum a Monte-Carlo estimate of the
    integral at any density, resolution and at the borders (docs/math.md §8).

    Args:
        channels: number of channels c (one kernel each).
        kernel_size: taps per axis at the reference resolution (odd).
        ndim: spatial dimension d (1, 2 or 3).
        reference_shape: the grid shape at which the kernel has ``kernel_size`` taps per axis.
        backend: ``"auto"``, ``"dense"`` or ``"gather"`` (see `funcdiff.operators.kernels.backends`).
        resampling: how the kernel is resampled on other grids (`resample_kernel`): ``"bandlimited"`` or ``"linear"``.
    """

    def __init__(
        self, channels: int, kernel_size: int, *, ndim: int, reference_shape: tuple[int, ...], backend: BackendName = "auto",
        resampling: Resampling = "bandlimited",
    ) -> None:
        super().__init__()
        if ndim not in (1, 2, 3):
            raise ValueError(f"ndim must be 1, 2 or 3, got {ndim}")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd int, got {kernel_size}")
        if len(reference_shape) != ndim:
            raise ValueError(f"reference_shape must have ndim={ndim} entries, got {reference_shape}")
        self.channels = channels
        self.kernel_size = kernel_size
        self.ndim = ndim
        self.reference_shape = tuple(reference_shape)
        self.backend = backend
        check_resampling(resampling)
        self.resampling = resampling
        # Depthwise fan-in is k^d: at full density the normalised output then has variance ~1/3 of the input's.
        bound = 1.0 / math.sqrt(kernel_size**ndim)
        self.weight = nn.Parameter(torch.empty(channels, *(kernel_size,) * ndim).uniform_(-bound, bound))
        self._spectra: tuple[tuple, dict[tuple[int, ...], Tensor]] = ((), {})  # see `_kernel_spectra`

    def extra_repr(self) -> str:
        return (
            f"{self.channels}, kernel_size={self.kernel_size}, ndim={self.ndim}, "
            f"reference_shape={self.reference_shape}, backend={self.backend!r}, resampling={self.resampling!r}"
        )

    def kernel_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """Taps per axis on a grid of ``shape``."""
        return resampled_shape(self.kernel_size, shape, self.reference_shape)

    def kernel(self, shape: tuple[int, ...]) -> Float[Tensor, "c *taps"]:
        """The kernel resampled for a grid of ``shape`` (tap mean kept per channel)."""
        return resample_kernel(self.weight, self.kernel_shape(shape), self.resampling)

    def plan(self, points: Points) -> ConvPlan:
        """Neighbourhood data for ``points``; share it between convolutions with the same kernel size and backend."""
        if points.ndim != self.ndim:
            raise ValueError(f"points live on a {points.ndim}-d grid but this convolution has ndim={self.ndim}")
        kernel_shape = self.kernel_shape(points.shape)
        return make_plan(points.index, points.shape, kernel_shape, backend=self.backend, dtype=points.values.dtype)

    @jaxtyped(typechecker=beartype)
    def forward(self, points: Points, plan: ConvPlan | None = None) -> Float[Tensor, "b n c"]:
        """The normalised kernel integral at every point.

        Args:
            points: values ``(b, n, c)`` at distinct lattice positions of a grid of any shape.
            plan: a plan from `plan` for the same points (built here when omitted).
        """
        if points.values.shape[-1] != self.channels:
            raise ValueError(f"points carry {points.values.shape[-1]} channels, expected {self.channels}")
        plan = self.plan(points) if plan is None else plan
        if plan.kernel_shape != self.kernel_shape(points.shape):
            raise ValueError(f"plan is for kernel shape {plan.kernel_shape}, not {self.kernel_shape(points.shape)}")
        b, n, c = points.values.shape
        total = sparse_sum(points.values.reshape(b * n, c), self.kernel(points.shape).reshape(c, -1), plan)
        return (total * (self.kernel_size**self.ndim / plan.count)).view(b, n, c)

    @jaxtyped(typechecker=beartype)
    def forward_dense(self, x: Float[Tensor, "b c *spatial"], *, chunk_rows: int | None = None) -> Float[Tensor, "b c *spatial"]:
        """The same integral with every grid point present, by a dense convolution (in slabs of ``chunk_rows``).

        Kernels of at least `FFT_MIN_TAPS` taps (far above the training resolution) are applied by FFT, in slabs at
        least one kernel tall (a slab also reads half a kernel of rows on each side).

        Args:
            x: a dense field on a grid of any shape; channels-last strides are kept and are fastest.
            chunk_rows: evaluate at most this many rows of the first spatial axis at a time (bounded memory).
        """
        if x.ndim != self.ndim + 2 or x.shape[1] != self.channels or 0 in x.shape:
            raise ValueError(f"x must be (b, {self.channels}, *spatial) with {self.ndim} non-empty axes, got {tuple(x.shape)}")
        if chunk_rows is not None and chunk_rows < 1:
            raise ValueError(f"chunk_rows must be >= 1 or None, got {chunk_rows}")
        shape = tuple(x.shape[2:])
        weight = self.kernel(shape).to(x.dtype)  # like the sparse path: the features set the precision
        kernel_shape = tuple(weight.shape[1:])
        pad = [k // 2 for k in kernel_shape]
        by_fft = math.prod(kernel_shape) >= FFT_MIN_TAPS
        rows = shape[0] if chunk_rows is None else max(1, chunk_rows, kernel_shape[0] if by_fft else 1)
        scale = self.kernel_size**self.ndim / dense_count(shape, kernel_shape, dtype=x.dtype, device=x.device)

        rest = [0, 0] * (self.ndim - 1)  # both paths pad the other axes themselves
        if by_fft:  # slabs of one size share the kernel's spectrum
            spectra = self._kernel_spectra(shape, x)
            def correlate(padded: Tensor, whole: bool) -> Tensor:
                return fft_correlate(padded, weight, spectra=spectra, zero_padded=(whole,) + (True,) * (self.ndim - 1))
        else:
            conv = DEPTHWISE_CONV[self.ndim]
            def correlate(padded: Tensor, whole: bool) -> Tensor:
                return conv(padded, weight.unsqueeze(1), padding=(pad[0] if whole else 0, *pad[1:]), groups=self.channels)

        def scaled(y: Tensor, s: Tensor) -> Tensor:
            if y.requires_grad:  # `out=` takes no autograd
                return y * s
            # In x's memory layout: channels-last features then need no copy afterwards.
            return torch.mul(y, s, out=empty_in_layout(y.shape, x))

        def slab(start: int, stop: int) -> Tensor:
            if start == 0 and stop == shape[0]:  # the whole grid: the first axis is zero-padded too, without a copy
                return scaled(correlate(x, True), scale)
            lo, hi = max(0, start - pad[0]), min(shape[0], stop + pad[0])
            padded = F.pad(x[:, :, lo:hi], rest + [pad[0] - (start - lo), pad[0] - (hi - stop)])
            return scaled(correlate(padded, False), scale[start:stop])

        return fill_chunks(slab, shape[0], rows, dim=2)


    def _kernel_spectra(self, shape: tuple[int, ...], x: Tensor) -> dict[tuple[int, ...], Tensor]:
        """Where `fft_correlate` keeps the kernel's transforms for a grid of ``shape``: kept across calls (a sampler
        evaluates the same weights at every step) while the weight is unchanged, no gradient is taken and one
        transform is at most `SPECTRUM_CACHE_BYTES`; else a fresh dict for this call only."""
        size = math.prod(_smooth_size(n) for n in shape) * self.channels * 8  # complex64, about half (rfft)
        if (torch.is_grad_enabled() and self.weight.requires_grad) or size / 2 > SPECTRUM_CACHE_BYTES:
            return {}
        key = (shape, x.dtype, x.device, self.weight.data_ptr(), self.weight._version)
        if self._spectra[0] != key:
            self._spectra = (key, {})
        return self._spectra[1]


SPECTRUM_CACHE_BYTES = 1 << 28
"""The largest kernel transform (256 MB) that `SparseDepthwiseConv.forward_dense` keeps between calls."""

FFT_MIN_TAPS = 2048
"""Kernels with at least this many taps (45^2 in 2-d) are applied by FFT in `SparseDepthwiseConv.forward_dense`.

Measured on 2 CPU cores, 32 channels (benchmarks/large_kernels.py, benchmarks/README.md): FFT / direct time 1.5-1.6
at 13^2 and 29^2 taps, 0.44 at 57^2, 0.21 at 113^2 and 0.05 at 225^2 (a 32 px model sampled at 1024 px).
"""


def _smooth_size(n: int) -> int:
    """The smallest 5-smooth integer >= n (a fast FFT length)."""
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


@jaxtyped(typechecker=beartype)
def fft_correlate(
    x: Float[Tensor, "b c *padded"], weight: Float[Tensor, "c *taps"], *, spectra: dict[tuple[int, ...], Tensor] | None = None,
    zero_padded: tuple[bool, ...] | None = None,
) -> Float[Tensor, "b c *valid"]:
    """Depthwise cross-correlation without padding (``conv{d}(x, weight[:, None], groups=c)``) by FFT, in float32 or 64.

    ``spectra``, if given, caches the kernel's transform per FFT size across calls with the same ``weight``. Axes
    flagged in ``zero_padded`` are instead read as padded with ``k // 2`` zeros on each side (odd ``k``), which needs
    no copy and a transform of ``n + k // 2`` rather than ``n + 2 (k // 2)`` points: the wrap-around of a circular
    correlation of that length lands on the zeros only. Those axes keep their length in the output.
    """
    ndim = weight.ndim - 1
    implicit = (False,) * ndim if zero_padded is None else tuple(zero_padded)
    taps = weight.shape[1:]
    if x.ndim != ndim + 2 or len(implicit) != ndim or any(k > n and not z for k, n, z in zip(taps, x.shape[2:], implicit)):
        raise ValueError(
            f"x {tuple(x.shape)} must be (b, c, *spatial) with every axis at least the kernel's {tuple(weight.shape)}"
        )
    if any(z and k % 2 == 0 for k, z in zip(taps, implicit)):
        raise ValueError(f"implicitly zero-padded axes need odd kernels, got {tuple(taps)}")
    dtype = x.dtype if x.dtype == torch.float64 else torch.float32
    size = [_smooth_size(n + k // 2 if z else n) for n, k, z in zip(x.shape[2:], taps, implicit)]
    axes, kernel_axes = tuple(range(2, ndim + 2)), tuple(range(1, ndim + 1))
    kernel = None if spectra is None else spectra.get(tuple(size))
    if kernel is None:
        kernel = torch.fft.rfftn(weight.to(dtype).flip(kernel_axes), s=size, dim=kernel_axes)
        if spectra is not None:
            spectra[tuple(size)] = kernel
    full = torch.fft.irfftn(torch.fft.rfftn(x.to(dtype), s=size, dim=axes) * kernel, s=size, dim=axes)
    # A circular convolution of length L >= n: entries k-1 .. n-1 saw no wrap-around and are the valid outputs; on an
    # implicitly padded axis output i is entry i + k // 2.
    valid = full[(..., *(slice(k // 2, k // 2 + n) if z else slice(k - 1, n) for k, n, z in zip(taps, x.shape[2:], implicit)))]
    return valid.to(x.dtype)


def dense_count(
    shape: tuple[int, ...], kernel_shape: tuple[int, ...], *, dtype: torch.dtype, device: torch.device
) -> Float[Tensor, "*spatial"]:
    """The number of grid points in each point's window when all are present: a product of per-axis counts."""
    count = torch.ones((), dtype=dtype, device=device)
    for size, k in zip(shape, kernel_shape):
        pos = torch.arange(size, dtype=dtype, device=device)
        axis = pos.clamp(max=k // 2) + (size - 1 - pos).clamp(max=k // 2) + 1
        count = count.unsqueeze(-1) * axis
    return count
