"""Shared timing and peak-memory helpers for the benchmark scripts (each case runs in a fresh subprocess)."""

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable


def rss_mb() -> float:
    """Current resident set size in MB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_mb() -> float:
    """Peak resident set size of this process so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(step: Callable[[], object], *, warmup: int, repeats: int) -> dict[str, float]:
    """Median and minimum seconds of ``step`` and the peak RSS it adds over the memory held before the loop."""
    for _ in range(warmup):
        step()
    before = rss_mb()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return {"median_s": statistics.median(times), "min_s": min(times), "peak_delta_mb": max(0.0, peak_mb() - before)}


def run_case(script: str, args: list[str], options: list[str]) -> dict[str, float] | None:
    """Run ``script --case args... options...`` in a fresh interpreter and parse its JSON line (None if it failed)."""
    proc = subprocess.run([sys.executable, script, "--case", *args, *options], capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"  case {args} failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode}")
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])
