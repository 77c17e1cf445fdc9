"""Plugins: a user's module that registers a component is imported by file path, by module name, from
``FUNCDIFF_PLUGINS`` and from an installed entry point, in that order and once per process; a plugin that cannot be
imported is a one-line error naming it; ``--plugin`` is pulled out of a command line before the rest is parsed."""

import importlib.metadata
import logging
import sys
from pathlib import Path

import pytest
import torch

import funcdiff
from funcdiff import registry
from funcdiff.plugins import load_plugins, plugin_args

PLUGIN = '''
"""A user's mollifier, registered under a test kind; each import appends a line to imports.log beside it."""

from pathlib import Path

import funcdiff

with open(Path(__file__).with_name("imports.log"), "a") as log:
    log.write(__name__ + "\\n")


@funcdiff.register("{kind}")
class HalfMollifier:
    """Halves a field (a stand-in for a real mollifier)."""

    def __init__(self, gain: float = 0.5) -> None:
        self.gain = gain

    def mollify(self, x):
        return self.gain * x

    def unmollify(self, y, inv_snr=0.05):
        return y / self.gain

    def to_dict(self):
        return {{"kind": "{kind}", "gain": self.gain}}
'''


@pytest.fixture(autouse=True)
def private_registry(monkeypatch) -> None:
    """Registrations made by a test are forgotten after it."""
    monkeypatch.setattr(registry, "_KINDS", dict(registry._KINDS))
    monkeypatch.setattr(registry, "_ORIGINS", dict(registry._ORIGINS))


@pytest.fixture(autouse=True)
def no_other_plugins(monkeypatch) -> None:
    """No plugins from the environment or from installed packages unless a test names them."""
    monkeypatch.delenv("FUNCDIFF_PLUGINS", raising=False)
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda *, group: [])


@pytest.fixture(autouse=True)
def forget_plugin_modules():
    """The plugin modules a test imported are removed from ``sys.modules`` after it, so the next test imports afresh."""
    yield
    for name in [name for name in sys.modules if name.startswith(("funcdiff_plugin_", "user_plugin_"))]:
        del sys.modules[name]


def write_plugin(folder: Path, module: str, kind: str) -> Path:
    """A plugin file ``<folder>/<module>.py`` that registers a mollifier under ``kind``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{module}.py"
    path.write_text(PLUGIN.format(kind=kind))
    return path


def imports(path: Path) -> list[str]:
    """The module names under which the plugin file at ``path`` (or its neighbours) was imported."""
    log = path.with_name("imports.log")
    return log.read_text().split() if log.exists() else []


def test_a_file_plugin_registers_its_kind_and_is_imported_once(tmp_path, monkeypatch) -> None:
    """By path, the file's kind builds; the same file again (also written another way) is not imported again."""
    path = write_plugin(tmp_path / "mine", "user_plugin_file", "test-plugin-half")
    assert load_plugins([str(path)]) == [str(path)]
    mollifier = funcdiff.build({"kind": "test-plugin-half", "gain": 0.25})
    assert torch.equal(mollifier.mollify(torch.ones(1, 1, 4)), torch.full((1, 1, 4), 0.25))
    monkeypatch.chdir(tmp_path)
    assert load_plugins(["mine/user_plugin_file.py", str(path)]) == ["mine/user_plugin_file.py"]
    assert len(imports(path)) == 1 and imports(path)[0].startswith("funcdiff_plugin_user_plugin_file_")


def test_two_files_of_one_name_are_two_modules(tmp_path, monkeypatch) -> None:
    """The module name of a file plugin comes from its path, so equal file names in two folders both load."""
    first = write_plugin(tmp_path / "a", "user_plugin_same", "test-plugin-a")
    second = write_plugin(tmp_path / "b", "user_plugin_same", "test-plugin-b")
    load_plugins([str(first), str(second)])
    assert {"test-plugin-a", "test-plugin-b"} <= set(registry.registered_kinds())
    assert imports(first) != imports(second)


def test_a_module_name_plugin_is_imported_from_sys_path_once(tmp_path, monkeypatch) -> None:
    """A dotted name is imported from ``sys.path`` (the command line's working directory is on it)."""
    path = write_plugin(tmp_path / "user_plugin_pkg", "module", "test-plugin-module")
    (path.parent / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert load_plugins(["user_plugin_pkg.module"]) == ["user_plugin_pkg.module"]
    assert load_plugins(["user_plugin_pkg.module"]) == ["user_plugin_pkg.module"]
    assert "test-plugin-module" in registry.registered_kinds() and imports(path) == ["user_plugin_pkg.module"]


def test_the_environment_variable_names_plugins_before_the_given_ones(tmp_path, monkeypatch) -> None:
    """``FUNCDIFF_PLUGINS`` is comma-separated (spaces and empty entries ignored) and loads before ``modules``."""
    by_file = write_plugin(tmp_path / "f", "user_plugin_env_file", "test-plugin-env-file")
    write_plugin(tmp_path / "m", "user_plugin_env_module", "test-plugin-env-module")
    write_plugin(tmp_path / "g", "user_plugin_given", "test-plugin-given")
    monkeypatch.syspath_prepend(str(tmp_path / "m"))
    monkeypatch.setenv("FUNCDIFF_PLUGINS", f" user_plugin_env_module, ,{by_file} ,")
    given = str(tmp_path / "g" / "user_plugin_given.py")
    assert load_plugins([given]) == ["user_plugin_env_module", str(by_file), given]
    assert {"test-plugin-env-file", "test-plugin-env-module", "test-plugin-given"} <= set(registry.registered_kinds())


def test_entry_points_load_first(tmp_path, monkeypatch) -> None:
    """An installed package's ``funcdiff.plugins`` entry point is imported, before the environment's and given plugins."""
    write_plugin(tmp_path, "user_plugin_entry", "test-plugin-entry")
    write_plugin(tmp_path, "user_plugin_after", "test-plugin-after")
    monkeypatch.syspath_prepend(str(tmp_path))
    entry = importlib.metadata.EntryPoint(name="half", value="user_plugin_entry", group="funcdiff.plugins")
    groups = []

    def entry_points(*, group):
        groups.append(group)
        return [entry] if group == "funcdiff.plugins" else []

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    monkeypatch.setenv("FUNCDIFF_PLUGINS", "user_plugin_after")
    assert load_plugins() == ["half", "user_plugin_after"]
    assert groups == ["funcdiff.plugins"] and imports(tmp_path / "x.py") == ["user_plugin_entry", "user_plugin_after"]
    assert "test-plugin-entry" in registry.registered_kinds()


@pytest.mark.parametrize(("name", "error"), [
    ("user_plugin_missing", "ModuleNotFoundError: No module named 'user_plugin_missing'"),
    ("missing/user_plugin_gone.py", "FileNotFoundError: no file "),
    ("broken.py", "SyntaxError: "),
])
def test_a_plugin_that_cannot_be_imported_is_a_one_line_error(name, error, tmp_path, monkeypatch, caplog) -> None:
    """The error names the plugin and the original error; the traceback is logged at DEBUG; a failed file is not kept."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "broken.py").write_text("def half(:\n    pass\n")
    with caplog.at_level(logging.DEBUG, logger="funcdiff.plugins"), pytest.raises(ValueError) as raised:
        load_plugins([name])
    message = str(raised.value)
    assert message.startswith(f"plugin {name!r} could not be imported: {error}") and "\n" not in message
    assert [record.exc_info is not None for record in caplog.records] == [True]
    assert not [module for module in sys.modules if module.startswith("funcdiff_plugin_broken")]


def test_a_plugin_that_takes_a_registered_kind_surfaces_the_registry_error(tmp_path, monkeypatch) -> None:
    """A plugin registering another class under a built-in kind fails, saying the kind is taken and by what."""
    path = write_plugin(tmp_path, "user_plugin_taken", "gaussian")
    with pytest.raises(ValueError, match=r"ValueError: kind 'gaussian' is already registered to funcdiff\.mollifiers\.gaussian"):
        load_plugins([str(path)])
    assert registry.lookup("gaussian") is funcdiff.GaussianMollifier


@pytest.mark.parametrize(("argv", "plugins", "rest"), [
    ([], [], []),
    (["train", "--steps", "3"], [], ["train", "--steps", "3"]),
    (["--plugin", "a.py", "train", "--plugin=b", "--config", "run.json", "--plugin", "c.d"],
     ["a.py", "b", "c.d"], ["train", "--config", "run.json"]),
    (["sample", "--plugins", "x", "--plugin-dir=y"], [], ["sample", "--plugins", "x", "--plugin-dir=y"]),
])
def test_plugin_args_splits_a_command_line(argv, plugins, rest) -> None:
    """``--plugin X`` and ``--plugin=X`` anywhere are taken out in order; other arguments stay in order."""
    assert plugin_args(argv) == (plugins, rest)


@pytest.mark.parametrize("argv", [["train", "--plugin"], ["--plugin", "--config", "run.json"], ["--plugin="]])
def test_plugin_args_refuses_a_plugin_flag_without_a_value(argv) -> None:
    """A ``--plugin`` at the end, before another option or with an empty value is an error."""
    with pytest.raises(ValueError, match="--plugin needs a module name or a .py file"):
        plugin_args(argv)
