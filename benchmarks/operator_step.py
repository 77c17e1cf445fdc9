"""Whole ∞-Diff operator: a training step on 25 % of the points vs all points, and chunked dense evaluation memory.

Prints, for the ``cpu-small`` preset trained at each size, the median time and peak RSS increase of one
forward + MSE + backward on 25 % and on 100 % of the points (ratio target <= 0.5), the images per second at
32 px with batch 16 (the CPU demo's setting), and the peak memory of ``forward_dense`` (no grad, eval mode) on a
1024^2 grid with and without chunking. Every case runs in a fresh process. With ``--ndim 1`` the operator is
``audio-small`` (mono clips; a size is a number of samples), there is no demo case, and ``forward_dense`` runs
the model trained at 4000 samples on ``--dense-size`` samples (default 16000, 4x).

Usage: python benchmarks/operator_step.py [--ndim 2] [--sizes 64 128] [--batch 8] [--threads 2] [--backend auto]
       [--dense-size 1024]
       python benchmarks/operator_step.py --ndim 1 --sizes 4000 --batch 16
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _measure import measure, run_case  # noqa: E402

PRESETS = {2: ("cpu-small", 3, 256, 1024), 1: ("audio-small", 1, 4000, 16000)}
"""Per dimension: the preset, its field channels, and the training size and default grid of the dense case."""


def train_case(size: int, fraction: float, batch: int, backend: str, ndim: int) -> dict[str, float]:
    """One training step of the ``ndim`` preset at ``size`` points per axis on ``fraction`` of the points."""

    import torch

    from funcdiff.domains.grid import GridDomain
    from funcdiff.operators import InftyDiffOperator, preset_config

    name, channels = PRESETS[ndim][:2]
    gen = torch.Generator().manual_seed(0)
    op = InftyDiffOperator(preset_config(name, channels=channels, resolution=size, ndim=ndim), backend=backend)
    x = torch.randn(batch, channels, *(size,) * ndim, generator=gen)
    t = torch.rand(batch, generator=gen)
    points = GridDomain(ndim, channels).subsample(x, fraction, generator=gen)

    def step() -> None:
        op.zero_grad(set_to_none=True)
        (op(points, t) - points.values).square().mean().backward()

    return measure(step, warmup=2, repeats=5)


def dense_case(size: int, chunk: int | None, ndim: int) -> dict[str, float]:
    """``forward_dense`` of the ``ndim`` preset (trained at its dense-case size) on a ``size``^ndim grid, batch 1, no grad."""
    import torch

    from funcdiff.operators import operator_preset

    name, channels, trained = PRESETS[ndim][:3]
    op = operator_preset(name, channels=channels, resolution=trained, ndim=ndim).eval()
    x = torch.randn(1, channels, *(size,) * ndim)
    t = torch.rand(1)
    with torch.no_grad():
        return measure(lambda: op.forward_dense(x, t, chunk_points=chunk), warmup=0, repeats=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ndim", type=int, choices=(1, 2), default=2)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--dense-size", type=int, default=None, help="default 1024 in 2-d, 16000 in 1-d")
    parser.add_argument("--case", nargs=3, metavar=("KIND", "SIZE", "ARG"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    if args.case:
        kind, size, arg = args.case
        if kind == "train":
            result = train_case(int(size), float(arg), args.batch, args.backend, args.ndim)
        else:
            result = dense_case(int(size), None if arg == "none" else int(arg), args.ndim)
        print(json.dumps(result))
        return
    options = ["--threads", str(args.threads), "--backend", args.backend, "--ndim", str(args.ndim)]
    dense_size = PRESETS[args.ndim][3] if args.dense_size is None else args.dense_size
    print(f"{PRESETS[args.ndim][0]}, threads {args.threads}, backend {args.backend}")
    print(f"{'case':<36} {'median ms':>10} {'min ms':>8} {'peak MB':>8} {'ratio':>6}")
    demo = [(32, 16)] if args.ndim == 2 else []
    unit, items = ("px", "images") if args.ndim == 2 else (" samples", "clips")
    cases = [(size, batch) for size in args.sizes for batch in (args.batch,)] + demo
    for size, batch in cases:
        opts = [*options, "--batch", str(batch)]
        full = run_case(__file__, ["train", str(size), "1.0"], opts)
        part = run_case(__file__, ["train", str(size), "0.25"], opts)
        for label, r in ((f"train {size}{unit} b{batch} 100% points", full), (f"train {size}{unit} b{batch} 25% points", part)):
            if r is not None:
                ratio = r["median_s"] / full["median_s"] if full else float("nan")
                times = f"{r['median_s'] * 1e3:>10.1f} {r['min_s'] * 1e3:>8.1f}"
                print(f"{label:<36} {times} {r['peak_delta_mb']:>8.0f} {ratio:>6.2f}", flush=True)
        if part is not None:
            print(f"{'':<36} 25% points: {batch / part['median_s']:.1f} {items}/s (fwd+bwd)")
    for chunk in ("none", str(2**16)):
        r = run_case(__file__, ["dense", str(dense_size), chunk], options)
        if r is not None:
            label = f"forward_dense {dense_size}^{args.ndim} chunk {chunk}"
            print(f"{label:<36} {r['median_s'] * 1e3:>10.1f} {'':>8} {r['peak_delta_mb']:>8.0f}", flush=True)


if __name__ == "__main__":
    main()
