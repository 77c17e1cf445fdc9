"""benchmarks/gpu.py, the prepared GPU script: every section runs at tiny sizes on the CPU (--dry-run), and without
CUDA a plain run says so and measures nothing."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu.py"


def run(*args: str) -> str:
    """Run the script with this interpreter; fail with its output unless it exits 0."""
    done = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_dry_run_prints_every_section() -> None:
    """The four tables (sparse convolution, training step, throughput, sampling) come out with numbers."""
    out = run("--dry-run")
    for header in ("| px | torch dense 100 % |", "| tiny at 16 px, batch 8 | 25 % | 100 % | ratio |",
                   "| preset | px | batch | torch.compile | images/s | peak memory |",
                   "| torch.compile | one evaluation | 50 DDIM steps per image |"):
        assert header in out
    assert "failed" not in out
    assert "| tiny | 16 | 2 | no |" in out and "| 32 | no |" in out and "total " in out


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the script would measure it")
def test_without_cuda_it_says_so_and_measures_nothing() -> None:
    assert run().strip() == "no CUDA device here: nothing measured (run with --dry-run to check the script on the CPU)"
