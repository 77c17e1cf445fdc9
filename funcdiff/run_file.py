"""Run files: a training run written as JSON or TOML, its components named by their registered kinds.

A run file has four slots, each a JSON object (a TOML table)::

    {"data":     {"kind": "icons", "resolution": 32, "limit": 64}    a registered data set and its arguments,
                 or {"folder": "path/to/images", "resolution": 64}   a folder of images or sound files,
     "process":  {"kind": "mollified_ddpm", "domain": {...}, ...}    a registered process (its to_dict()),
     "operator": {"kind": "infty_diff", ...} or {"preset": "tiny"}   a registered operator, or a preset for the data,
     "settings": {"steps": 2000, "out_dir": "runs/x", ...}}          `TrainSettings` fields

Nested components are written as their own ``{"kind": ..., **arguments}``, exactly as ``to_dict()`` writes them
and checkpoints store them; `run_file_template` is a complete example. Kinds are looked up among the registered
ones (funcdiff's own and those of the plugins, `funcdiff.plugins`): a run file never makes funcdiff import a
module. Relative paths are relative to the working directory.
"""

import dataclasses
import json
from pathlib import Path
from typing import Any

import tomllib
import torch
from beartype.roar import BeartypeCallHintViolation
from torch import nn
from torch.utils.data import Dataset

from funcdiff.data.scattered import example_shape
from funcdiff.factory import TrainConfig, build_process, make_dataset
from funcdiff.operators import NeuralOperator, operator_preset
from funcdiff.processes.base import DiffusionProcess
from funcdiff.registry import build, lookup
from funcdiff.training.config import TrainSettings

SLOTS = ("data", "process", "operator", "settings")
"""The keys of a run file, each required."""

_READERS = {".json": ("JSON", json.loads), ".toml": ("TOML", tomllib.loads)}


def read_run_file(path: str | Path) -> dict[str, Any]:
    """The contents of a run file: JSON (``.json``) or TOML (``.toml``).

    Raises:
        ValueError: if the file has another suffix, cannot be read, does not parse, or is not an object (a table).
    """
    path = Path(path)
    if path.suffix.lower() not in _READERS:
        raise ValueError(f"run file must end in .json or .toml, got {str(path)!r}")
    language, parse = _READERS[path.suffix.lower()]
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ValueError(f"run file {str(path)!r} cannot be read: {error.strerror or error}") from error
    try:
        config = parse(text)
    except ValueError as error:  # json.JSONDecodeError and tomllib.TOMLDecodeError
        raise ValueError(f"run file {str(path)!r} is not valid {language}: {error}") from error
    if not isinstance(config, dict):
        raise ValueError(  # noqa: TRY004
            f"run file {str(path)!r} must hold an object with the keys {list(SLOTS)}, got a {type(config).__name__}")
    return config


def build_from_run_file(config: dict[str, Any]) -> tuple[nn.Module, DiffusionProcess, Dataset, TrainSettings]:
    """The operator, process, training data and settings that a run file's contents (`read_run_file`) describe,
    ready for `funcdiff.training.Trainer`; the operator is initialised from the settings' seed.

    Raises:
        ValueError: if a slot is missing or a key unknown, a kind is not registered, a slot builds an object of another
            protocol (a `DiffusionProcess`, a `NeuralOperator` that is an ``nn.Module``, a ``Dataset``), a component
            refuses its arguments, or the data's channels or dimensions do not fit the process's domain.
    """
    missing = [slot for slot in SLOTS if slot not in config]
    unknown = sorted(set(config) - set(SLOTS))
    if missing or unknown:
        problems = [f"missing {missing}"] * bool(missing) + [f"unknown {unknown}"] * bool(unknown)
        raise ValueError(f"a run file has the keys {list(SLOTS)}: {' and '.join(problems)}")
    for slot in SLOTS:
        if not isinstance(config[slot], dict):
            raise ValueError(f"the {slot} slot must be an object (a table), got {config[slot]!r}")  # noqa: TRY004
    settings = _settings(config["settings"])
    process = _component("process", config["process"], (DiffusionProcess,), "a DiffusionProcess")
    data = _dataset(config["data"])
    if len(data) == 0:
        raise ValueError(f"the data slot: {type(data).__name__} has no examples")
    shape, domain = example_shape(data), process.domain
    if shape[0] != domain.channels or len(shape) - 1 != domain.ndim:
        raise ValueError(f"the data slot's examples have shape {shape}: {shape[0]} channel(s) on a {len(shape) - 1}-D grid, "
                         f"but the process's domain has {domain.channels} channel(s) on a {domain.ndim}-D grid: set the "
                         "domain's 'channels' and 'ndim' to fit the data")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        operator = _operator(config["operator"], shape)
    return operator, process, data, settings


def _settings(spec: dict[str, Any]) -> TrainSettings:
    """The `TrainSettings` of the settings slot, which validates the values."""
    allowed = [field.name for field in dataclasses.fields(TrainSettings)]
    unknown = sorted(set(spec) - set(allowed))
    if unknown:
        raise ValueError(f"the settings slot: unknown field(s) {unknown}; allowed: {allowed}")
    try:
        return TrainSettings.from_dict(spec)
    except (TypeError, ValueError) as error:
        raise ValueError(f"the settings slot: {' '.join(str(error).split())}") from error


def _component(slot: str, spec: dict[str, Any], protocols: tuple[type, ...], what: str) -> Any:
    """What `funcdiff.registry.build` makes of a slot's ``{"kind": ...}``, checked to be every one of ``protocols``
    (together, ``what``)."""
    if "kind" not in spec:
        raise ValueError(f"the {slot} slot needs a 'kind' (a registered kind), got the keys {sorted(spec)}")
    kind = spec["kind"]
    try:
        maker = lookup(kind)
    except ValueError as error:
        raise ValueError(f"the {slot} slot: {error}") from error
    try:
        built = build(spec)
    except (TypeError, ValueError, BeartypeCallHintViolation) as error:
        reason = " ".join(str(error).split())
        raise ValueError(f"the {slot} slot: {maker.__module__}.{maker.__qualname__} (kind {kind!r}) cannot be built from the "
                         f"arguments {sorted(set(spec) - {'kind'})}: {reason}") from error
    if not all(isinstance(built, protocol) for protocol in protocols):
        raise ValueError(f"the {slot} slot: kind {kind!r} built {type(built).__name__}, which is not {what}")
    return built


def _dataset(spec: dict[str, Any]) -> Dataset:
    """The data slot's data set: a registered kind, or ``{"folder": path, "resolution": ..., **options}``."""
    if "folder" not in spec:
        return _component("data", spec, (Dataset,), "a torch.utils.data.Dataset")
    if "kind" in spec:
        raise ValueError(f"the data slot names a 'kind' ({spec['kind']!r}) and a 'folder' ({spec['folder']!r}): "
                         "write one of them")
    options = {key: tuple(value) if isinstance(value, list) else value for key, value in spec.items() if key != "folder"}
    try:
        return make_dataset(Path(spec["folder"]), **options)
    except (TypeError, ValueError) as error:
        reason = " ".join(str(error).split())
        raise ValueError(f"the data slot: folder {spec['folder']!r} cannot be read with {options}: {reason}") from error


def _operator(spec: dict[str, Any], shape: tuple[int, ...]) -> nn.Module:
    """The operator slot's operator: a registered kind, or ``{"preset": name}`` for data of ``shape = (c, *spatial)``."""
    if "preset" not in spec:
        return _component("operator", spec, (NeuralOperator, nn.Module), "a NeuralOperator (an nn.Module)")
    if set(spec) != {"preset"}:
        raise ValueError(f"the operator slot: a 'preset' takes no other keys, got {sorted(set(spec) - {'preset'})}; to change "
                         "its settings write the operator's to_dict() (its 'kind' and arguments) instead")
    try:
        return operator_preset(spec["preset"], channels=shape[0], resolution=shape[1:])
    except ValueError as error:
        raise ValueError(f"the operator slot: preset {spec['preset']!r}: {error}") from error


def run_file_template() -> dict[str, Any]:
    """A complete run file of `funcdiff train`'s defaults (`funcdiff.factory.TrainConfig`'s: icons at 32 px, the
    mollified DDPM, the ``cpu-small`` preset), every setting written out, to save as JSON or TOML and edit."""
    demo = TrainConfig()
    process = build_process(demo, (demo.channels, demo.resolution, demo.resolution))
    return {
        "data": {"kind": demo.data, "resolution": demo.resolution},
        "process": process.to_dict(),
        "operator": {"preset": demo.preset},
        "settings": {key: value for key, value in demo.settings().to_dict().items() if value is not None},  # TOML has no null
    }
