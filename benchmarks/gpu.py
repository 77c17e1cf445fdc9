"""Every GPU figure in one run (under 8 minutes on one GPU): run it whenever a GPU machine is lent.

    python benchmarks/gpu.py                 # on a machine with CUDA; prints markdown tables
    python benchmarks/gpu.py --dry-run       # tiny sizes on the CPU, eager only: checks that every section runs

Sections (all on ``cuda:0``, times synchronised, memory from ``torch.cuda.max_memory_allocated``):
1. sparse depthwise convolution, forward + backward, 64 channels, 7 taps, batch 8: every CUDA backend at 25 % of
   the points against PyTorch's dense depthwise convolution at 100 %, at 128, 256 and 512 px (target: <= 0.4 at 256);
2. the operator's training step (``paper-128`` at 128 px, batch 8) at 25 % against 100 % of the points (target <= 0.6);
3. training images/s and peak memory of ``paper-128`` (batch 16) and ``paper-256`` (batch 32) at 25 %, bf16 autocast,
   Adam, gradient clipping: the paper's settings; eager and with `funcdiff.operators.compile_operator`;
4. sampling: one network evaluation of ``cpu-small`` trained at 64 px at 256, 1024 and 4096 px (chunked at 4096),
   eager and compiled, and the time per image of 50 DDIM steps it implies.
Without CUDA (and without ``--dry-run``) it says so and exits 0.
"""

import argparse
import itertools
import statistics
import sys
import time
from collections.abc import Callable

import torch

from funcdiff.domains.grid import GridDomain
from funcdiff.operators import (
    InftyDiffOperator, SparseDepthwiseConv, available_backends, compile_operator, operator_preset, preset_config,
)
from funcdiff.operators.kernels.backends import DEPTHWISE_CONV
from funcdiff.processes import MollifiedDDPM, cosine_schedule
from funcdiff.mollifiers import GaussianMollifier

FULL = {"conv_sizes": (128, 256, 512), "step_size": 128, "presets": (("paper-128", 128, 16), ("paper-256", 256, 32)),
        "sample_sizes": (256, 1024, 4096), "sample_trained": 64, "repeats": 5, "compiled": (False, True)}
DRY = {"conv_sizes": (16, 32), "step_size": 16, "presets": (("tiny", 16, 2),), "sample_sizes": (16, 32), "sample_trained": 8,
       "repeats": 1, "compiled": (False,)}  # compiling on the CPU takes a minute; tests/training/test_compiling.py covers it


def timed(step: Callable[[], object], device: torch.device, repeats: int) -> tuple[float, float]:
    """Median seconds of ``step`` after one warm-up, and the peak memory (MB) it allocated on ``device``."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    step()
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else float("nan")
    return statistics.median(times), peak


def attempt(step: Callable[[], object], device: torch.device, repeats: int) -> tuple[float, float] | str:
    """`timed`, or the reason it failed in one line: one failing row (a compile, memory) must not cost a lent GPU's
    other figures."""
    try:
        return timed(step, device, repeats)
    except Exception as error:  # noqa: BLE001 - reported in the table
        if device.type == "cuda":
            torch.cuda.empty_cache()
        return f"failed: {type(error).__name__}: {(str(error).strip().splitlines() or [''])[0][:100]}"


def sparse_convolution(sizes: tuple[int, ...], device: torch.device, repeats: int) -> None:
    """Section 1: backends at 25 % against PyTorch's dense depthwise convolution at 100 %."""
    backends = list(available_backends(device))
    print(f"\n| px | torch dense 100 % | {' | '.join(f'{b} 25 %' for b in backends)} | best / torch |\n|{'---|' * (len(backends) + 3)}")
    channels, kernel, batch = 64, 7, 8
    for size in sizes:
        gen = torch.Generator(device=device).manual_seed(0)
        x = torch.randn(batch, channels, size, size, device=device, generator=gen)
        weight = torch.randn(channels, 1, kernel, kernel, device=device, requires_grad=True, generator=gen)
        field = x.contiguous(memory_format=torch.channels_last).requires_grad_()
        reference, _ = timed(lambda: DEPTHWISE_CONV[2](field, weight, padding=kernel // 2, groups=channels).sum().backward(), device, repeats)
        row = []
        for backend in backends:
            conv = SparseDepthwiseConv(channels, kernel, ndim=2, reference_shape=(size, size), backend=backend).to(device)
            points = GridDomain(2, channels).subsample(x, 0.25, generator=gen)
            points = points.with_values(points.values.clone().requires_grad_())
            plan = conv.plan(points)
            row.append(timed(lambda: conv(points, plan).sum().backward(), device, repeats)[0])
        cells = " | ".join(f"{1e3 * t:.1f} ms" for t in row)
        print(f"| {size} | {1e3 * reference:.1f} ms | {cells} | **{min(row) / reference:.2f}** |", flush=True)


def training_step(size: int, preset: str, device: torch.device, repeats: int) -> None:
    """Section 2: one training step of the operator at 25 % against 100 % of the points."""
    print(f"\n| {preset} at {size} px, batch 8 | 25 % | 100 % | ratio |\n|---|---|---|---|")
    op = InftyDiffOperator(preset_config(preset, channels=3, resolution=size)).to(device)
    gen = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(8, 3, size, size, device=device, generator=gen)
    t = torch.rand(8, device=device, generator=gen)
    seconds = []
    for fraction in (0.25, 1.0):
        points = GridDomain(2, 3).subsample(x, fraction, generator=gen)
        seconds.append(timed(lambda: (op(points, t) - points.values).square().mean().backward(), device, repeats)[0])
    print(f"| step | {1e3 * seconds[0]:.0f} ms | {1e3 * seconds[1]:.0f} ms | **{seconds[0] / seconds[1]:.2f}** |", flush=True)


def training_throughput(
    presets: tuple[tuple[str, int, int], ...], device: torch.device, repeats: int, bf16: bool, compiled_too: tuple[bool, ...],
) -> None:
    """Section 3: images/s and peak memory of full training steps (loss, backward, clipping, Adam) at 25 %."""
    print("\n| preset | px | batch | torch.compile | images/s | peak memory |\n|---|---|---|---|---|---|")
    for (preset, size, batch), compiled in itertools.product(presets, compiled_too):
        op = operator_preset(preset, channels=3, resolution=size).to(device)
        compile_operator(op, "default" if compiled else None)
        process = MollifiedDDPM(GridDomain(2, 3), cosine_schedule(1000), GaussianMollifier(1 / size), "x0")
        optimizer = torch.optim.Adam(op.parameters(), lr=5e-5, betas=(0.9, 0.99))
        gen = torch.Generator(device=device).manual_seed(0)
        x0 = torch.rand(batch, 3, size, size, device=device, generator=gen) * 2 - 1

        def step() -> None:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                loss = process.loss(op, x0, points=0.25, generator=gen)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(op.parameters(), 1.0)
            optimizer.step()

        result = attempt(step, device, repeats)
        row = result if isinstance(result, str) else f"{batch / result[0]:.1f} | {result[1]:.0f} MB"
        print(f"| {preset} | {size} | {batch} | {'yes' if compiled else 'no'} | {row} |", flush=True)


def sampling(sizes: tuple[int, ...], trained: int, device: torch.device, compiled_too: tuple[bool, ...]) -> None:
    """Section 4: one dense evaluation at each size, and the 50-step DDIM time per image it implies."""
    print(f"\n| cpu-small trained at {trained} px: px | torch.compile | one evaluation | 50 DDIM steps per image | peak memory |"
          "\n|---|---|---|---|---|")
    op = operator_preset("cpu-small", channels=3, resolution=trained).to(device).eval()
    for size, compiled in itertools.product(sizes, compiled_too):
        compile_operator(op, "default" if compiled else None)
        x = torch.randn(1, 3, size, size, device=device)
        t = torch.rand(1, device=device)
        chunk = 1 << 22 if size * size > 1 << 22 else None
        result = attempt(torch.no_grad()(lambda: op.forward_dense(x, t, chunk_points=chunk)), device, 1)
        row = result if isinstance(result, str) else f"{result[0]:.2f} s | {50 * result[0] / 60:.1f} min | {result[1]:.0f} MB"
        print(f"| {size} | {'yes' if compiled else 'no'} | {row} |", flush=True)


def main() -> int:
    """Run every section on CUDA (or, with --dry-run, tiny ones on the CPU)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU, to check that every section runs")
    args = parser.parse_args()
    if not args.dry_run and not torch.cuda.is_available():
        print("no CUDA device here: nothing measured (run with --dry-run to check the script on the CPU)")
        return 0
    device = torch.device("cpu" if args.dry_run else "cuda:0")
    sizes = DRY if args.dry_run else FULL
    name = "CPU (dry run)" if args.dry_run else torch.cuda.get_device_name(device)
    print(f"# GPU figures: {name}, torch {torch.__version__}, {time.strftime('%Y-%m-%d')}")
    start = time.perf_counter()
    sparse_convolution(sizes["conv_sizes"], device, sizes["repeats"])
    training_step(sizes["step_size"], "tiny" if args.dry_run else "paper-128", device, sizes["repeats"])
    training_throughput(sizes["presets"], device, sizes["repeats"], bf16=not args.dry_run, compiled_too=sizes["compiled"])
    sampling(sizes["sample_sizes"], sizes["sample_trained"], device, sizes["compiled"])
    print(f"\ntotal {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
