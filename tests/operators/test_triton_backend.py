"""The ``triton`` backend against ``gather`` and ``dense``: values, both gradients, counts, half precision.

Triton decides when its kernels are defined (on import) whether they run in its CPU interpreter, which needs
``TRITON_INTERPRET=1`` set beforehand. So without CUDA, `test_suite_runs_in_the_interpreter` runs this file again
in a child process with the flag, and the comparison tests skip in the parent (they say so). With CUDA they also
run directly on the GPU. Sizes are tiny: the interpreter runs every program in Python.
"""

import importlib.util
import os
from pathlib import Path

import pytest
import torch

from funcdiff.operators.kernels import backends
from funcdiff.operators.kernels.backends import available_backends, choose_backend, make_plan, sparse_sum
from funcdiff.operators.layers.conv import SparseDepthwiseConv
from funcdiff.points import Points, unflatten_index
from tests.child_run import run_pytest_child

HAS_TRITON = importlib.util.find_spec("triton") is not None
INTERPRETED = os.environ.get("TRITON_INTERPRET", "").lower() in ("1", "true", "on")
DEVICE = torch.device("cpu" if INTERPRETED else "cuda")
kernels_run = pytest.mark.skipif(
    not HAS_TRITON or not (INTERPRETED or torch.cuda.is_available()),
    reason="no CUDA: run with TRITON_INTERPRET=1 by test_suite_runs_in_the_interpreter",
)


def random_points(shape: tuple[int, ...], n: int, channels: int, seed: int, *, empty_rows: int = 0) -> Points:
    """Two examples of ``n`` random points each, in random order, always with the grid's first and last cell.

    Apart from the first cell, the first ``empty_rows`` rows (positions on the first axis) hold no point, so gaps
    meet the border.
    """
    gen = torch.Generator().manual_seed(seed)
    cells = torch.tensor(shape).prod().item()
    per_row = cells // shape[0]
    rows = []
    for _ in range(2):
        inner = torch.arange(1 + empty_rows * per_row, cells - 1)
        chosen = inner[torch.randperm(inner.numel(), generator=gen)[: n - 2]]
        flat = torch.cat([torch.tensor([0, cells - 1]), chosen])
        rows.append(flat[torch.randperm(n, generator=gen)])
    index = unflatten_index(torch.stack(rows), shape)
    values = torch.randn(2, n, channels, generator=gen)
    return Points(values.to(DEVICE), index.to(DEVICE), shape)


def run_backend(conv: SparseDepthwiseConv, points: Points, grad: torch.Tensor, backend: str) -> tuple[torch.Tensor, ...]:
    """Output, input gradient and weight gradient of ``conv`` on ``points`` through ``backend``."""
    conv.backend = backend
    conv.zero_grad()
    values = points.values.clone().requires_grad_()
    out = conv(Points(values, points.index, points.shape))
    out.backward(grad)
    return out.detach(), values.grad, conv.weight.grad.clone()


# (shape, kernel_size, reference_shape, points per example, empty leading rows): 1-d and 2-d, kernels of 3 and 7
# taps, resampled kernels (reference shape smaller than the grid: 3 -> 5 and 7 -> 13 taps), one 3-d grid.
CASES = [
    ((23,), 3, (23,), 9, 3),
    ((40,), 7, (20,), 14, 5),
    ((9, 7), 3, (9, 7), 20, 2),
    ((8, 8), 7, (8, 8), 16, 1),
    ((12, 10), 3, (6, 5), 30, 3),
    ((4, 5, 3), 3, (4, 5, 3), 15, 1),
]


@kernels_run
@pytest.mark.parametrize(("shape", "kernel_size", "reference", "n", "empty_rows"), CASES)
def test_values_and_gradients_match_gather_and_dense(
    shape: tuple[int, ...], kernel_size: int, reference: tuple[int, ...], n: int, empty_rows: int
) -> None:
    """The count-normalised output, the input gradient and the weight gradient agree with both reference backends."""
    points = random_points(shape, n, 3, seed=len(shape) * 100 + n, empty_rows=empty_rows)
    conv = SparseDepthwiseConv(3, kernel_size, ndim=len(shape), reference_shape=reference).to(DEVICE)
    grad = torch.randn(points.values.shape, generator=torch.Generator().manual_seed(1)).to(DEVICE)
    got = run_backend(conv, points, grad, "triton")
    for other in ("gather", "dense"):
        for name, actual, expected in zip(("out", "grad_x", "grad_w"), got, run_backend(conv, points, grad, other)):
            torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5, msg=lambda m: f"{name} vs {other}: {m}")


@kernels_run
@pytest.mark.parametrize(("shape", "kernel_shape"), [((23,), (7,)), ((12, 10), (5, 5)), ((8, 8), (7, 7))])
def test_plan_is_the_kernel_map_with_its_counts(shape: tuple[int, ...], kernel_shape: tuple[int, ...]) -> None:
    """The plan holds the gather backend's map as (points, taps) int32 with -1, and the dense backend's counts."""
    points = random_points(shape, 12, 1, seed=3, empty_rows=1)
    plan = make_plan(points.index, shape, kernel_shape, backend="triton", dtype=torch.float32)
    gather = make_plan(points.index, shape, kernel_shape, backend="gather", dtype=torch.float32)
    dense = make_plan(points.index, shape, kernel_shape, backend="dense", dtype=torch.float32)
    m = gather.gather_index.shape[1]
    assert plan.gather_index.dtype == torch.int32 and plan.gather_index.is_contiguous()
    assert torch.equal(plan.gather_index.t().long(), torch.where(gather.gather_index == m, -1, gather.gather_index))
    assert torch.equal(plan.count, gather.count) and torch.equal(plan.count, dense.count)


@kernels_run
def test_gradients_pass_gradcheck_in_float64() -> None:
    """Both backward passes (mirrored kernel over the same map, point-side weight sum) are the forward's derivatives."""
    points = random_points((7, 6), 10, 2, seed=5, empty_rows=1)
    plan = make_plan(points.index, points.shape, (3, 3), backend="triton", dtype=torch.float64)
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(20, 2, generator=gen, dtype=torch.float64).to(DEVICE).requires_grad_()
    w = torch.randn(2, 9, generator=gen, dtype=torch.float64).to(DEVICE).requires_grad_()
    assert torch.autograd.gradcheck(lambda x, w: sparse_sum(x, w, plan), (x, w), fast_mode=True)


# One rounding to the dtype: half an ulp, except that Triton's interpreter truncates float32 to bfloat16 (its
# ``cast_impl`` passes no rounding mode), which costs a whole ulp; compiled kernels round to nearest even.
BFLOAT16_UNIT = 2.0**-7 if INTERPRETED else 2.0**-8


@kernels_run
@pytest.mark.parametrize(("dtype", "unit"), [(torch.bfloat16, BFLOAT16_UNIT), (torch.float16, 2.0**-11)])
def test_half_precision_is_accumulated_in_float32(dtype: torch.dtype, unit: float) -> None:
    """Half-precision inputs give the exact sum of their values rounded once: far closer than half-precision sums.

    The bound is one rounding to ``dtype`` plus float32 accumulation, ``unit |exact| + 1e-5 sum |terms|``; summing 49
    taps in half precision misses it (the terms' rounding errors reach ``unit sum |terms|``).
    """
    points = random_points((12, 12), 60, 8, seed=7)
    plan = make_plan(points.index, points.shape, (7, 7), backend="triton", dtype=dtype)
    exact = make_plan(points.index, points.shape, (7, 7), backend="gather", dtype=torch.float64)
    gen = torch.Generator().manual_seed(4)
    x = points.values.reshape(-1, 8).to(dtype).requires_grad_()
    w = torch.randn(8, 49, generator=gen).to(DEVICE, dtype)
    g = torch.randn(x.shape, generator=gen).to(DEVICE, dtype)
    w.requires_grad_()
    out = sparse_sum(x, w, plan)
    out.backward(g)
    x64, w64, xa, wa = (t.detach().double().requires_grad_() for t in (x, w, x.abs(), w.abs()))
    ref = sparse_sum(x64, w64, exact)
    ref.backward(g.double())
    magnitude = sparse_sum(xa, wa, exact)  # sums of |terms|, and their gradients at |g|
    magnitude.backward(g.double().abs())
    for name, actual, expected, size in [
        ("out", out, ref, magnitude), ("grad_x", x.grad, x64.grad, xa.grad), ("grad_w", w.grad, w64.grad, wa.grad)
    ]:
        assert actual.dtype == dtype, name
        error = (actual.double() - expected).abs()
        assert (error <= unit * expected.abs() + 1e-5 * size).all(), f"{name}: worst error {error.max().item():.3g}"


@kernels_run
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kernels_on_random_maps_with_ragged_blocks(dtype: torch.dtype) -> None:
    """Arbitrary maps (any rows, -1 anywhere) with blocks that do not divide the points, channels or slices."""
    from funcdiff.operators.kernels import triton_sparse

    gen = torch.Generator().manual_seed(6)
    m, c, k = 37, 5, 9
    x, g = (torch.randn(m, c, generator=gen, dtype=dtype).to(DEVICE) for _ in range(2))
    w = torch.randn(k, c, generator=gen, dtype=dtype).to(DEVICE)
    nbr = torch.randint(-1, m, (m, k), generator=gen, dtype=torch.int32).to(DEVICE)
    rows = torch.where(nbr < 0, m, nbr).long()
    padded = torch.cat([x, x.new_zeros(1, c)])[rows]  # (m, k, c), zero rows where absent
    out = triton_sparse.sparse_sum(x, w, nbr, block_p=4, block_c=2)
    gw = triton_sparse.weight_grad(x, g, nbr, block_p=4, block_c=2, slices=3)
    torch.testing.assert_close(out, (padded * w).sum(1))
    torch.testing.assert_close(gw, (padded * g[:, None]).sum(0))


@kernels_run
def test_kernels_refuse_bad_inputs() -> None:
    """Shapes, dtypes and layout are checked before any pointer is read."""
    from funcdiff.operators.kernels import triton_sparse

    x = torch.randn(4, 3, device=DEVICE)
    nbr = torch.zeros(4, 2, dtype=torch.int32, device=DEVICE)
    with pytest.raises(ValueError, match="int32"):
        triton_sparse.sparse_sum(x, torch.randn(2, 3, device=DEVICE), nbr.long())
    with pytest.raises(ValueError, match="w_kc must be"):
        triton_sparse.sparse_sum(x, torch.randn(2, 3, device=DEVICE, dtype=torch.float64), nbr)
    with pytest.raises(ValueError, match="contiguous"):
        triton_sparse.weight_grad(x, torch.randn(3, 4, device=DEVICE).t(), nbr)
    with pytest.raises(ValueError, match="powers of two"):
        triton_sparse.sparse_sum(x, torch.randn(2, 3, device=DEVICE), nbr, block_p=24)


@kernels_run
def test_auto_picks_triton_on_cuda_unless_crowded() -> None:
    """``auto`` on CUDA: triton below half of the cells, dense (PyTorch's convolution) from half on."""
    cuda = torch.device("cuda")
    assert choose_backend(8, 256 * 256 // 4, (256, 256), taps=49, device=cuda, dtype=torch.bfloat16) == "triton"
    assert choose_backend(8, 256 * 256 // 2, (256, 256), taps=49, device=cuda, dtype=torch.float32) == "dense"
    assert "triton" in available_backends(DEVICE) and "triton" in available_backends()


def test_without_triton_auto_keeps_the_pure_pytorch_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where Triton cannot run, CUDA plans go to dense/gather as before and triton is not listed."""
    monkeypatch.setattr(backends, "_triton", lambda: None)
    cuda = torch.device("cuda")
    assert choose_backend(8, 256 * 256 // 4, (256, 256), taps=49, device=cuda, dtype=torch.float32) == "dense"
    assert choose_backend(8, 256 * 256 // 32, (256, 256), taps=49, device=cuda, dtype=torch.float32) == "gather"
    assert "triton" not in available_backends() and "native" not in available_backends("cuda")
    index = torch.zeros(1, 1, 2, dtype=torch.long)
    with pytest.raises(ValueError, match="backend 'triton' needs triton"):
        make_plan(index, (4, 4), (3, 3), backend="triton", dtype=torch.float32)


@pytest.mark.skipif(not HAS_TRITON or INTERPRETED, reason="needs triton, compiling (not interpreting) its kernels")
@pytest.mark.parametrize("dtype", ["fp16", "bf16", "fp32", "fp64"])
def test_kernels_compile_for_cuda_without_a_gpu(dtype: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both kernels compile to cubin for A100 (sm_80) and H100/H200 (sm_90): what the interpreter cannot check."""
    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path))
    import triton
    import triton.language as tl
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from funcdiff.operators.kernels import triton_sparse

    acc = tl.float64 if dtype == "fp64" else tl.float32
    ints = {"m": "i32", "c": "i32", "k": "i32"}
    blocks = {"BLOCK_P": "constexpr", "BLOCK_C": "constexpr", "ACC": "constexpr"}
    signatures = {
        triton_sparse._sum_kernel: {"x_ptr": f"*{dtype}", "w_ptr": f"*{dtype}", "nbr_ptr": "*i32", "out_ptr": f"*{dtype}"}
        | ints | blocks,
        triton_sparse._weight_grad_kernel: {"x_ptr": f"*{dtype}", "g_ptr": f"*{dtype}", "nbr_ptr": "*i32", "part_ptr": "*fp32"}
        | ints | {"rows_per_slice": "i32"} | blocks,
    }
    for kernel, signature in signatures.items():
        source = ASTSource(kernel, signature, constexprs={"BLOCK_P": 32, "BLOCK_C": 64, "ACC": acc})
        for arch in (80, 90):
            compiled = triton.compile(source, target=GPUTarget("cuda", arch, 32), options=triton_sparse._OPTIONS)
            assert compiled.asm["cubin"], (kernel, arch)


@pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed (pip install -e '.[test]' installs it)")
@pytest.mark.skipif(INTERPRETED, reason="this is the interpreter run")
def test_suite_runs_in_the_interpreter() -> None:
    """Every comparison test above passes with the kernels in Triton's CPU interpreter (none may skip)."""
    run_pytest_child(__file__, "-k", "not compile and not interpreter", env=dict(os.environ, TRITON_INTERPRET="1"), at_least=15)
