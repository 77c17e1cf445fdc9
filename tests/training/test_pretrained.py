"""Packaged models: names beside paths, SHA-256 checked at load, weights-only half-precision export."""

import json

import pytest
import torch
from safetensors.torch import load_file

from funcdiff.commands import main
from funcdiff.sampling import sample
from funcdiff.training import load_trained, pretrained
from funcdiff.training.checkpoint import CheckpointError
from funcdiff.training.pretrained import export_model, manifest, resolve_checkpoint
from tests.training.conftest import replace, train_config


@pytest.fixture
def packaged(tiny_config, tmp_path, monkeypatch):
    """A tiny trained run exported as the packaged model "tiny" into a private package folder."""
    result = train_config(replace(tiny_config, steps=20), progress=False)
    root = tmp_path / "pretrained"
    monkeypatch.setattr(pretrained, "PACKAGED", root)
    report = export_model(result.out_dir / "checkpoint", root / "tiny", description="a test model", package_name="tiny")
    return result, report, root


def test_a_packaged_name_loads_the_ema_weights(packaged, monkeypatch, tmp_path) -> None:
    """``load_trained("tiny")`` is the run's EMA (to float16 rounding when exported in half precision), with no
    optimizer state or raw weights in the folder; the manifest lists both files' checksums."""
    result, report, _ = packaged
    monkeypatch.chdir(tmp_path)
    assert sorted(p.name for p in report.path.iterdir()) == ["config.json", "model.safetensors"]
    assert set(manifest()["tiny"]["files"]) == {"config.json", "model.safetensors"}
    model, _, config = load_trained("tiny")
    assert config["weights"] == "ema" and config["precision"] == report.precision
    dtype = torch.float16 if report.precision == "float16" else torch.float32
    stored = load_file(str(report.path / "model.safetensors"))
    for name, tensor in result.ema.state_dict().items():
        assert stored[name].dtype == (dtype if tensor.is_floating_point() else tensor.dtype)
        assert torch.equal(model.state_dict()[name], tensor.to(dtype).to(tensor.dtype)), name


def test_half_precision_is_chosen_only_within_one_grey_level(packaged) -> None:
    """"auto" measured the float16 samples' largest difference and chose float16 exactly when it is <= 1 grey level."""
    _, report, _ = packaged
    assert report.grey_levels is not None and report.grey_levels >= 0
    assert report.precision == ("float16" if report.grey_levels <= 1.0 else "float32")


def test_a_corrupt_or_missing_packaged_file_names_itself(packaged, monkeypatch, tmp_path) -> None:
    _, report, _ = packaged
    monkeypatch.chdir(tmp_path)
    weights = report.path / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"'tiny' is corrupt: .*model.safetensors does not match its SHA-256"):
        load_trained("tiny")
    weights.write_bytes(bytes(data[: len(data) // 2]))  # truncated
    with pytest.raises(CheckpointError, match="model.safetensors does not match its SHA-256"):
        resolve_checkpoint("tiny")
    weights.unlink()
    with pytest.raises(CheckpointError, match="incomplete: .*model.safetensors is missing"):
        resolve_checkpoint("tiny")


def test_an_unknown_name_lists_the_packaged_ones_and_a_directory_of_that_name_is_ambiguous(packaged, monkeypatch, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointError, match=r"'icns' is neither a checkpoint directory nor a packaged model \(packaged: tiny\)"):
        load_trained("icns")
    (tmp_path / "tiny").mkdir()
    with pytest.raises(CheckpointError, match=r"both a packaged model and a directory here: write ./tiny"):
        resolve_checkpoint("tiny")
    assert resolve_checkpoint("./tiny") == pretrained.Path("./tiny")


def test_the_commands_take_the_names(packaged, monkeypatch, tmp_path, capsys) -> None:
    """``funcdiff sample --checkpoint tiny`` samples the packaged model; an unknown name is one line."""
    monkeypatch.chdir(tmp_path)
    assert main(["sample", "--checkpoint", "tiny", "--num", "1", "--sample-steps", "2", "--resolutions", "16",
                 "--out-dir", str(tmp_path / "samples")]) == 0
    assert (tmp_path / "samples" / "16px.png").is_file()
    assert main(["sample", "--checkpoint", "nope", "--num", "1"]) == 1
    assert "packaged: tiny" in capsys.readouterr().err


def test_the_export_command_writes_a_weights_only_checkpoint(tiny_config, tmp_path, capsys) -> None:
    result = train_config(replace(tiny_config, steps=2), progress=False)
    assert main(["export", "--checkpoint", str(result.out_dir / "checkpoint"), "--out-dir", str(tmp_path / "small"),
                 "--precision", "float32"]) == 0
    assert "float32" in capsys.readouterr().out
    model, process, config = load_trained(tmp_path / "small")
    assert config["precision"] == "float32"
    assert sample(model, process, 16, batch=1, steps=2).shape == (1, 1, 16, 16)


def test_no_packaged_models_is_an_empty_list(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(pretrained, "PACKAGED", tmp_path)
    monkeypatch.chdir(tmp_path)
    assert manifest() == {}
    with pytest.raises(CheckpointError, match="none are installed"):
        resolve_checkpoint("icons")
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="manifest.json is corrupt"):
        manifest()
    (tmp_path / "manifest.json").write_text(json.dumps({"x": 1}))
    with pytest.raises(CheckpointError, match="manifest.json is corrupt"):
        manifest()
