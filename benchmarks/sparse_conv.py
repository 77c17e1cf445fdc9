"""Sparse depthwise convolution (docs/math.md §8) against PyTorch's dense depthwise convolution, forward + backward.

Prints, per grid size, the median time and peak RSS increase of one forward+backward of:
PyTorch ``conv{1,2}d(groups=C)`` on the full grid (channels-last in 2-d, the reference), every backend of
`SparseDepthwiseConv` at 25 % density, our dense backend and the native kernel at 100 %, and the memory of the
backends at 6 % density. Ratios are sparse time / PyTorch full-grid time. Every case runs in a fresh process so
that peak memory is per case; plan (kernel map / padded index) construction is reported separately as setup,
since one plan serves every convolution of a forward pass. With ``--ndim 1`` (audio) a size is a number of
samples and the kernel has ``--kernel`` taps; with ``--ndim 2`` a size is the side of a square grid.

Usage: python benchmarks/sparse_conv.py [--ndim 2] [--sizes 64 128 256 512] [--batch 8] [--channels 64] [--kernel 7]
       [--threads 2]
       python benchmarks/sparse_conv.py --ndim 1 --sizes 4000 16000 64000 --kernel 31 --channels 32 --batch 16
"""

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _measure import measure, run_case  # noqa: E402


LARGE_CELLS = 512**2
"""Grids of at least this many cells per example get fewer repeats, and no ``gather`` at 100 % (too slow)."""


def case(
    method: str, size: int, density: float, batch: int, channels: int, kernel: int, threads: int, ndim: int
) -> dict[str, float]:
    """One measurement in this process, on a grid of ``size`` points along each of ``ndim`` axes."""
    import torch

    from funcdiff.domains.grid import GridDomain
    from funcdiff.operators import SparseDepthwiseConv
    from funcdiff.operators.kernels.backends import DEPTHWISE_CONV

    torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(0)
    shape = (size,) * ndim
    x = torch.randn(batch, channels, *shape, generator=gen)
    repeats, warmup = (2, 1) if size**ndim >= LARGE_CELLS else (5, 2)
    if method == "torch":
        layout = torch.channels_last if ndim == 2 else torch.contiguous_format
        field = x.contiguous(memory_format=layout).requires_grad_()
        weight = torch.randn(channels, 1, *(kernel,) * ndim, requires_grad=True, generator=gen)
        grad = torch.randn_like(field)
        def step() -> None:
            DEPTHWISE_CONV[ndim](field, weight, padding=kernel // 2, groups=channels).backward(grad)

        return measure(step, warmup=warmup, repeats=repeats)
    conv = SparseDepthwiseConv(channels, kernel, ndim=ndim, reference_shape=shape, backend=method)
    points = GridDomain(ndim, channels).subsample(x, density, generator=gen)
    points = points.with_values(points.values.clone().requires_grad_())
    conv.plan(points)
    start = time.perf_counter()
    plan = conv.plan(points)
    setup = time.perf_counter() - start
    grad = torch.randn_like(points.values)
    result = measure(lambda: conv(points, plan).backward(grad), warmup=warmup, repeats=repeats)
    return {**result, "setup_s": setup}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ndim", type=int, choices=(1, 2), default=2)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256, 512])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--kernel", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--case", nargs=3, metavar=("METHOD", "SIZE", "DENSITY"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    common = [args.batch, args.channels, args.kernel, args.threads, args.ndim]
    if args.case:
        print(json.dumps(case(args.case[0], int(args.case[1]), float(args.case[2]), *common)))
        return
    from funcdiff.operators import available_backends

    backends = available_backends()
    extra = [f"--{name}={getattr(args, name)}" for name in ("batch", "channels", "kernel", "threads", "ndim")]
    print(
        f"{args.ndim}-d, batch {args.batch}, channels {args.channels}, kernel {args.kernel}, threads {args.threads}; "
        f"backends {backends}"
    )
    print(f"{'size':>5} {'case':<22} {'median ms':>10} {'min ms':>8} {'setup ms':>9} {'peak MB':>8} {'ratio':>6}")
    for size in args.sizes:
        reference = run_case(__file__, ["torch", str(size), "1.0"], extra)
        rows = [("torch full 100%", reference)]
        for density, label in ((0.25, "25%"), (1.0, "100%"), (0.0625, "6%")):
            for backend in backends:
                if density == 1.0 and backend == "gather" and size**args.ndim >= LARGE_CELLS:
                    continue
                rows.append((f"{backend} {label}", run_case(__file__, [backend, str(size), str(density)], extra)))
        for label, r in rows:
            if r is None:
                continue
            ratio = r["median_s"] / reference["median_s"] if reference else float("nan")
            setup = r.get("setup_s", 0.0) * 1e3
            times = f"{r['median_s'] * 1e3:>10.1f} {r['min_s'] * 1e3:>8.1f} {setup:>9.1f}"
            print(f"{size:>5} {label:<22} {times} {r['peak_delta_mb']:>8.0f} {ratio:>6.2f}", flush=True)


if __name__ == "__main__":
    main()
