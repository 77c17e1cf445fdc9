"""Volumes end to end: examples/volumes/train_shapes.py trains the tiny operator on 8^3 shapes, samples at 8^3 and
16^3 and draws them; the checkpoint reloads into a model whose samples equal the ones the example saved."""

import importlib.util
import types
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from funcdiff.processes import MollifiedDDPM
from funcdiff.training import load_trained

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "volumes" / "train_shapes.py"
SMOKE = ["--resolution", "8", "--steps", "20", "--time-budget", "0", "--batch-size", "4", "--sample-count", "2", "--sample-steps", "4"]


@pytest.fixture(scope="module")
def example() -> types.ModuleType:
    """The example script as a module."""
    spec = importlib.util.spec_from_file_location("train_shapes", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dry_run_prints_the_config(example: types.ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    """``--dry-run`` prints the resolved config and trains nothing."""
    assert example.main([*SMOKE, "--dry-run", "--out-dir", "unused"]) == 0
    assert '"data": "shapes"' in capsys.readouterr().out and not Path("unused").exists()


def test_train_sample_draw_and_reload(example: types.ModuleType, tmp_path: Path) -> None:
    """20 steps at 8^3, samples at 8^3 and 16^3 finite and in range with pictures of them and of the data; the
    reloaded EMA model draws the same samples (to float rounding)."""
    out = tmp_path / "run"
    assert example.main([*SMOKE, "--out-dir", str(out)]) == 0
    saved = {r: load_file(out / f"samples_{r}.safetensors")["samples"] for r in (8, 16)}
    for r, samples in saved.items():
        assert samples.shape == (2, 1, r, r, r) and bool(samples.isfinite().all())
        assert float(samples.abs().max()) <= 1
        assert (out / f"samples_{r}.png").is_file() and (out / f"data_{r}.png").is_file()

    model, process, _ = load_trained(out / "checkpoint")
    assert isinstance(process, MollifiedDDPM) and process.domain.ndim == 3 and tuple(model.reference_shape) == (8, 8, 8)
    config, _ = example.parse([*SMOKE, "--out-dir", str(out)])
    for resolution, samples, _ in example.sample_volumes(model, process, config):
        # Not bitwise: the trainer's EMA holds parameters without requires_grad, the reloaded model's require it, and
        # CPU kernels then round differently (~4e-7); with requires_grad alike the samples are equal.
        torch.testing.assert_close(samples, saved[resolution], atol=1e-5, rtol=0)
