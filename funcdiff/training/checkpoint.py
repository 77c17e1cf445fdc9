"""Checkpoints: a directory of ``config.json``, ``model.safetensors``, ``ema.safetensors`` and ``training_state.pt``.

Weights are safetensors; the optimizer and RNG states are loaded with ``torch.load(weights_only=True)``, so nothing
is unpickled. ``config.json`` lists a SHA-256 checksum of every other file and one of itself, verified on every read,
so a flipped byte or an edited setting is an error rather than silently wrong weights or pictures.

What a checkpoint names is built only within bounds (`load_trained`): each slot accepts the kinds of its protocol,
never a data set (they read and write files), and the operator is built on the meta device first, to count its
weights and modules before any memory is taken.

Saving is recoverable at every instant: the files are written (and flushed to disk) into a temporary sibling
``.checkpoint.tmp-*``, ``config.json`` last; the current checkpoint is renamed to ``.checkpoint.old``, the new one
into place, and the old one removed. Whatever a crash interrupts, one of the three is complete, and
`recover_checkpoint` puts the newest complete one in place and removes the leftovers.
"""

import errno
import hashlib
import json
import logging
import math
import os
import re
import reprlib
import shutil
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, NamedTuple

import torch
from safetensors import SafetensorError
from safetensors.torch import load_model, save_model
from torch import nn
from torch.nn.modules.module import (
    register_module_buffer_registration_hook,
    register_module_module_registration_hook,
    register_module_parameter_registration_hook,
)
from torch.utils.data import Dataset

from funcdiff.domains.base import Domain
from funcdiff.mollifiers.base import Mollifier
from funcdiff.operators.base import LatentEncoder, NeuralOperator
from funcdiff.processes.base import DiffusionProcess
from funcdiff.processes.schedules import Schedule
from funcdiff.registry import build, check_round_trip, components, made_class

logger = logging.getLogger(__name__)

FORMAT_VERSION = 3
"""3: config.json holds a checksum of itself (`config_checksum`). 2 (still read, with a warning that its settings are
not verified): components stored as registered kinds with their settings. 1: the operator config and a DDPM-only
process."""
CONFIG, MODEL, EMA, STATE = "config.json", "model.safetensors", "ema.safetensors", "training_state.pt"
CHECKSUM = "config_sha256"
"""The key of config.json that holds `config_checksum` of the rest."""

MAX_CONFIG_BYTES = 32 << 20
"""The largest config.json read: one is a few KiB, one with a hand-made schedule table of 10**6 steps about 20 MiB."""
MAX_DEPTH = 32
"""How many levels of dicts and lists config.json may nest (a checkpoint's nest 4)."""
MAX_WEIGHT_BYTES = 8 << 30
"""The most bytes of parameters and buffers a checkpoint's operator may take (the paper's 256 px operator: 1.1 GiB)."""
MAX_MODULES = 10_000
"""The most modules a checkpoint's operator may have (the paper's 256 px operator: 430): each takes time and memory
that `MAX_WEIGHT_BYTES` does not count."""
MAX_STEPS = 10**6
"""The most steps a schedule in a checkpoint may have (trained ones have 1000), and the longest list it may hold."""
MAX_GRID_POINTS = 1 << 26
"""The most points a grid shape in a checkpoint's components may have: 8192 x 8192, 406^3, or 25 minutes of 44.1 kHz
audio (what the operator samples at, and what its noise is drawn at, scale with it)."""
HEADER_BYTES = 16 << 20
"""What a weights file may hold beyond the bytes of the tensors it loads into: the safetensors header."""
SLOTS: dict[str, type] = {"operator": NeuralOperator, "process": DiffusionProcess}
"""The components a checkpoint builds, each with the protocol its kind must implement."""
COMPONENTS = (NeuralOperator, LatentEncoder, DiffusionProcess, Domain, Mollifier, Schedule)
"""What the components nested in a slot may be (a decoder and an encoder, a domain, a mollifier, a schedule)."""


class CheckpointError(ValueError):
    """A checkpoint that is missing, incomplete, corrupt or cannot be written, with what is wrong and where."""


class _Invalid(CheckpointError):
    """What config.json says is wrong: final, since a save replaces config.json whole (reading it again reads the same)."""


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


def config_checksum(config: dict[str, Any]) -> str:
    """The SHA-256 that a checkpoint's config.json holds of itself: of its canonical JSON (sorted keys), the checksum
    left out."""
    body = {key: value for key, value in config.items() if key != CHECKSUM}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def file_sha256(file: Path) -> str:
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
        files = {f.name: file_sha256(f) for f in sorted(tmp.iterdir())}
        # through JSON first, so that the checksum is of what a reader parses (tuples are lists, keys strings)
        full = {"format_version": FORMAT_VERSION, "funcdiff_version": _version(), **config, "files": files}
        full = json.loads(json.dumps(full))
        (tmp / CONFIG).write_text(json.dumps({**full, CHECKSUM: config_checksum(full)}, indent=2, sort_keys=True))
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

    A checkpoint that a running training replaces while it is read is read again (three tries, 0.2 s apart); what its
    config.json says is not (a save replaces config.json whole, so it would read the same).

    Raises:
        CheckpointError: if a file is missing or unreadable, a checksum does not match, the format is another, or the
            config is malformed: ``files`` names other than the checkpoint's own files, ``step`` not a count, a
            component slot not a dict with a string ``kind``.
    """
    return _read(Path(path), with_state, None)


def _read(path: Path, with_state: bool, check: Callable[[Path, dict[str, Any]], None] | None) -> Checkpoint:
    """`read_checkpoint`, with ``check`` (if given) run on the config before any other file is read."""
    for attempt in range(3):
        try:
            return _read_checkpoint(path, with_state, check)
        except _Invalid:
            raise
        except CheckpointError:
            if attempt == 2:
                raise
            time.sleep(0.2)
    raise AssertionError("unreachable")


def _read_checkpoint(path: Path, with_state: bool, check: Callable[[Path, dict[str, Any]], None] | None) -> Checkpoint:
    """One attempt of `_read`."""
    if not (path / CONFIG).is_file() or not (path / MODEL).is_file():
        hint = ""
        if not path.exists() and any(p != path for p in candidates(path)):
            hint = "; a crash left a save unfinished beside it: `--resume` (or `recover_checkpoint`) restores the newest complete one"
        raise CheckpointError(f"{path} is not a funcdiff checkpoint: it needs {CONFIG} and {MODEL}{hint}")
    for name in (CONFIG, MODEL, EMA, STATE):  # a link could point anywhere, or at a device that never ends
        if (path / name).is_symlink():
            raise CheckpointError(f"{path / name} is a symbolic link: a checkpoint's files are plain files inside it")
    config = _read_config(path)
    if check is not None:
        check(path, config)
    files = config["files"]
    for name in (EMA, STATE):
        if name not in files and (path / name).exists():
            raise CheckpointError(f"{path}: {name} is not listed in {CONFIG}'s files, so it cannot be verified")
    for name, digest in files.items():
        file = path / name
        if not file.is_file():
            raise CheckpointError(f"{path} is incomplete: {name} is missing")
        if file_sha256(file) != digest:
            raise CheckpointError(f"{file} is corrupt: its checksum does not match the one in {CONFIG}")
    state = None
    if with_state and (path / STATE).is_file():
        try:
            state = torch.load(path / STATE, map_location="cpu", weights_only=True)
        except Exception as error:  # noqa: BLE001 - any failure to read it means the file is not what we wrote
            raise CheckpointError(f"{path / STATE} cannot be read: {error}") from error
    return Checkpoint(path, config, state)


def _read_config(path: Path) -> dict[str, Any]:
    """The config.json of checkpoint ``path``, its size, format, nesting, checksum and shape checked (`_malformation`)."""
    file = path / CONFIG
    try:
        with file.open("rb") as f:
            text = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as error:
        raise CheckpointError(f"{file} cannot be read: {error}") from error
    if len(text) > MAX_CONFIG_BYTES:
        raise _Invalid(f"{file} is corrupt: it holds more than {MAX_CONFIG_BYTES} bytes, more than any checkpoint's config")
    try:
        config = json.loads(text)
    except (ValueError, RecursionError) as error:  # ValueError: not JSON, not UTF-8, or an int of too many digits
        raise _Invalid(f"{file} is corrupt: {error}") from error
    if not isinstance(config, dict):
        raise _Invalid(f"{path} is malformed: {CONFIG} must be a dict (a JSON object), not a {type(config).__name__}")
    version = config.get("format_version")
    if version not in (2, FORMAT_VERSION):
        raise _Invalid(f"{path}: checkpoint format {reprlib.repr(version)} is not one this funcdiff reads "
                       f"({FORMAT_VERSION}, or 2)")
    if _deeper_than(config, MAX_DEPTH):
        raise _Invalid(f"{path} is malformed: {CONFIG} is nested deeper than {MAX_DEPTH} levels")
    if version == FORMAT_VERSION and config.get(CHECKSUM) != config_checksum(config):
        raise _Invalid(f"{file} was edited or is corrupt: its checksum does not match")
    if version == 2:
        logger.warning("%s: its %s is of format 2, which has no checksum of itself, so its settings are not verified; saving "
                       "it again (resuming its run) writes format %d", path, CONFIG, FORMAT_VERSION)
    problem = _malformation(config)
    if problem is not None:
        raise _Invalid(f"{path} is malformed: {problem}")
    return config


def _deeper_than(value: Any, levels: int) -> bool:
    """Whether a JSON value nests dicts and lists more than ``levels`` deep (walked level by level, not recursively)."""
    level = [value]
    for _ in range(levels + 1):
        level = [child for v in level if isinstance(v, (dict, list)) for child in (v.values() if isinstance(v, dict) else v)]
        if not level:
            return False
    return True


def _malformation(config: dict[str, Any]) -> str | None:
    """What is wrong with the shape of a checkpoint's config, or None: ``files`` must map exactly the checkpoint's own
    file names (``model.safetensors``, optionally ``ema.safetensors`` and ``training_state.pt``) to SHA-256 checksums,
    ``step`` be a count, ``operator`` and ``process`` (where present) dicts with a string ``kind``, ``run`` and
    ``train`` dicts."""
    files = config.get("files")
    if not isinstance(files, dict):
        return f"'files' must be a dict of file names to SHA-256 checksums, got {reprlib.repr(files)}"
    for name, digest in files.items():
        if name not in (MODEL, EMA, STATE):
            return f"'files' names {reprlib.repr(name)}, which is not one of {MODEL}, {EMA}, {STATE}"
        if not isinstance(digest, str) or re.fullmatch("[0-9a-f]{64}", digest) is None:
            return f"'files' gives {reprlib.repr(digest)} for {name}, not 64 hex digits"
    if MODEL not in files:
        return f"'files' lacks {MODEL}"
    step = config.get("step", 0)
    if type(step) is not int or step < 0:
        return f"'step' must be an int >= 0, got {reprlib.repr(step)}"
    for slot in SLOTS:
        if slot in config and not (isinstance(config[slot], dict) and isinstance(config[slot].get("kind"), str)):
            return f"'{slot}' must be a dict with a string 'kind', got {reprlib.repr(config[slot])}"
    for key in ("run", "train"):
        if not isinstance(config.get(key, {}), dict):
            return f"'{key}' must be a dict, got {reprlib.repr(config[key])}"
    return None


def load_weights(module: nn.Module, path: str | Path, *, ema: bool = False) -> nn.Module:
    """Load a checkpoint's model (or EMA) weights into ``module`` in place; returns it.

    Raises:
        CheckpointError: if the file is missing or corrupt, or its tensors do not fit ``module``.
    """
    file = Path(path) / (EMA if ema else MODEL)
    if not file.is_file():
        raise CheckpointError(f"{file} does not exist")
    size, limit = file.stat().st_size, sum(_nbytes(t) for t in module.state_dict().values()) + HEADER_BYTES
    if size > limit:  # loading would read every tensor in it before finding that they do not fit
        raise CheckpointError(f"{file} holds {size} bytes, more than the {limit} that the weights of {type(module).__name__} "
                              "and a header take: it is not this model's")
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


def load_trained(path: str | Path, *, ema: bool = True, device: str = "cpu") -> TrainedRun:
    """A checkpoint's operator (EMA weights by default, in eval mode), its process and its config, ready to sample;
    ``path`` may be a packaged model's name (`funcdiff.training.pretrained`, e.g. ``"icons"``).

    Both are rebuilt from their registered kinds (`funcdiff.registry.build`): a user's own components load once the
    module that registers them has been imported. What the config names is checked first (`_check_slots`): each slot
    builds only kinds of its protocol, never a data set or anything else that is not a component, within the bounds
    above; the operator is built on the meta device first (`_build_operator`), so that its size is known before any
    memory is taken.

    Raises:
        CheckpointError: (one line) if `read_checkpoint` does, or the config names what a checkpoint may not build, or
            a component cannot be built from its settings, or the weights do not fit.
    """
    from funcdiff.training.pretrained import resolve_checkpoint  # it builds on this module

    path = resolve_checkpoint(path)
    config = _read(path, False, _check_slots).config
    model = _build_operator(path, config["operator"])
    ema_only = config.get("weights") == "ema"
    if ema_only and not ema:
        logger.warning("%s holds only its EMA weights; loading those", path)
    load_weights(model, path, ema=ema and not ema_only)
    return TrainedRun(model.to(device).eval(), _build(path, "process", config["process"]), config)


def _check_slots(path: Path, config: dict[str, Any]) -> None:
    """Raise a `CheckpointError` unless a checkpoint's config has both slots, every kind in them is one it may build
    (`_refusal`, by the registered class) and their sizes are within the bounds (`_check_sizes`); nothing is built."""
    for slot in SLOTS:
        tree = config.get(slot)
        if tree is None:
            raise _Invalid(f"{path} is malformed: {CONFIG} has no '{slot}'")
        try:
            found = components(tree, slot)
        except TypeError as error:
            raise _Invalid(f"{path} is malformed: {error}") from None
        except ValueError as error:
            raise _Invalid(f"{path}: {error}") from None
        for where, kind, maker in found:
            reason = _refusal(made_class(maker), where, slot)
            if reason is not None:
                place = f"the {slot} slot" if where == slot else where
                raise _Invalid(f"{path}: {place} holds kind {kind!r} ({maker.__module__}.{maker.__qualname__}), {reason}")
        _check_sizes(path, slot, tree)


def _refusal(made: type | None, where: str, slot: str) -> str | None:
    """Why a component of class ``made`` (None: a builder that does not say) may not sit at ``where`` in a checkpoint's
    ``slot``, or None: the slot's own component must implement its protocol (the operator as an ``nn.Module``, whose
    weights are loaded), nested ones must be components; none may be a data set, and the process holds no network
    (only the operator's size is counted before it is built)."""
    protocol = SLOTS[slot]
    if where == slot and (made is None or not _implements(made, protocol)):
        return f"not a {protocol.__name__}"
    if made is not None and issubclass(made, Dataset):
        return "a data set: data sets read and write files, and a checkpoint builds none"
    if made is None or not any(_implements(made, component) for component in COMPONENTS):
        return f"not a component ({', '.join(c.__name__ for c in COMPONENTS)})"
    if where == slot == "operator" and not issubclass(made, nn.Module):
        return "a NeuralOperator that is not a torch.nn.Module, so it has no weights to load"
    if slot == "process" and issubclass(made, nn.Module):
        return "a network (a torch.nn.Module): a process holds none, and only the operator's size is counted before it is built"
    return None


def _implements(cls: type, protocol: type) -> bool:
    """Whether ``cls`` implements ``protocol``: it subclasses it (as funcdiff's classes do), or has its methods (a
    protocol with data members cannot be checked on a class, only subclassed)."""
    if protocol in cls.__mro__:
        return True
    try:
        return issubclass(cls, protocol)
    except TypeError:
        return False


def _check_sizes(path: Path, slot: str, tree: dict[str, Any]) -> None:
    """Raise a `CheckpointError` where a checkpoint's ``slot`` names a grid (a list of ints under a key ending in
    ``shape``) of more than `MAX_GRID_POINTS` points, a schedule of more than `MAX_STEPS` steps (``num_steps``, or a
    list longer than a table of them)."""
    queue = deque([(tree, slot, slot)])
    while queue:
        value, where, key = queue.popleft()
        if isinstance(value, dict):
            queue.extend((v, f"{where}.{k}", k) for k, v in value.items())
        elif isinstance(value, list):
            if len(value) > MAX_STEPS + 1:
                raise _Invalid(f"{path}: {where} holds {len(value)} entries, more than the {MAX_STEPS + 1} of a table of "
                               f"{MAX_STEPS} steps")
            if key.endswith("shape") and value and all(type(v) is int for v in value):
                points = max(math.prod(abs(v) for v in value), *(abs(v) for v in value))
                if points > MAX_GRID_POINTS:
                    raise _Invalid(f"{path}: {where} is a grid of {points} points, more than the {MAX_GRID_POINTS} a "
                                   "checkpoint may name")
            queue.extend((v, f"{where}[{i}]", key) for i, v in enumerate(value))
        elif key == "num_steps" and type(value) is int and value > MAX_STEPS:
            raise _Invalid(f"{path}: {where} is {value} steps, more than the {MAX_STEPS} a checkpoint's schedule may have")


def _nbytes(tensor: torch.Tensor | None) -> int:
    """The bytes a tensor's elements take (0 for None, a parameter or buffer slot left empty)."""
    return 0 if tensor is None else tensor.numel() * tensor.element_size()


def _build_operator(path: Path, config: dict[str, Any]) -> nn.Module:
    """A checkpoint's operator, built first on the meta device (no memory) while counting the modules and the bytes of
    the parameters and buffers it registers, refused as soon as they pass `MAX_MODULES` or `MAX_WEIGHT_BYTES`; then
    built for real."""
    counted = {"modules": 0, "bytes": 0}

    def count(what: str, amount: int) -> None:
        counted[what] += amount
        if counted["bytes"] > MAX_WEIGHT_BYTES:
            raise CheckpointError(f"{path}: its operator would take more than {MAX_WEIGHT_BYTES / 2**30:g} GiB of weights, "
                                  "the most a checkpoint may build")
        if counted["modules"] > MAX_MODULES:
            raise CheckpointError(f"{path}: its operator would have more than {MAX_MODULES} modules, the most a checkpoint "
                                  "may build")

    hooks = [
        register_module_module_registration_hook(lambda module, name, submodule: count("modules", 1)),
        register_module_parameter_registration_hook(lambda module, name, tensor: count("bytes", _nbytes(tensor))),
        register_module_buffer_registration_hook(lambda module, name, tensor: count("bytes", _nbytes(tensor))),
    ]
    try:
        with torch.device("meta"):
            _build(path, "operator", config)
    finally:
        for hook in hooks:
            hook.remove()
    return _build(path, "operator", config)


def _build(path: Path, slot: str, config: dict[str, Any]) -> Any:
    """`build` of a checkpoint's ``slot``, a failure a one-line `CheckpointError` (whatever a constructor raises on
    settings it was not made for)."""
    try:
        return build(config)
    except CheckpointError:
        raise
    except Exception as error:  # whatever a constructor raises: see the docstring
        reason = " ".join(f"{type(error).__name__}: {error}".split())
        raise CheckpointError(f"{path}: its {slot} (kind {config['kind']!r}) cannot be built from {CONFIG}: "
                              f"{reason[:500]}{' ...' if len(reason) > 500 else ''}") from error
