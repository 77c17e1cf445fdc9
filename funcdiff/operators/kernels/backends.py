"""Interchangeable backends for the unnormalised sparse depthwise sum ``sum_{w in N(u)} kappa(u - w) v(w)``.

A backend turns the points' lattice positions into a *plan* once (shared by every convolution of one forward
pass with the same kernel shape) and then evaluates the sum with custom autograd. The transpose of a
submanifold convolution is the same convolution with the mirrored kernel, so both backward passes reuse the
forward machinery; the weight gradient is summed on the point side, one offset at a time, which is far faster
on CPU than PyTorch's depthwise ``grad_weight`` (`benchmarks/sparse_conv.py`).

- ``dense``: scatter into a zero-padded channels-last grid, ``conv{1,2,3}d(groups=c)``, gather back. Memory
  grows with the grid; the fast path for full and moderately sparse grids.
- ``gather``: a kernel map from a `LatticeHash`, then one ``index_select`` + ``addcmul_`` per tap. Memory
  grows with the points only.
- ``native``: the same kernel map and sum in a small C++ extension (`funcdiff.operators.kernels.native`), compiled
  once per environment (on first use, or ahead by `funcdiff.operators.kernels.native.build`); memory grows with the
  points only. Listed only when it compiles.
- ``triton``: the native kernel's map and sums as Triton kernels (`funcdiff.operators.kernels.triton_sparse`) for CUDA,
  float16/bfloat16/float32/float64 with float32 accumulation (float64 for float64). Listed only when Triton
  imports and a CUDA device is present, or when ``TRITON_INTERPRET=1`` runs it in Triton's CPU interpreter
  (how the tests check it without a GPU).

A ``torchsparse`` adapter (CUDA) is not implemented: the depthwise kernel lives only in the fork used by the
official code (docs/reference-differences.md §2, §7), which cannot be installed here.

``"auto"`` honours the environment variable ``FUNCDIFF_SPARSE_BACKEND``, then prefers ``native`` for float32/64 on
CPU (built once per environment in 30-60 s on 2 cores; even at 32 px the operator step is then about 1.6x faster),
then, on CUDA, ``triton`` for plans under half full (crowded plans use ``dense``, whose full-grid PyTorch convolution
is then the faster one, as ``forward_dense`` always does), then ``dense`` for small grids and densities of at least
1/16, else ``gather``. The CUDA thresholds are not yet measured on a GPU.
"""

import functools
import importlib.util
import logging
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import Literal

import torch
import torch.nn.functional as F
from torch.autograd import Function

from funcdiff._typing import Float, Int, Tensor
from funcdiff.operators.kernels import native
from funcdiff.operators.kernels.lattice import kernel_map, window_offsets
from funcdiff.points import check_index, check_shape, flat_index

logger = logging.getLogger(__name__)

BackendName = Literal["auto", "dense", "gather", "native", "triton"]

DEPTHWISE_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
"""PyTorch's convolution for each spatial dimension (used with ``groups = channels``)."""
_POOL = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


@dataclass(frozen=True, eq=False)
class ConvPlan:
    """Everything a backend needs about one set of points and one kernel shape.

    Attributes:
        backend: the backend that built the plan and must evaluate it.
        kernel_shape: the (odd) number of taps per axis.
        count: the number of present points in each point's window (itself included), rows over the batch.
        gather_index: ``dense``: row of each point in the unpadded grid; ``gather``: the kernel map ``(taps, m)`` with
            ``m`` for absent neighbours; ``native`` and ``triton``: the kernel map ``(m, taps)``, int32, with -1 for
            absent ones.
        scatter_index: ``dense``: row of each point in the zero-padded grid; unused by ``gather``.
        grid_shape: ``dense``: ``(batch, *padded spatial)``; unused by ``gather``.
        crowded: ``dense`` with at least half of the cells present: PyTorch's own convolution autograd is then faster
            than the point-side weight gradient (benchmarks/README.md), so it is used.
    """

    backend: str
    kernel_shape: tuple[int, ...]
    count: Float[Tensor, "m 1"]
    gather_index: Tensor
    scatter_index: Tensor | None = None
    grid_shape: tuple[int, ...] = ()
    crowded: bool = False


def offset_weight_grad(source: Float[Tensor, "r c"], grad: Float[Tensor, "m c"], rows: Iterable[Tensor]) -> Float[Tensor, "c k"]:
    """``gw[c, o] = sum_p grad[p, c] source[rows_o[p], c]``: the weight gradient, one tap at a time into one buffer."""
    buf = torch.empty_like(grad)
    taps = [torch.index_select(source, 0, row, out=buf).mul_(grad).sum(0) for row in rows]
    return torch.stack(taps, dim=1)


def _dense_plan(
    index: Int[Tensor, "b n d"], shape: tuple[int, ...], kernel_shape: tuple[int, ...], dtype: torch.dtype
) -> ConvPlan:
    batch = index.shape[0]
    padded = tuple(s + k - 1 for s, k in zip(shape, kernel_shape))
    rows = torch.arange(batch, device=index.device).unsqueeze(1)
    corner = (flat_index(index.long(), padded) + rows * math.prod(padded)).reshape(-1)
    out_rows = (flat_index(index.long(), shape) + rows * math.prod(shape)).reshape(-1)
    centre = corner + sum(k // 2 * math.prod(padded[a + 1 :]) for a, k in enumerate(kernel_shape))
    # Counted in float32 (exact for these integers; CPU pooling lacks half precision in 3-d), then cast.
    mask = torch.zeros(batch * math.prod(padded), 1, device=index.device).index_fill_(0, centre, 1.0)
    ndim = len(shape)
    box = _POOL[ndim](mask.view(batch, *padded, 1).movedim(-1, 1), kernel_shape, stride=1)
    count = (box * math.prod(kernel_shape)).round().movedim(1, -1).reshape(-1, 1).index_select(0, out_rows).to(dtype)
    return ConvPlan("dense", kernel_shape, count, out_rows, centre, (batch, *padded), _crowded(index.shape[1], shape))


def _crowded(points: int, shape: tuple[int, ...]) -> bool:
    """At least half of the cells present: PyTorch's full-grid convolution is then the faster way (see `ConvPlan`)."""
    return 2 * points >= math.prod(shape)


def _scatter_padded(x: Float[Tensor, "m c"], plan: ConvPlan) -> Float[Tensor, "r c"]:
    return x.new_zeros(math.prod(plan.grid_shape), x.shape[1]).index_copy(0, plan.scatter_index, x)


def _dense_apply(x: Float[Tensor, "m c"], weight: Float[Tensor, "c k"], plan: ConvPlan) -> Float[Tensor, "m c"]:
    c = x.shape[1]
    padded = plan.grid_shape[1:]
    field = _scatter_padded(x, plan).view(*plan.grid_shape, c).movedim(-1, 1)
    if len(padded) == 2:
        field = field.contiguous(memory_format=torch.channels_last)
    out = DEPTHWISE_CONV[len(padded)](field, weight.reshape(c, 1, *plan.kernel_shape), groups=c)
    return out.movedim(1, -1).reshape(-1, c).index_select(0, plan.gather_index)


def _padded_rows(plan: ConvPlan) -> list[Tensor]:
    padded = plan.grid_shape[1:]
    strides = torch.tensor([math.prod(padded[a + 1 :]) for a in range(len(padded))], device=plan.scatter_index.device)
    return [plan.scatter_index + int(step) for step in window_offsets(plan.kernel_shape, device=strides.device) @ strides]


def _gather_apply(x: Float[Tensor, "m c"], weight: Float[Tensor, "c k"], plan: ConvPlan) -> Float[Tensor, "m c"]:
    padded = torch.cat([x, x.new_zeros(1, x.shape[1])])
    out = torch.zeros_like(x)
    buf = torch.empty_like(x)
    for tap, rows in enumerate(plan.gather_index):
        out.addcmul_(torch.index_select(padded, 0, rows, out=buf), weight[:, tap])
    return out


def _dense_weight_grad(x: Tensor, grad: Tensor, plan: ConvPlan) -> Tensor:
    return offset_weight_grad(_scatter_padded(x, plan), grad, _padded_rows(plan))


def _gather_weight_grad(x: Tensor, grad: Tensor, plan: ConvPlan) -> Tensor:
    return offset_weight_grad(torch.cat([x, x.new_zeros(1, x.shape[1])]), grad, plan.gather_index)


@functools.cache
def _triton() -> ModuleType | None:
    """`funcdiff.operators.kernels.triton_sparse` when Triton is installed and can run (CUDA, or its interpreter), else None."""
    if importlib.util.find_spec("triton") is None:
        return None
    # Triton's own reading of the flag; checked first so that CPU-only machines never pay for importing Triton.
    if not (torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET", "").lower() in ("1", "true", "on")):
        return None
    try:
        from funcdiff.operators.kernels import triton_sparse
    except Exception as error:  # noqa: BLE001 - a broken Triton install means: use the other backends
        logger.warning("Triton sparse convolution kernels unavailable (%s)", error)
        return None
    return triton_sparse


_MAP_KERNELS = {"native": native.load, "triton": _triton}
"""The modules whose ``sparse_sum(x, w_kc, nbr)`` and ``weight_grad(x, g, nbr)`` evaluate an ``(m, taps)`` int32 kernel map."""


def _map_apply(x: Tensor, weight: Tensor, plan: ConvPlan) -> Tensor:
    return _MAP_KERNELS[plan.backend]().sparse_sum(x, weight.t().contiguous(), plan.gather_index)


def _map_weight_grad(x: Tensor, grad: Tensor, plan: ConvPlan) -> Tensor:
    return _MAP_KERNELS[plan.backend]().weight_grad(x, grad, plan.gather_index).t()


class _SparseSum(Function):
    """Autograd for the unnormalised sum; the backward uses the mirrored kernel and the point-side weight gradient."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, plan: ConvPlan) -> Tensor:  # noqa: ANN001
        ctx.save_for_backward(x, weight)
        ctx.plan = plan
        return _APPLY[plan.backend](x, weight, plan)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None, None]:  # noqa: ANN001
        x, weight = ctx.saved_tensors
        plan: ConvPlan = ctx.plan
        grad = grad.contiguous()
        grad_x = _APPLY[plan.backend](grad, weight.flip(1), plan) if ctx.needs_input_grad[0] else None
        grad_w = _WEIGHT_GRAD[plan.backend](x, grad, plan) if ctx.needs_input_grad[1] else None
        return grad_x, grad_w, None


_APPLY = {"dense": _dense_apply, "gather": _gather_apply, "native": _map_apply, "triton": _map_apply}
_WEIGHT_GRAD = {
    "dense": _dense_weight_grad, "gather": _gather_weight_grad, "native": _map_weight_grad, "triton": _map_weight_grad
}


def _gather_plan(
    index: Int[Tensor, "b n d"], shape: tuple[int, ...], kernel_shape: tuple[int, ...], dtype: torch.dtype
) -> ConvPlan:
    nbr = kernel_map(index, shape, kernel_shape)
    count = (nbr < nbr.shape[1]).sum(0, dtype=dtype).unsqueeze(1)
    return ConvPlan("gather", kernel_shape, count, nbr)


def _native_plan(
    index: Int[Tensor, "b n d"], shape: tuple[int, ...], kernel_shape: tuple[int, ...], dtype: torch.dtype
) -> ConvPlan:
    if index.device.type != "cpu" or dtype not in (torch.float32, torch.float64) or native.load() is None:
        raise ValueError(
            f"backend 'native' needs float32/64 CPU tensors and a compiled extension, got {dtype} on {index.device.type}"
        )
    offsets = window_offsets(kernel_shape)
    nbr = native.load().kernel_map(index.long().contiguous(), offsets, list(shape))
    return ConvPlan("native", kernel_shape, (nbr >= 0).sum(1, dtype=dtype).unsqueeze(1), nbr)


def _triton_plan(
    index: Int[Tensor, "b n d"], shape: tuple[int, ...], kernel_shape: tuple[int, ...], dtype: torch.dtype
) -> ConvPlan:
    kernels = _triton()
    if kernels is None or (index.device.type == "cpu" and not kernels.interpreted()):
        reason = "triton is not installed or has no CUDA device" if kernels is None else "got CPU tensors"
        raise ValueError(f"backend 'triton' needs triton and CUDA tensors (CPU ones only under TRITON_INTERPRET=1): {reason}")
    if dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        raise ValueError(f"backend 'triton' needs float16, bfloat16, float32 or float64, got {dtype}")
    nbr = kernel_map(index, shape, kernel_shape)  # (taps, m), m where absent: the native layout is (m, taps), -1
    nbr = torch.where(nbr == nbr.shape[1], -1, nbr).t().to(torch.int32).contiguous()
    return ConvPlan("triton", kernel_shape, (nbr >= 0).sum(1, dtype=dtype).unsqueeze(1), nbr)


def available_backends(device: torch.device | str | None = None) -> tuple[str, ...]:
    """The backends usable here, on ``device`` if given, else on some device (the first call builds ``native``).

    ``native`` is listed when its extension compiles (CPU only); ``triton`` when Triton imports and can run on the
    device: CUDA, or the CPU under ``TRITON_INTERPRET=1``.
    """
    kind = None if device is None else torch.device(device).type
    names = []
    for name in _PLAN:
        if name == "native" and (kind not in (None, "cpu") or native.load() is None):
            continue
        if name == "triton" and ((kernels := _triton()) is None or (kind == "cpu" and not kernels.interpreted())):
            continue
        names.append(name)
    return tuple(names)


def choose_backend(
    batch: int, points: int, shape: tuple[int, ...], *, taps: int, device: torch.device, dtype: torch.dtype
) -> str:
    """Automatic choice (see the module docstring; measurements in benchmarks/README.md).

    Kernel maps hold one index per point and tap, so when they would pass 2^28 entries (huge resampled kernels on
    many points, e.g. sampling far above the training resolution) the ``dense`` backend is used instead.
    """
    forced = os.environ.get("FUNCDIFF_SPARSE_BACKEND")
    if forced:
        return forced
    small_map = batch * points * taps <= 1 << 28
    native_ok = device.type == "cpu" and dtype in (torch.float32, torch.float64)
    if small_map and native_ok and native.load() is not None:
        return "native"
    cells = math.prod(shape)
    if small_map and device.type == "cuda" and not _crowded(points, shape) and _triton() is not None:
        return "triton"
    return "dense" if not small_map or batch * cells <= 1 << 16 or points * 16 >= cells else "gather"


def make_plan(
    index: Int[Tensor, "b n d"], shape: tuple[int, ...], kernel_shape: tuple[int, ...], *, backend: str, dtype: torch.dtype
) -> ConvPlan:
    """Build the plan of ``backend`` (``"auto"`` resolved by `choose_backend`) for points at ``index`` on ``shape``.

    Raises:
        ValueError: an unknown backend, a kernel shape that is not odd per axis, or points off the grid or absent.
        TypeError: an index that is not int32/64, or a ``dtype`` that is not floating.
    """
    check_shape(shape)
    if len(kernel_shape) != len(shape) or any(k < 1 or k % 2 == 0 for k in kernel_shape):
        raise ValueError(f"kernel_shape must be positive and odd on each of the {len(shape)} axes of shape, got {kernel_shape}")
    if not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating dtype, got {dtype}")
    if not isinstance(index, Tensor) or index.dtype not in (torch.int32, torch.int64):
        raise TypeError(f"index must be an int32 or int64 tensor, got {getattr(index, 'dtype', type(index).__name__)}")
    if index.ndim != 3 or index.shape[-1] != len(shape) or 0 in index.shape[:2]:
        raise ValueError(f"index must be (b, n, {len(shape)}) with b, n >= 1 for a grid of {shape}, got {tuple(index.shape)}")
    check_index(index, shape)
    if backend == "auto":
        taps = math.prod(kernel_shape)
        backend = choose_backend(index.shape[0], index.shape[1], shape, taps=taps, device=index.device, dtype=dtype)
    if backend == "torchsparse":
        raise ValueError(
            "backend 'torchsparse' is not available: its depthwise convolution exists only in the CUDA fork used by "
            "the official code; use 'auto', 'triton', 'native', 'dense' or 'gather'"
        )
    if backend not in _PLAN:
        raise ValueError(f"backend must be 'auto' or one of {tuple(_PLAN)}, got {backend!r}")
    return _PLAN[backend](index, shape, kernel_shape, dtype)


def sparse_sum(x: Float[Tensor, "m c"], weight: Float[Tensor, "c k"], plan: ConvPlan) -> Float[Tensor, "m c"]:
    """``sum_{o present} weight[:, o] x[neighbour_o]`` for every point, by the plan's backend.

    The weight is cast to the features' dtype (autocast); the native kernel computes half precision in float32, the
    triton kernels read it as it is and accumulate in float32.
    """
    taps = math.prod(plan.kernel_shape)
    if x.ndim != 2 or x.shape[0] != plan.count.shape[0] or x.shape[1] < 1 or weight.shape != (x.shape[1], taps):
        raise ValueError(
            f"x must be ({plan.count.shape[0]}, c >= 1) for this plan and weight (c, {taps}), "
            f"got {tuple(x.shape)} and {tuple(weight.shape)}"
        )
    if not (x.is_floating_point() and weight.is_floating_point()):
        raise TypeError(f"x and weight must be floating tensors, got {x.dtype} and {weight.dtype}")
    if plan.backend == "native" and x.dtype not in (torch.float32, torch.float64):
        return sparse_sum(x.float(), weight.float(), plan).to(x.dtype)
    if plan.crowded:
        return _dense_apply(x, weight.to(x.dtype), plan)
    return _SparseSum.apply(x.contiguous(), weight.to(x.dtype).contiguous(), plan)


_PLAN = {"dense": _dense_plan, "gather": _gather_plan, "native": _native_plan, "triton": _triton_plan}
