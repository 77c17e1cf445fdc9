"""How long and how much memory sampling or training at a resolution will take, measured before committing to it.

Training is measured directly: one step at the real size (the operator's reference grid is the training grid).

Sampling: after a warm-up, network evaluations on grids of 2, 4, 8, ... times the reference resolution (until one
takes long enough to time) give a power law in the number of points (the dense parts are linear, the FFT
convolutions slightly above), extrapolated to the target. Memory is the resident memory now plus the peak growth of
allocated memory during the largest probe's evaluation (CPU: malloc's bytes in use from glibc's ``mallinfo2``, which
unlike resident memory also counts reused freed memory, else resident memory; CUDA: the allocator's peak), scaled
with the points, plus the sampler's own tensors. Expect the right order of magnitude, not more.
"""

import ctypes
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from funcdiff.conditioning import EncodedConditioning
from funcdiff.operators.base import NeuralOperator
from funcdiff.processes.base import DiffusionProcess
from funcdiff.training.trainer import loss_model


MIN_PROBE_SECONDS = 0.25
"""Probe grids double (up to a quarter of the target's points) until an evaluation takes this long, above timer noise,
and longer than on the grid before (a shorter time means a busy machine disturbed the smaller probe)."""


@dataclass(frozen=True)
class Estimate:
    """Expected wall time (seconds) and peak memory (bytes) of some work."""

    seconds: float
    peak_bytes: float

    def describe(self) -> str:
        """``about 3.2 min and 1.4 GB``."""
        minutes = self.seconds / 60
        when = f"{self.seconds:.0f} s" if minutes < 2 else f"{minutes:.1f} min" if minutes < 120 else f"{minutes / 60:.1f} h"
        return f"about {when} and {self.peak_bytes / 1e9:.1f} GB"


class _MallInfo2(ctypes.Structure):
    """glibc's ``struct mallinfo2``."""

    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


def _allocator() -> Callable[[], int]:
    """Bytes held by malloc now (glibc's ``mallinfo2``: heap in use plus mapped blocks), or resident memory where
    that is missing; unlike resident memory it grows even when freed memory is reused."""
    try:
        mallinfo2 = ctypes.CDLL(None).mallinfo2
    except (OSError, AttributeError):
        return _resident_bytes
    mallinfo2.restype = _MallInfo2

    def allocated() -> int:
        info = mallinfo2()
        return info.uordblks + info.hblkhd

    return allocated


def _resident_bytes() -> int:
    """This process's resident memory, or 0 where ``/proc`` does not exist."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def _measure(run: Callable[[], object], device: str, *, timed_runs: int) -> tuple[float, float]:
    """Seconds (the fastest of ``timed_runs`` runs after the first) and peak extra bytes (the first run, before freed
    memory is kept for reuse) of ``run``."""
    cuda = torch.device(device).type == "cuda"

    def timed() -> float:
        start = time.perf_counter()
        run()
        if cuda:
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        timed()
        extra = torch.cuda.max_memory_allocated(device) - base
    else:
        in_use = _allocator()
        peak, base, done = [0], in_use(), threading.Event()

        def watch() -> None:
            while not done.wait(0.002):
                peak[0] = max(peak[0], in_use() - base)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        timed()
        done.set()
        watcher.join()
        extra = peak[0]
    return min(timed() for _ in range(timed_runs)), float(max(extra, 0))


def _dense_evaluation(model: NeuralOperator, process: DiffusionProcess, shape: tuple[int, ...], device: str,
                      chunk_points: int | None) -> Callable[[], object]:
    """One evaluation of the operator on one example of grid ``shape``, without gradients."""
    x = torch.zeros(1, process.domain.channels, *shape, device=device)
    t = torch.full((1,), 0.5, device=device)
    with torch.no_grad():  # a diffusion autoencoder's decoder needs a latent: that of the probe
        cond = model.encode(x, chunk_points=chunk_points) if isinstance(model, EncodedConditioning) else None
    return torch.no_grad()(lambda: model.forward_dense(x, t, cond, chunk_points=chunk_points))


def estimate_sampling(
    model: NeuralOperator, process: DiffusionProcess, shape: tuple[int, ...], *, batch: int, evaluations: int,
    device: str = "cpu", chunk_points: int | None = None,
) -> Estimate:
    """Time and peak memory of ``evaluations`` network evaluations on ``batch`` examples of grid ``shape``."""
    reference, n = tuple(model.reference_shape), math.prod(shape)
    base = 0 if torch.device(device).type == "cuda" else _resident_bytes()

    def probe(grid: tuple[int, ...]) -> tuple[float, float]:
        return _measure(_dense_evaluation(model, process, grid, device, chunk_points), device, timed_runs=3)

    probe(tuple(2 * r for r in reference))  # warm-up: lazy set-up is not per point
    probes, factor = [], 2
    while len(probes) < 2 or ((probes[-1][1] < MIN_PROBE_SECONDS or probes[-1][1] <= probes[-2][1])
                              and 4 * math.prod(reference) * factor**len(reference) <= n):
        grid = tuple(factor * r for r in reference)
        probes.append((math.prod(grid), *probe(grid)))
        factor *= 2
    (n1, t1, _), (n2, t2, m2) = probes[-2:]
    power = min(max(math.log(max(t2, 1e-9) / max(t1, 1e-9)) / math.log(n2 / n1), 1.0), 1.25)
    seconds = t2 * (n / n2) ** power * batch * evaluations
    state = 8 * batch * process.domain.channels * n * 4  # the sampler's own fields: state, predictions, noise, output
    return Estimate(seconds, base + m2 / n2 * n * batch + state)  # the largest probe's memory per point


def estimate_training_step(
    model: NeuralOperator, process: DiffusionProcess, data_shape: tuple[int, ...], *, batch: int, points: int | float,
    device: str = "cpu",
) -> Estimate:
    """Time and peak memory of one training step (loss and gradients) on ``batch`` examples, measured on zeros with
    a private generator (the run's random state is untouched); the gradients are dropped."""
    x0 = torch.zeros(batch, *data_shape, device=device)
    generator = torch.Generator(device=device).manual_seed(0)
    base = 0 if torch.device(device).type == "cuda" else _resident_bytes()

    def step() -> None:
        net = loss_model(model, process, x0, points=points, generator=generator)
        process.loss(net, x0, points=points, generator=generator, reference_shape=tuple(model.reference_shape)).backward()
        model.zero_grad(set_to_none=True)

    with torch.random.fork_rng(devices=[]):  # dropout draws from the global generator
        seconds, extra = _measure(step, device, timed_runs=1)
    return Estimate(seconds, base + extra)
