"""Triton kernels for the sparse depthwise sum over a kernel map: the ``triton`` backend of `funcdiff.operators.kernels.backends`.

The plan is the one the ``native`` CPU kernel uses: ``nbr`` ``(m, k)`` int32, the row of every point's neighbour
at each tap or -1 where it is absent. `sparse_sum` and `weight_grad` have the signatures of the native extension's
functions, so the backend's autograd (input gradient = the same sum with the mirrored kernel over the same map,
weight gradient summed on the point side) is shared with it.

- `sparse_sum`: one program per block of points and block of channels; it walks the taps, gathers each
  neighbour's channel row (contiguous, so the loads are coalesced) and accumulates in registers.
- `weight_grad`: one program per (slice of points, tap, block of channels); each writes its partial sum, and the
  slices are added afterwards in PyTorch. No atomics, so the result is deterministic.

Inputs may be float16, bfloat16, float32 or float64; sums are accumulated in float32 (float64 for float64) and
rounded once to the inputs' dtype. Importing this module imports Triton, and ``TRITON_INTERPRET=1`` must be set
before that for the kernels to run in Triton's CPU interpreter (how the tests check them without a GPU).
Block sizes are defaults, not tuned on a GPU (none was available when this was written).
"""

from typing import no_type_check

import torch
import triton
import triton.language as tl
from triton.runtime.interpreter import InterpretedFunction

from funcdiff._typing import Float, Int, Tensor

SPLIT_PROGRAMS = 2048
"""`weight_grad` cuts the points into slices so that about this many programs run (enough to fill a large GPU)."""

_OPTIONS = {"enable_fp_fusion": True}
"""Fused multiply-adds, stated rather than left to Triton's default (which warns that it will change in 3.10)."""


# ``no_type_check`` keeps jaxtyping's import hook (the tests') from wrapping the kernels: Triton compiles their own
# source against their own module's globals.
@triton.jit
@no_type_check
def _sum_kernel(x_ptr, w_ptr, nbr_ptr, out_ptr, m, c, k, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr, ACC: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
    cols = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    row_ok, col_ok = rows < m, cols < c
    rows64 = rows.to(tl.int64)
    acc = tl.zeros((BLOCK_P, BLOCK_C), dtype=ACC)
    for tap in range(0, k):
        q = tl.load(nbr_ptr + rows64 * k + tap, mask=row_ok, other=-1).to(tl.int64)
        w = tl.load(w_ptr + tap * c + cols, mask=col_ok, other=0.0).to(ACC)
        mask = (q >= 0)[:, None] & col_ok[None, :]
        v = tl.load(x_ptr + q[:, None] * c + cols[None, :], mask=mask, other=0.0).to(ACC)
        acc += v * w[None, :]
    out_mask = row_ok[:, None] & col_ok[None, :]
    tl.store(out_ptr + rows64[:, None] * c + cols[None, :], acc.to(out_ptr.dtype.element_ty), mask=out_mask)


@triton.jit
@no_type_check
def _weight_grad_kernel(
    x_ptr, g_ptr, nbr_ptr, part_ptr, m, c, k, rows_per_slice, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr, ACC: tl.constexpr
):
    piece, tap = tl.program_id(0), tl.program_id(1)
    cols = tl.program_id(2) * BLOCK_C + tl.arange(0, BLOCK_C)
    col_ok = cols < c
    acc = tl.zeros((BLOCK_P, BLOCK_C), dtype=ACC)  # reduced over the points once, at the end
    start = piece * rows_per_slice
    for offset in range(0, rows_per_slice, BLOCK_P):
        rows = start + offset + tl.arange(0, BLOCK_P)
        row_ok = rows < m  # rows_per_slice is a multiple of BLOCK_P, so a step never crosses into the next slice
        rows64 = rows.to(tl.int64)
        q = tl.load(nbr_ptr + rows64 * k + tap, mask=row_ok, other=-1).to(tl.int64)
        mask = (q >= 0)[:, None] & col_ok[None, :]
        v = tl.load(x_ptr + q[:, None] * c + cols[None, :], mask=mask, other=0.0).to(ACC)
        g = tl.load(g_ptr + rows64[:, None] * c + cols[None, :], mask=mask, other=0.0).to(ACC)
        acc += v * g
    tl.store(part_ptr + (piece.to(tl.int64) * k + tap) * c + cols, tl.sum(acc, axis=0), mask=col_ok)


def interpreted() -> bool:
    """Whether the kernels run in Triton's CPU interpreter (``TRITON_INTERPRET=1`` was set when this module was imported)."""
    return isinstance(_sum_kernel, InterpretedFunction)


def _accumulator(dtype: torch.dtype) -> tl.dtype:
    return tl.float64 if dtype == torch.float64 else tl.float32


def _check(x: Tensor, nbr: Tensor, other: Tensor, other_name: str, other_shape: tuple[int, ...]) -> None:
    """The kernels read raw pointers: shapes, dtypes, devices and layout are checked here, at their boundary."""
    if x.ndim != 2 or nbr.ndim != 2 or nbr.shape[0] != x.shape[0] or nbr.dtype != torch.int32:
        raise ValueError(f"x must be (m, c) and nbr (m, k) int32, got {tuple(x.shape)} and {tuple(nbr.shape)} {nbr.dtype}")
    if tuple(other.shape) != other_shape or other.dtype != x.dtype:
        raise ValueError(f"{other_name} must be {other_shape} of dtype {x.dtype}, got {tuple(other.shape)} {other.dtype}")
    if x.dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        raise ValueError(f"x must be float16, bfloat16, float32 or float64, got {x.dtype}")
    if not all(t.is_contiguous() for t in (x, nbr, other)):
        raise ValueError(f"x, nbr and {other_name} must be contiguous")
    if len({t.device for t in (x, nbr, other)}) != 1 or (x.device.type == "cpu" and not interpreted()):
        raise ValueError(
            f"x, nbr and {other_name} must share one CUDA device (CPU tensors only under TRITON_INTERPRET=1), "
            f"got {x.device}, {nbr.device} and {other.device}"
        )


def _blocks(c: int, block_p: int, block_c: int | None) -> int:
    """The channel block (default: c rounded up to a power of two, at most 64), after checking both block sizes."""
    block_c = block_c or min(64, triton.next_power_of_2(c))
    if any(b < 1 or b & (b - 1) for b in (block_p, block_c)):
        raise ValueError(f"block_p and block_c must be powers of two, got {block_p} and {block_c}")
    return block_c


def sparse_sum(
    x: Float[Tensor, "m c"], w_kc: Float[Tensor, "k c"], nbr: Int[Tensor, "m k"], *, block_p: int = 32, block_c: int | None = None
) -> Float[Tensor, "m c"]:
    """``out[p] = sum_t w_kc[t] * x[nbr[p, t]]`` over the present neighbours (``nbr >= 0``), accumulated in float32.

    Args:
        x: the points' features, rows over the batch.
        w_kc: the taps, tap-major.
        nbr: the kernel map, int32, -1 where a neighbour is absent.
        block_p: points per program (a power of two).
        block_c: channels per program (a power of two; default: c rounded up, at most 64).

    Raises:
        ValueError: mismatched shapes or dtypes, non-contiguous tensors, or CPU tensors outside the interpreter.
    """
    _check(x, nbr, w_kc, "w_kc", (nbr.shape[1], x.shape[1]))
    m, c = x.shape
    block_c = _blocks(c, block_p, block_c)
    out = torch.empty_like(x)
    if m:
        grid = (triton.cdiv(m, block_p), triton.cdiv(c, block_c))
        acc = _accumulator(x.dtype)
        _sum_kernel[grid](x, w_kc, nbr, out, m, c, nbr.shape[1], BLOCK_P=block_p, BLOCK_C=block_c, ACC=acc, **_OPTIONS)
    return out


def weight_grad(
    x: Float[Tensor, "m c"],
    g: Float[Tensor, "m c"],
    nbr: Int[Tensor, "m k"],
    *,
    block_p: int = 32,
    block_c: int | None = None,
    slices: int | None = None,
) -> Float[Tensor, "k c"]:
    """``gw[t] = sum_p g[p] * x[nbr[p, t]]`` over the present neighbours, accumulated in float32, in the dtype of x.

    Args:
        x: the features the forward sum read.
        g: the gradient of the forward sum's output.
        nbr: the kernel map, int32, -1 where a neighbour is absent.
        block_p: points per loop step (a power of two).
        block_c: channels per program (a power of two; default: c rounded up, at most 64).
        slices: slices of the points summed by separate programs (default: enough for `SPLIT_PROGRAMS` programs).

    Raises:
        ValueError: mismatched shapes or dtypes, non-contiguous tensors, or CPU tensors outside the interpreter.
    """
    _check(x, nbr, g, "g", tuple(x.shape))
    (m, c), k = x.shape, nbr.shape[1]
    block_c = _blocks(c, block_p, block_c)
    channel_blocks = triton.cdiv(c, block_c)
    if slices is None:
        slices = max(1, SPLIT_PROGRAMS // (k * channel_blocks))
    rows_per_slice = triton.cdiv(triton.cdiv(max(m, 1), slices), block_p) * block_p
    slices = triton.cdiv(max(m, 1), rows_per_slice)
    acc_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    parts = torch.empty(slices, k, c, dtype=acc_dtype, device=x.device)
    _weight_grad_kernel[(slices, k, channel_blocks)](
        x, g, nbr, parts, m, c, k, rows_per_slice, BLOCK_P=block_p, BLOCK_C=block_c, ACC=_accumulator(x.dtype), **_OPTIONS
    )
    return parts.sum(0).to(x.dtype)
