"""Checkpoints: a directory of ``config.json``, ``model.safetensors``, ``ema.safetensors`` and ``training_state.pt``.

Weights are safetensors; the optimizer and RNG states are loaded with ``torch.load(weights_only=True)``, so nothing
is unpickled. A checkpoint is written to a temporary sibling directory and renamed into place, so a crash during a
write leaves the previous checkpoint intact.
"""

import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_model, save_model
from torch import nn

from funcdiff.operators.base import NeuralOperator
from funcdiff.processes.base import DiffusionProcess
from funcdiff.registry import build

logger = logging.getLogger(__name__)

FORMAT_VERSION = 2
"""2: components stored as registered kinds with their settings (1: the operator config and a DDPM-only process)."""
CONFIG, MODEL, EMA, STATE = "config.json", "model.safetensors", "ema.safetensors", "training_state.pt"


@dataclass(frozen=True)
class Checkpoint:
    """What a checkpoint directory holds, read back: its config and the training state (None for weights-only ones)."""

    path: Path
    config: dict[str, Any]
    training_state: dict[str, Any] | None


def _version() -> str:
    """The installed funcdiff's version, or "unknown" when it runs from a source tree that was never installed."""
    try:
        return metadata.version("funcdiff")
    except metadata.PackageNotFoundError:
        return "unknown"


def save_checkpoint(
    path: str | Path, *, config: dict[str, Any], model: nn.Module, ema: nn.Module | None = None, training_state: dict[str, Any] | None = None
) -> Path:
    """Write a checkpoint directory atomically (temporary directory, then rename), replacing any previous one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        full = {"format_version": FORMAT_VERSION, "funcdiff_version": _version(), **config}
        (tmp / CONFIG).write_text(json.dumps(full, indent=2, sort_keys=True))
        save_model(model, str(tmp / MODEL))
        if ema is not None:
            save_model(ema, str(tmp / EMA))
        if training_state is not None:
            torch.save(training_state, tmp / STATE)
        old = path.with_name(f".{path.name}.old")
        if old.exists():
            shutil.rmtree(old)
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("saved checkpoint %s", path)
    return path


def read_checkpoint(path: str | Path, *, with_state: bool = True) -> Checkpoint:
    """Read a checkpoint's config and (optionally) its training state; weights are loaded by `load_weights`."""
    path = Path(path)
    if not (path / CONFIG).is_file() or not (path / MODEL).is_file():
        raise FileNotFoundError(f"{path} is not a funcdiff checkpoint: it needs {CONFIG} and {MODEL}")
    config = json.loads((path / CONFIG).read_text())
    if config.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: checkpoint format {config.get('format_version')} is not the supported {FORMAT_VERSION}")
    state = None
    if with_state and (path / STATE).is_file():
        state = torch.load(path / STATE, map_location="cpu", weights_only=True)
    return Checkpoint(path, config, state)


def load_weights(module: nn.Module, path: str | Path, *, ema: bool = False) -> nn.Module:
    """Load a checkpoint's model (or EMA) weights into ``module`` in place; returns it."""
    file = Path(path) / (EMA if ema else MODEL)
    if not file.is_file():
        raise FileNotFoundError(f"{file} does not exist")
    load_model(module, str(file), strict=True)
    return module


def load_trained(path: str | Path, *, ema: bool = True, device: str = "cpu") -> tuple[NeuralOperator, DiffusionProcess, dict[str, Any]]:
    """A checkpoint's operator (EMA weights by default, in eval mode), its process and its config, ready to sample.

    Both are rebuilt from their registered kinds (`funcdiff.registry.build`): a user's own components load once the
    module that registers them has been imported.
    """
    checkpoint = read_checkpoint(path, with_state=False)
    model = build(checkpoint.config["operator"])
    load_weights(model, path, ema=ema)
    return model.to(device).eval(), build(checkpoint.config["process"]), checkpoint.config
