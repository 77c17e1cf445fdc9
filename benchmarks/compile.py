"""Eager against `funcdiff.operators.compile_operator` (torch.compile of the per-point layers and the U-Net), in one run.

Two workloads of the demo's architecture (``cpu-small`` trained at 32 px, one channel), each timed eager and compiled
alternately ``--rounds`` times in one process (the machine is noisy), printing medians, the ratio and the one-off
compile time:

1. sampling: one no-grad dense evaluation at ``--size`` px (1024: a 50-step DDIM image is 50 of these);
2. training: one step (loss at 25 % of the points, backward, Adam) on a batch of 16 at 32 px.

Usage: python benchmarks/compile.py [--size 1024] [--rounds 3] [--threads 2]
"""

import argparse
import statistics
import sys
import time
from collections.abc import Callable

import torch

from funcdiff.domains.grid import GridDomain
from funcdiff.mollifiers import GaussianMollifier
from funcdiff.operators import compile_operator, operator_preset
from funcdiff.processes import MollifiedDDPM, cosine_schedule


def compare(name: str, model: torch.nn.Module, run: Callable[[], object], rounds: int) -> None:
    """Time ``run`` eager and compiled, alternating, and print one table row."""
    compile_operator(model)
    start = time.perf_counter()
    run()  # the compile
    first = time.perf_counter() - start
    run()  # any recompile for the second call's guards
    seconds: dict[str, list[float]] = {"eager": [], "compiled": []}
    for _ in range(rounds):
        for mode in ("eager", "compiled"):
            compile_operator(model, "default" if mode == "compiled" else None)
            start = time.perf_counter()
            run()
            seconds[mode].append(time.perf_counter() - start)
    eager, compiled = (statistics.median(seconds[m]) for m in ("eager", "compiled"))
    print(f"| {name} | {eager:.3f} s | {compiled:.3f} s | **{compiled / eager:.2f}** | {first - compiled:.0f} s |", flush=True)


def main() -> int:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1024, help="the sampling grid side")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {args.threads} threads\n")
    print("| workload | eager | compiled | compiled / eager | one-off compile |\n|---|---|---|---|---|")

    model = operator_preset("cpu-small", channels=1, resolution=32).eval()
    x, t = torch.randn(1, 1, args.size, args.size), torch.tensor([0.5])
    compare(f"one dense evaluation at {args.size} px", model, torch.no_grad()(lambda: model.forward_dense(x, t)), args.rounds)

    model = operator_preset("cpu-small", channels=1, resolution=32).train()
    process = MollifiedDDPM(GridDomain(2, 1), cosine_schedule(1000), GaussianMollifier(1 / 32), "x0")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    x0 = torch.rand(16, 1, 32, 32) * 2 - 1
    gen = torch.Generator().manual_seed(0)

    def step() -> None:
        loss = process.loss(model, x0, points=0.25, generator=gen)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    compare("training step, 32 px, batch 16, 25 %", model, step, 5 * args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
