"""How long and how much memory sampling at a resolution will take, measured on small grids before committing to it.

After a warm-up, network evaluations on grids of 2, 4, 8, ... times the reference resolution (until one takes long
enough to time) give a power law in the number of points (the dense parts are linear, the FFT convolutions slightly
above), extrapolated to the target. Memory is the resident memory now plus the peak growth during the largest probe's
evaluation (CPU: read from ``/proc/self/statm``; CUDA: the allocator's peak; small probes reuse freed memory, so
only the largest counts), scaled with the points, plus the sampler's own tensors. Expect the right order of
magnitude, not more.
"""

import math
import os
import threading
import time
from dataclasses import dataclass

import torch

from funcdiff.operators.base import NeuralOperator
from funcdiff.processes.base import DiffusionProcess


MIN_PROBE_SECONDS = 0.25
"""Probe grids double (up to a quarter of the target's points) until an evaluation takes this long, above timer noise,
and longer than on the grid before (a shorter time means a busy machine disturbed the smaller probe)."""


@dataclass(frozen=True)
class SamplingEstimate:
    """Expected wall time (seconds) and peak memory (bytes) of one sampling run."""

    seconds: float
    peak_bytes: float

    def describe(self) -> str:
        """``about 3.2 min and 1.4 GB``."""
        minutes = self.seconds / 60
        when = f"{self.seconds:.0f} s" if minutes < 2 else f"{minutes:.1f} min" if minutes < 120 else f"{minutes / 60:.1f} h"
        return f"about {when} and {self.peak_bytes / 1e9:.1f} GB"


def _resident_bytes() -> int:
    """This process's resident memory, or 0 where ``/proc`` does not exist."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def _measure(model: NeuralOperator, process: DiffusionProcess, shape: tuple[int, ...], device: str,
             chunk_points: int | None) -> tuple[float, float]:
    """Seconds (the fastest of three runs after the first) and peak extra bytes (the first run, before freed memory is
    kept for reuse) of one dense evaluation on one example."""
    x = torch.zeros(1, process.domain.channels, *shape, device=device)
    t = torch.full((1,), 0.5, device=device)
    cuda = torch.device(device).type == "cuda"

    def evaluate() -> float:
        start = time.perf_counter()
        with torch.no_grad():
            model.forward_dense(x, t, None, chunk_points=chunk_points)
        if cuda:
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        evaluate()
        extra = torch.cuda.max_memory_allocated(device) - base
    else:
        peak, base, done = [0], _resident_bytes(), threading.Event()

        def watch() -> None:
            while not done.wait(0.002):
                peak[0] = max(peak[0], _resident_bytes() - base)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        evaluate()
        done.set()
        watcher.join()
        extra = peak[0]
    return min(evaluate() for _ in range(3)), float(max(extra, 0))


def estimate_sampling(
    model: NeuralOperator, process: DiffusionProcess, shape: tuple[int, ...], *, batch: int, evaluations: int,
    device: str = "cpu", chunk_points: int | None = None,
) -> SamplingEstimate:
    """Time and peak memory of ``evaluations`` network evaluations on ``batch`` examples of grid ``shape``."""
    reference, n = tuple(model.reference_shape), math.prod(shape)
    base = 0 if torch.device(device).type == "cuda" else _resident_bytes()
    _measure(model, process, tuple(2 * r for r in reference), device, chunk_points)  # warm-up: lazy set-up is not per point
    probes, factor = [], 2
    while len(probes) < 2 or ((probes[-1][1] < MIN_PROBE_SECONDS or probes[-1][1] <= probes[-2][1])
                              and 4 * math.prod(reference) * factor**len(reference) <= n):
        grid = tuple(factor * r for r in reference)
        probes.append((math.prod(grid), *_measure(model, process, grid, device, chunk_points)))
        factor *= 2
    (n1, t1, _), (n2, t2, m2) = probes[-2:]
    power = min(max(math.log(max(t2, 1e-9) / max(t1, 1e-9)) / math.log(n2 / n1), 1.0), 1.25)
    seconds = t2 * (n / n2) ** power * batch * evaluations
    state = 8 * batch * process.domain.channels * n * 4  # the sampler's own fields: state, predictions, noise, output
    return SamplingEstimate(seconds, base + m2 / n2 * n * batch + state)  # the largest probe's memory per point
