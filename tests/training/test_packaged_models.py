"""The models shipped in the package (funcdiff/pretrained): each loads by name, samples, and has its model card.

Without the weights (a checkout or wheel that leaves them out) these tests skip and say so; everything else passes."""

import re

import pytest
import torch

from funcdiff.sampling import sample
from funcdiff.training import load_trained
from funcdiff.training.pretrained import PACKAGED, packaged_names

NAMES = packaged_names()
needs_weights = pytest.mark.skipif(not NAMES, reason="no packaged models: the weights were removed from funcdiff/pretrained")


@needs_weights
@pytest.mark.parametrize("name", NAMES)
def test_a_packaged_model_loads_by_name_and_samples(name: str, tmp_path, monkeypatch) -> None:
    """Its EMA weights load within 10 MB and sample finite values in the data's range at its reference resolution."""
    monkeypatch.chdir(tmp_path)
    model, process, config = load_trained(name)
    assert (PACKAGED / name / "model.safetensors").stat().st_size <= 10 * 2**20
    assert config["weights"] == "ema" and config["precision"] in ("float16", "float32")
    x = sample(model, process, tuple(model.reference_shape), batch=1, steps=3, generator=torch.Generator().manual_seed(0))
    low, high = process.domain.value_range
    assert bool(x.isfinite().all()) and low - 1e-6 <= float(x.min()) and float(x.max()) <= high + 1e-6


@needs_weights
@pytest.mark.parametrize("name", NAMES)
def test_each_card_says_how_it_was_made_and_carries_its_evaluation(name: str) -> None:
    """card.md names the data, the command that retrains it, steps, wall time and machine, and its scores table is
    the one of the `funcdiff eval` report stored beside it (report.md, of the packaged model itself)."""
    card = (PACKAGED / name / "card.md").read_text()
    for heading in ("Data", "Retrain", "Training", "Scores"):
        assert f"## {heading}" in card, heading
    assert re.search(r"funcdiff train .*--out-dir", card) and f"funcdiff export --checkpoint" in card
    report = PACKAGED / name / "report.md"
    if report.is_file():
        table = [line for line in report.read_text().splitlines() if line.startswith("| ")]
        assert table and all(line in card for line in table)
        assert f"checkpoint: {name}" in report.read_text()
    else:  # volumes: eval scores images and clips only
        assert "does not score volumes" in card
