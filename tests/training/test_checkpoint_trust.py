"""Checkpoints cannot be edited silently or made to act: config.json carries a checksum of itself, each slot builds
only components of its protocol within size bounds (never a data set, nothing that reads or writes files), and
``files`` names only the checkpoint's own files. A fuzz test mutates config.json at random."""

import contextlib
import copy
import hashlib
import json
import logging
import os
import resource
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

import funcdiff.data  # registers the data sets, so that the fuzz test offers their kinds
from funcdiff import registry
from funcdiff.factory import TrainConfig
from funcdiff.training import checkpoint as checkpoint_module
from funcdiff.training import load_trained, read_checkpoint
from funcdiff.training.checkpoint import CheckpointError
from tests.training.conftest import trainer_for

CHECKSUM = "config_sha256"
EDITED = "config.json was edited or is corrupt: its checksum does not match"
SENTINEL = "<sentinel>"
"""Stands in a mutated config for a per-example directory that must stay empty (a ``cache_dir`` or ``root``)."""

# --- what load_trained opens: an audit hook (they cannot be removed, so it records only inside `touched`) ---

_recording: list[tuple[str, Any, Any]] | None = None
READS = {"open", "os.listdir", "os.scandir", "glob.glob"}
WRITES = {"os.mkdir", "os.rename", "os.remove", "os.rmdir", "os.symlink", "os.link", "os.truncate", "os.chmod", "os.utime",
          "shutil.rmtree", "shutil.copyfile", "shutil.copytree", "shutil.move"}
ROOT = Path(__file__).resolve().parents[2]
CODE = {os.path.realpath(p) for p in sys.path if p and os.path.realpath(p) != str(ROOT)}
CODE.add(str(Path(funcdiff.__file__).resolve().parent))
"""Where reads are imports of code (the import system looks into every entry of sys.path), not something a checkpoint
chose."""


def _audit(event: str, args: tuple[Any, ...]) -> None:
    """Record a file event while `touched` is recording."""
    if _recording is not None and (event in READS or event in WRITES) and args:
        _recording.append((event, args[0], args[1:3]))


sys.addaudithook(_audit)


@contextlib.contextmanager
def touched() -> Iterator[list[tuple[str, Any, Any]]]:
    """The files and directories opened, listed or changed inside the block: ``(event, path, rest of the arguments)``."""
    global _recording
    events: list[tuple[str, Any, Any]] = []
    _recording = events
    try:
        yield events
    finally:
        _recording = None


def trespasses(events: list[tuple[str, Any, Any]], inside: Path) -> list[str]:
    """The events that write anything, or read something outside ``inside`` that is not code."""
    bad = []
    for event, target, rest in events:
        if isinstance(target, int) or target is None:
            continue  # an already open file descriptor
        where = os.path.realpath(os.fsdecode(target))
        writes = event in WRITES
        if event == "open":
            mode, flags = (rest + (None, None))[:2]
            writing = os.O_WRONLY | os.O_RDWR | os.O_CREAT
            writes = any(c in mode for c in "wax+") if isinstance(mode, str) else bool((flags or 0) & writing)
        if writes or not any(where == folder or where.startswith(folder + os.sep) for folder in (str(inside), *CODE)):
            bad.append(f"{event} {where}")
    return bad


# --- a real tiny checkpoint, made once; tests edit copies of it ---


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-step tiny checkpoint (model, EMA and training state)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FUNCDIFF_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        out = tmp_path_factory.mktemp("trust") / "run"
        config = TrainConfig(data="icons", data_limit=8, resolution=16, preset="tiny", batch_size=4, steps=1, diffusion_steps=100,
                             log_every=0, checkpoint_every=0, sample_count=2, sample_steps=2, out_dir=str(out))
        return trainer_for(config, progress=False).run().out_dir / "checkpoint"


def sign(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with the checksum the issue defines: the SHA-256 of the canonical JSON of everything else."""
    body = {key: value for key, value in config.items() if key != CHECKSUM}
    return {**body, CHECKSUM: hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()}


def copy_of(original: Path, root: Path) -> Path:
    """A copy of the checkpoint ``original`` in ``root``."""
    return Path(shutil.copytree(original, root / "checkpoint"))


def config_of(path: Path) -> dict[str, Any]:
    """The config.json of checkpoint ``path``."""
    return json.loads((path / "config.json").read_text())


def write_config(path: Path, config: Any, *, signed: bool = True) -> None:
    """Replace the config.json of checkpoint ``path`` (re-signed, as a forger would, unless ``signed`` is False)."""
    (path / "config.json").write_text(json.dumps(sign(config) if signed and isinstance(config, dict) else config))


def set_at(config: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    """A copy of ``config`` with the setting at ``dotted`` (``"process.mollifier.sigma"``) set to ``value``."""
    changed = copy.deepcopy(config)
    *parents, last = dotted.split(".")
    node = changed
    for key in parents:
        node = node[key]
    node[last] = value
    return changed


# --- 2: config.json has a checksum ---


def test_a_saved_config_carries_its_checksum(original: Path) -> None:
    """Format 3: config.json holds the SHA-256 of its canonical JSON without the checksum."""
    config = config_of(original)
    assert config["format_version"] == 3
    assert config[CHECKSUM] == sign(config)[CHECKSUM]


@pytest.mark.parametrize("dotted, value", [
    ("process.mollifier.sigma", 0.0665), ("process.prediction", "mollified_eps"), ("operator.knn", 4),
    ("process.schedule.num_steps", 90), ("operator.reference_shape", [32, 32]),
])
def test_an_edited_config_is_refused(original: Path, tmp_path: Path, dotted: str, value: Any) -> None:
    """Each edit that would sample a different picture while exiting 0 is a one-line error naming config.json."""
    path = copy_of(original, tmp_path)
    write_config(path, set_at(config_of(path), dotted, value), signed=False)
    with pytest.raises(CheckpointError, match=EDITED) as error:
        load_trained(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_a_version_2_checkpoint_loads_with_a_warning(original: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A checkpoint saved before configs had a checksum still loads, and the log says its config is not verified."""
    path = copy_of(original, tmp_path)
    config = {key: value for key, value in config_of(path).items() if key != CHECKSUM}
    write_config(path, {**config, "format_version": 2}, signed=False)
    with caplog.at_level(logging.WARNING, logger="funcdiff.training.checkpoint"):
        run = load_trained(path)
    assert run.config["step"] == 1 and run.process.to_dict() == config["process"]
    assert any("not verified" in record.getMessage() and str(path) in record.getMessage() for record in caplog.records)


# --- 3: each slot builds only its protocol's kinds, nothing that touches files, within bounds ---


@pytest.mark.parametrize("dotted, component, match", [
    ("operator", {"kind": "icons", "resolution": 16, "cache_dir": SENTINEL},
     r"the operator slot holds kind 'icons' \(funcdiff\.data\.icons\.IconDataset\), not a NeuralOperator"),
    ("process", {"kind": "folder", "root": SENTINEL, "resolution": 16},
     r"the process slot holds kind 'folder' \(funcdiff\.data\.folder\.ImageFolder\), not a DiffusionProcess"),
    ("operator", {"kind": "mollified_ddpm"}, r"the operator slot holds kind 'mollified_ddpm' .*, not a NeuralOperator"),
    ("operator", {"kind": "sparse_encoder", "channels": 1, "reference_shape": [16, 16], "unet_shape": [8, 8], "z_dim": 4},
     r"the operator slot holds kind 'sparse_encoder' .*, not a NeuralOperator"),
    ("process", {"kind": "gaussian", "sigma": 0.1}, r"the process slot holds kind 'gaussian' .*, not a DiffusionProcess"),
    ("process.mollifier", {"kind": "icons", "resolution": 16, "cache_dir": SENTINEL},
     r"process\.mollifier holds kind 'icons' \(funcdiff\.data\.icons\.IconDataset\), a data set"),
    ("process.domain", {"kind": "folder", "root": SENTINEL}, r"process\.domain holds kind 'folder' .*, a data set"),
    ("process.schedule", None, r"process\.schedule holds kind 'infty_diff' .*, a network"),
])
def test_a_slot_builds_only_its_protocol_and_never_touches_files(
    original: Path, tmp_path: Path, dotted: str, component: dict[str, Any] | None, match: str
) -> None:
    """A data set (which reads and writes files), a component of another protocol or a network inside the process is
    refused by its registered class before anything is built: nothing appears in the directory it names."""
    path = copy_of(original, tmp_path)
    sentinel = tmp_path / "sentinel"
    sentinel.mkdir()
    (sentinel / "picture.png").write_bytes(b"not read")
    config = config_of(path)
    component = config["operator"] if component is None else json.loads(json.dumps(component).replace(SENTINEL, str(sentinel)))
    write_config(path, set_at(config, dotted, component))
    with touched() as events, pytest.raises(CheckpointError, match=match) as error:
        load_trained(path)
    assert "\n" not in str(error.value)
    assert sorted(p.name for p in sentinel.iterdir()) == ["picture.png"]
    assert not trespasses(events, path)


@pytest.mark.parametrize("dotted, value, match", [
    ("operator.width", 10**7, "GiB of weights"),
    ("operator.sparse_blocks", 400, "modules"),
    ("process.schedule.num_steps", 10**7, "10000000 steps"),
    ("operator.reference_shape", [2**14, 2**14], "268435456 points"),
    ("operator.unet_shape", [2**30, 8], "points"),
])
def test_sizes_are_bounded_before_anything_is_allocated(
    original: Path, tmp_path: Path, dotted: str, value: Any, match: str
) -> None:
    """An operator over the weight or module bound (counted while it is built on the meta device), a schedule of too
    many steps and a grid of too many points are one-line errors, and nothing large is allocated."""
    path = copy_of(original, tmp_path)
    write_config(path, set_at(config_of(path), dotted, value))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(CheckpointError, match=match) as error:
        load_trained(path)
    assert "\n" not in str(error.value) and str(path) in str(error.value)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 256 << 10  # KiB


def test_a_weights_file_larger_than_its_model_is_not_loaded(original: Path, tmp_path: Path) -> None:
    """A weights file with more bytes than the model it is loaded into is refused before its tensors are read."""
    path = copy_of(original, tmp_path)
    tensors = load_file(str(path / "model.safetensors"))
    save_file({**tensors, "padding": torch.zeros(6 << 20)}, str(path / "model.safetensors"))  # 24 MiB more
    config = config_of(path)
    config["files"]["model.safetensors"] = hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest()
    write_config(path, config)
    with pytest.raises(CheckpointError, match=r"model\.safetensors holds \d+ bytes, more than"):
        load_trained(path, ema=False)


# --- 4: files are confined to the checkpoint; the config's shape is checked before anything is hashed or built ---


def _files(config: dict[str, Any], files: Any) -> dict[str, Any]:
    """``config`` with ``files`` in place of its files."""
    return {**config, "files": files}


def _without(config: dict[str, Any], key: str) -> dict[str, Any]:
    """``config`` without ``key``."""
    return {k: v for k, v in config.items() if k != key}


HEX = "0" * 64
MALFORMED = {
    "a path out of the checkpoint": (lambda c: _files(c, {**c["files"], "../../etc/passwd": HEX}),
                                     r"'files' names '\.\./\.\./etc/passwd'"),
    "an absolute path": (lambda c: _files(c, {**c["files"], "/etc/passwd": HEX}), r"'files' names '/etc/passwd'"),
    "config.json itself": (lambda c: _files(c, {**c["files"], "config.json": HEX}), r"'files' names 'config\.json'"),
    "no files": (lambda c: _files(c, {}), r"'files' lacks model\.safetensors"),
    "files as a list": (lambda c: _files(c, list(c["files"])), r"'files' must be a dict"),
    "a checksum that is not hex": (lambda c: _files(c, {**c["files"], "model.safetensors": "abc"}), r"not 64 hex digits"),
    "no files key": (lambda c: _without(c, "files"), r"'files' must be a dict"),
    "no operator": (lambda c: _without(c, "operator"), r"has no 'operator'"),
    "no process": (lambda c: _without(c, "process"), r"has no 'process'"),
    "an operator that is a list": (lambda c: {**c, "operator": [c["operator"]]},
                                   r"'operator' must be a dict with a string 'kind'"),
    "a kind that is not a string": (lambda c: {**c, "process": {**c["process"], "kind": ["x"]}}, r"'process' must be a dict"),
    "a negative step": (lambda c: {**c, "step": -1}, r"'step' must be an int >= 0"),
    "a nested kind that is not a string": (lambda c: set_at(c, "process.mollifier.kind", 3),
                                           r"process\.mollifier has a kind that is not a string"),
    "a step that is a string": (lambda c: {**c, "step": "1"}, r"'step' must be an int >= 0"),
    "a run that is a list": (lambda c: {**c, "run": []}, r"'run' must be a dict"),
    "a config that is a list": (lambda c: [c], r"must be a dict"),
    "nesting too deep": (lambda c: {**c, "run": {"x": json.loads("[" * 100 + "]" * 100)}}, r"nested deeper than 32 levels"),
    "nesting deeper than Python parses": (lambda c: json.dumps(c)[:-1] + ', "x": ' + "[" * 10**5 + "]" * 10**5 + "}",
                                          r"config\.json is corrupt"),
}


@pytest.mark.parametrize("name", MALFORMED)
def test_a_malformed_config_is_a_one_line_error_before_anything_is_read(original: Path, tmp_path: Path, name: str) -> None:
    """Every malformed shape (re-signed, so the checksum does not catch it first) is ``<path> is malformed: ...``, and
    no file is opened but config.json."""
    change, match = MALFORMED[name]
    path = copy_of(original, tmp_path)
    config = change(config_of(path))
    if isinstance(config, str):  # JSON that Python cannot turn into objects, so not signed
        (path / "config.json").write_text(config)
    else:
        write_config(path, config)
    with touched() as events, pytest.raises(CheckpointError, match=match) as error:
        load_trained(path)
    assert f"{path} is malformed: " in str(error.value) or "config.json is corrupt" in str(error.value)
    assert "\n" not in str(error.value)
    opened = [os.path.basename(os.fsdecode(target)) for event, target, _ in events if event == "open"]
    assert set(opened) <= {"config.json"}, opened
    assert not trespasses(events, path)


def test_every_file_of_a_checkpoint_is_listed_and_plain(original: Path, tmp_path: Path) -> None:
    """An EMA file that ``files`` does not list (so it would load unverified) and a symbolic link (which could point
    anywhere, or at a device that never ends) are refused."""
    path = copy_of(original, tmp_path / "a")
    config = config_of(path)
    write_config(path, {**config, "files": {k: v for k, v in config["files"].items() if k != "ema.safetensors"}})
    with pytest.raises(CheckpointError, match=r"ema\.safetensors is not listed in config\.json's files"):
        load_trained(path)
    path = copy_of(original, tmp_path / "b")
    os.replace(path / "model.safetensors", tmp_path / "model.safetensors")
    (path / "model.safetensors").symlink_to(tmp_path / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"model\.safetensors is a symbolic link"):
        read_checkpoint(path)


def test_a_config_larger_than_the_bound_is_not_parsed(original: Path, tmp_path: Path) -> None:
    """A config.json of more than 32 MiB is refused by its size."""
    path = copy_of(original, tmp_path)
    write_config(path, {**config_of(path), "padding": "x" * (33 << 20)})
    with pytest.raises(CheckpointError, match=r"config\.json is corrupt: it holds more than \d+ bytes"):
        load_trained(path)


# --- the fuzz test ---

KINDS = registry.registered_kinds()
KEYS = ["kind", "cache_dir", "root", "resolution", "limit", "num_steps", "channels", "ndim", "reference_shape", "unet_shape",
        "width", "sparse_blocks", "knn", "sigma", "duration", "decoder", "encoder", "domain", "mollifier", "schedule", "alpha_bar",
        "prediction"]
NAMES = ["model.safetensors", "ema.safetensors", "training_state.pt", "config.json", "../x", "../../etc/passwd", "/etc/passwd",
         SENTINEL, SENTINEL + "/x", "", ".", "model.safetensors/.."]
NUMBERS = st.one_of(st.integers(-3, 70), st.sampled_from([0, -1, 2**31, 2**63, 10**6 + 1, 10**12, 10**30, -(10**30)]),
                    st.floats(allow_nan=True, allow_infinity=True))
LEAVES = st.one_of(st.none(), st.booleans(), NUMBERS, st.text(max_size=6), st.sampled_from([SENTINEL, *KINDS, "x0", "eps"]))


def _nested(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    settings_ = st.dictionaries(st.sampled_from(KEYS), children, max_size=4)
    return st.one_of(st.lists(children, max_size=4), settings_,
                     st.builds(lambda kind, rest: {**rest, "kind": kind}, st.sampled_from(KINDS), settings_))


VALUES = st.recursive(LEAVES, _nested, max_leaves=8)
SIZES = st.one_of(st.integers(0, 5000), st.sampled_from([10**4, 10**6 + 1, 10**9, 2**40, 2**63 - 1]))
DIGESTS = st.text("0123456789abcdef", min_size=64, max_size=64)
FILES = st.one_of(st.dictionaries(st.sampled_from(NAMES), st.one_of(DIGESTS, VALUES), max_size=4), st.just({}),
                  st.lists(st.sampled_from(NAMES), max_size=3), VALUES)


def _paths(value: Any, prefix: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    """Every key path inside ``value`` (dict keys and list indices), ``prefix`` first."""
    found = [prefix]
    if isinstance(value, dict):
        found += [p for key, v in value.items() for p in _paths(v, (*prefix, key))]
    elif isinstance(value, list):
        found += [p for i, v in enumerate(value) for p in _paths(v, (*prefix, i))]
    return found


def _mutate(data: st.DataObject, config: dict[str, Any]) -> dict[str, Any]:
    """``config`` changed by one to three random edits: a setting replaced, made large or removed, a component's kind
    swapped (with settings that name a directory), or ``files`` replaced or given an extra name."""
    config = copy.deepcopy(config)
    paths = [(key,) for key in config]
    paths += _paths(config["operator"], ("operator",))[1:] + _paths(config["process"], ("process",))[1:]
    for _ in range(data.draw(st.integers(1, 3))):
        paths = [p for p in paths if _get(config, p[:-1]) is not None]
        edit = data.draw(st.sampled_from(["set", "set", "grow", "grow", "delete", "kind", "kind", "files", "file name"]))
        where = data.draw(st.sampled_from(paths))
        parent = _get(config, where[:-1])
        if edit == "set" and isinstance(parent, (dict, list)):
            _put(parent, where[-1], data.draw(st.one_of(NUMBERS, VALUES)))
        elif edit == "grow" and isinstance(parent, (dict, list)) and type(_get(config, where)) is int:
            _put(parent, where[-1], data.draw(SIZES))
        elif edit == "delete" and isinstance(parent, dict):
            parent.pop(where[-1], None)
        elif edit == "kind":
            target = data.draw(st.sampled_from([("operator",), ("process",), ("process", "mollifier"), ("process", "domain"),
                                                ("process", "schedule"), where]))
            node = _get(config, target)
            extra = data.draw(st.dictionaries(st.sampled_from(["cache_dir", "root", "resolution", "limit"]),
                                              st.sampled_from([SENTINEL, 16, 2, 10**9]), max_size=3))
            if isinstance(node, dict):
                node.update(extra, kind=data.draw(st.sampled_from(KINDS)))
        elif edit == "files":
            config["files"] = data.draw(FILES)
        elif isinstance(config.get("files"), dict):
            config["files"][data.draw(st.sampled_from(NAMES))] = data.draw(st.one_of(DIGESTS, VALUES))
    return config


def _get(config: Any, path: tuple[Any, ...]) -> Any:
    """The value at ``path`` in ``config``, or None where an earlier edit removed or replaced it."""
    for key in path:
        in_list = isinstance(config, list) and type(key) is int and key < len(config)
        if (isinstance(config, dict) and key in config) or in_list:
            config = config[key]
        else:
            return None
    return config


def _put(parent: dict[str, Any] | list[Any], key: Any, value: Any) -> None:
    """``parent[key] = value`` where the key fits the container."""
    if isinstance(parent, dict) or (isinstance(key, int) and key < len(parent)):
        parent[key] = value


def _with_sentinel(value: Any, sentinel: Path) -> Any:
    """``value`` with `SENTINEL` replaced by the example's sentinel directory."""
    return json.loads(json.dumps(value).replace(SENTINEL, str(sentinel)))


def test_fuzz_any_config_loads_or_is_a_one_line_error_and_never_acts(
    original: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Random mutations of config.json (re-signed in half of the examples, so the checks past the checksum are
    reached): `load_trained` returns a model or raises a one-line ValueError/TypeError, writes nothing, reads nothing
    outside the checkpoint, creates nothing in the directories the config names, and keeps the peak memory bounded
    (the weight bound is lowered to 64 MiB, so that the models it accepts are small)."""
    monkeypatch.setattr(checkpoint_module, "MAX_WEIGHT_BYTES", 64 << 20)
    base, config = tmp_path_factory.mktemp("fuzz"), config_of(original)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    @settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(data=st.data())
    def example(data: st.DataObject) -> None:
        root = Path(tempfile.mkdtemp(dir=base))
        path, sentinel = copy_of(original, root), root / "sentinel"
        sentinel.mkdir()
        monkeypatch.setenv("HOME", str(root / "home"))
        monkeypatch.setenv("FUNCDIFF_CACHE", str(root / "cache"))
        signed = data.draw(st.booleans(), label="re-signed")
        write_config(path, _with_sentinel(_mutate(data, config), sentinel), signed=signed)
        with touched() as events:
            try:
                run = load_trained(path)
            except Exception as error:  # noqa: BLE001 - what it raises is what the test checks
                assert isinstance(error, (ValueError, TypeError)), f"{type(error).__name__}: {error}"
                assert "\n" not in str(error), str(error)
            else:
                assert isinstance(run.model, torch.nn.Module)
        assert not any(sentinel.iterdir()) and not (root / "home").exists() and not (root / "cache").exists()
        assert not trespasses(events, path)
        shutil.rmtree(root)

    example()
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 1 << 20  # KiB: 1 GiB
