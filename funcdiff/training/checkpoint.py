"""Checkpoints: a directory of ``config.json``, ``model.safetensors``, ``ema.safetensors`` and ``training_state.pt``.

Weights are safetensors; the optimizer and RNG states are loaded with ``torch.load(weights_only=True)``, so nothing
is unpickled. ``config.json`` lists a SHA-256 checksum of every other file, verified on every read, so a flipped
byte is an error rather than silently wrong weights.

Saving is recoverable at every instant: the files are written (and flushed to disk) into a temporary sibling
``.checkpoint.tmp-*``, ``config.json`` last; the current checkpoint is renamed to ``.checkpoint.old``, the new one
into place, and the old one removed. Whatever a crash interrupts, one of the three is complete, and
`recover_checkpoint` puts the newest complete one in place and removes the leftovers.
"""

import errno
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, NamedTuple

import torch
from safetensors import SafetensorError
from safetensors.torch import load_model, save_model
from torch import nn

from funcdiff.operators.base import NeuralOperator
from funcdiff.processes.base import DiffusionProcess
from funcdiff.registry import build, check_round_trip

logger = logging.getLogger(__name__)

FORMAT_VERSION = 2
"""2: components stored as registered kinds with their settings (1: the operator config and a DDPM-only process)."""
CONFIG, MODEL, EMA, STATE = "config.json", "model.safetensors", "ema.safetensors", "training_state.pt"


class CheckpointError(ValueError):
    """A checkpoint that is missing, incomplete, corrupt or cannot be written, with what is wrong and where."""


@dataclass(frozen=True)
class Checkpoint:
    """What a checkpoint directory holds, read back: its config and the training state (None for weights-only ones)."""

    path: Path
    config: dict[str, Any]
    training_state: dict[str, Any] | None

    @property
    def step(self) -> int:
        """The training step it was saved at (0 if it does not say)."""
        return int(self.config.get("step", 0))


def _version() -> str:
    """The installed funcdiff's version, or "unknown" when it runs from a source tree that was never installed."""
    try:
        return metadata.version("funcdiff")
    except metadata.PackageNotFoundError:
        return "unknown"


def _sha256(file: Path) -> str:
    """The hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with file.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    """Flush a file or directory to disk, so a rename after it never exposes unwritten data."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def non_finite_weights(module: nn.Module) -> list[str]:
    """Names of the parameters and buffers of ``module`` that hold NaN or Inf."""
    tensors = {**dict(module.named_parameters()), **dict(module.named_buffers())}
    return [name for name, t in tensors.items() if t.is_floating_point() and not bool(t.isfinite().all())]


def save_checkpoint(
    path: str | Path, *, config: dict[str, Any], model: nn.Module, ema: nn.Module | None = None, training_state: dict[str, Any] | None = None
) -> Path:
    """Write a checkpoint directory recoverably (see the module's text), replacing any previous one.

    Raises:
        ValueError: if a weight of ``model`` or ``ema`` is NaN or Inf, or the ``"operator"`` or ``"process"`` of
            ``config`` would not rebuild when loaded (`funcdiff.registry.check_round_trip`); nothing is written.
        CheckpointError: if writing fails, saying whether the disk is full; the previous checkpoint is left intact.
    """
    path = Path(path)
    for name in ("operator", "process"):
        if name in config:
            check_round_trip(config[name], name)
    bad = non_finite_weights(model) + ([] if ema is None else [f"ema.{n}" for n in non_finite_weights(ema)])
    if bad:
        raise ValueError(f"refusing to save non-finite weights to {path}: {', '.join(bad[:5])}{' ...' if len(bad) > 5 else ''}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        save_model(model, str(tmp / MODEL))
        if ema is not None:
            save_model(ema, str(tmp / EMA))
        if training_state is not None:
            torch.save(training_state, tmp / STATE)
        files = {f.name: _sha256(f) for f in sorted(tmp.iterdir())}
        full = {"format_version": FORMAT_VERSION, "funcdiff_version": _version(), **config, "files": files}
        (tmp / CONFIG).write_text(json.dumps(full, indent=2, sort_keys=True))
        for f in tmp.iterdir():
            _fsync(f)
        _fsync(tmp)
    except BaseException as error:
        shutil.rmtree(tmp, ignore_errors=True)
        if not isinstance(error, Exception):
            raise
        kept = path if path.exists() else _old(path)
        intact = f"the previous checkpoint {kept} is intact" if kept.exists() else "no earlier checkpoint existed"
        if _disk_full(error, path.parent):
            raise CheckpointError(f"disk full while writing the checkpoint {path}; {intact}; free space and resume") from error
        raise CheckpointError(f"could not write the checkpoint {path} ({type(error).__name__}: {error}); {intact}") from error
    old = _old(path)
    if old.exists():  # a save that was interrupted before: keep whichever is the complete one
        if path.exists():
            shutil.rmtree(old)
        else:
            os.replace(old, path)
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    _fsync(path.parent)
    shutil.rmtree(old, ignore_errors=True)
    logger.info("saved checkpoint %s", path)
    return path


def _disk_full(error: Exception, folder: Path) -> bool:
    """Whether a failed write ran out of space (libraries wrap the OSError in their own errors)."""
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return True
    try:
        return "No space left" in str(error) or shutil.disk_usage(folder).free < (1 << 20)
    except OSError:
        return False


def set_aside(path: str | Path) -> Path:
    """Where `recover_checkpoint` keeps a corrupt checkpoint that a complete sibling replaced."""
    path = Path(path)
    return path.with_name(f".{path.name}.corrupt")


def _old(path: Path) -> Path:
    """Where the previous checkpoint waits while a new one is renamed into place."""
    return path.with_name(f".{path.name}.old")


def candidates(path: str | Path) -> list[Path]:
    """The directories a crash may have left for checkpoint ``path``: itself, its ``.old`` and temporary siblings."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    siblings = sorted(path.parent.glob(f".{path.name}.tmp-*"))
    return [p for p in (path, _old(path), *siblings) if p.is_dir()]


def read_checkpoint(path: str | Path, *, with_state: bool = True) -> Checkpoint:
    """Read and verify a checkpoint's config (and optionally its training state); weights are loaded by `load_weights`.

    A checkpoint that a running training replaces while it is read is read again (three tries, 0.2 s apart).

    Raises:
        CheckpointError: if a file is missing or unreadable, a checksum does not match, or the format is another.
    """
    for attempt in range(3):
        try:
            return _read_checkpoint(Path(path), with_state)
        except CheckpointError:
            if attempt == 2:
                raise
            time.sleep(0.2)
    raise AssertionError("unreachable")


def _read_checkpoint(path: Path, with_state: bool) -> Checkpoint:
    """One attempt of `read_checkpoint`."""
    if not (path / CONFIG).is_file() or not (path / MODEL).is_file():
        hint = ""
        if not path.exists() and any(p != path for p in candidates(path)):
            hint = "; a crash left a save unfinished beside it: `--resume` (or `recover_checkpoint`) restores the newest complete one"
        raise CheckpointError(f"{path} is not a funcdiff checkpoint: it needs {CONFIG} and {MODEL}{hint}")
    try:
        config = json.loads((path / CONFIG).read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path / CONFIG} is corrupt: {error}") from error
    if not isinstance(config, dict) or config.get("format_version") != FORMAT_VERSION:
        version = config.get("format_version") if isinstance(config, dict) else None
        raise CheckpointError(f"{path}: checkpoint format {version} is not the supported {FORMAT_VERSION}")
    for name, digest in config.get("files", {}).items():
        file = path / name
        if not file.is_file():
            raise CheckpointError(f"{path} is incomplete: {name} is missing")
        if _sha256(file) != digest:
            raise CheckpointError(f"{file} is corrupt: its checksum does not match the one in {CONFIG}")
    state = None
    if with_state and (path / STATE).is_file():
        try:
            state = torch.load(path / STATE, map_location="cpu", weights_only=True)
        except Exception as error:  # noqa: BLE001 - any failure to read it means the file is not what we wrote
            raise CheckpointError(f"{path / STATE} cannot be read: {error}") from error
    return Checkpoint(path, config, state)


def load_weights(module: nn.Module, path: str | Path, *, ema: bool = False) -> nn.Module:
    """Load a checkpoint's model (or EMA) weights into ``module`` in place; returns it.

    Raises:
        CheckpointError: if the file is missing or corrupt, or its tensors do not fit ``module``.
    """
    file = Path(path) / (EMA if ema else MODEL)
    if not file.is_file():
        raise CheckpointError(f"{file} does not exist")
    try:
        load_model(module, str(file), strict=True)
    except (SafetensorError, RuntimeError, OSError) as error:
        raise CheckpointError(f"{file} does not load into {type(module).__name__}: {str(error).splitlines()[0]}") from error
    return module


def newest_complete(path: str | Path) -> tuple[Checkpoint | None, dict[Path, str]]:
    """The complete checkpoint with the most steps among `candidates` (the current one wins ties), and why each
    other candidate is not complete."""
    best, problems = None, {}
    for candidate in candidates(path):
        try:
            checkpoint = read_checkpoint(candidate, with_state=False)
        except CheckpointError as error:
            problems[candidate] = str(error)
            continue
        if best is None or checkpoint.step > best.step:
            best = checkpoint
    return best, problems


def recover_checkpoint(path: str | Path) -> Path | None:
    """Put the newest complete checkpoint at ``path`` after a crash and remove what the crash left; None if none exists.

    A corrupt current checkpoint that a complete sibling replaces is kept aside as ``.<name>.corrupt``.

    Raises:
        CheckpointError: if checkpoint directories exist but none of them is complete (each one's problem is listed).
    """
    path = Path(path)
    best, problems = newest_complete(path)
    if best is None:
        if problems:
            raise CheckpointError("no complete checkpoint: " + "; ".join(problems.values()))
        return None
    if best.path != path:
        if path in problems:
            aside = set_aside(path)
            shutil.rmtree(aside, ignore_errors=True)
            os.replace(path, aside)
            logger.warning("checkpoint %s is incomplete or corrupt (%s); kept it as %s", path, problems[path], aside)
        elif path.exists():  # complete but older than the one an interrupted save finished
            shutil.rmtree(path)
        os.replace(best.path, path)
        logger.warning("recovered the checkpoint of step %d from an interrupted save (%s)", best.step, best.path.name)
    for leftover in candidates(path):
        if leftover != path:
            shutil.rmtree(leftover, ignore_errors=True)
    return path


class TrainedRun(NamedTuple):
    """A trained run as `load_trained` gives it: the operator, its process and the checkpoint's config."""

    model: NeuralOperator
    process: DiffusionProcess
    config: dict[str, Any]

    @property
    def data(self) -> str | None:
        """The name (or folder) of the data set the run trained on, if its config records it (a run file's data slot
        gives its kind or folder)."""
        data = self.config.get("run", {}).get("data")
        return data.get("kind") or data.get("folder") if isinstance(data, dict) else data

    @property
    def step(self) -> int:
        """The training step the checkpoint was saved at."""
        return int(self.config.get("step", 0))


def load_trained(path: str | Path, *, ema: bool = True, device: str = "cpu") -> TrainedRun:
    """A checkpoint's operator (EMA weights by default, in eval mode), its process and its config, ready to sample.

    Both are rebuilt from their registered kinds (`funcdiff.registry.build`): a user's own components load once the
    module that registers them has been imported.
    """
    checkpoint = read_checkpoint(path, with_state=False)
    model = build(checkpoint.config["operator"])
    load_weights(model, path, ema=ema)
    return TrainedRun(model.to(device).eval(), build(checkpoint.config["process"]), checkpoint.config)
