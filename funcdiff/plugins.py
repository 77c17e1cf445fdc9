"""Plugins: the user's modules that register components, imported before a command reads its arguments.

A plugin is a Python module whose import registers components (`funcdiff.register`): a mollifier, a process, an
operator, a data set. `load_plugins` imports, in this order and each once per process, every entry point of the
``funcdiff.plugins`` group of the installed packages, every module named in the environment variable
``FUNCDIFF_PLUGINS`` (comma-separated), and the modules given (the command line's repeatable ``--plugin MODULE``). A
name is a dotted module name importable from ``sys.path`` or a path to a ``.py`` file.

Security: importing a module runs its code. funcdiff never imports a module because a checkpoint, run file or config
file names it (those name registered kinds, which must already be registered); only the user names the modules it
imports: on the command line, in the environment variable, or by installing a package that declares the entry point.
"""

import hashlib
import importlib
import importlib.metadata
import importlib.util
import logging
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "funcdiff.plugins"
"""The entry-point group whose entries installed packages declare to be imported as plugins."""
ENVIRONMENT_VARIABLE = "FUNCDIFF_PLUGINS"
"""The environment variable naming plugins, comma-separated."""
FLAG = "--plugin"
"""The command-line flag naming one plugin; repeatable."""


def load_plugins(modules: Sequence[str] = ()) -> list[str]:
    """Import the plugins: the ``funcdiff.plugins`` entry points, then ``FUNCDIFF_PLUGINS``, then ``modules``; returns
    their names in that order, each once (entry points by their name, the others as written).

    A plugin already imported in this process (by name, or a ``.py`` file by its resolved path) is not imported again.

    Args:
        modules: dotted module names (importable from ``sys.path``) or paths to ``.py`` files.

    Raises:
        ValueError: if a plugin cannot be imported (its import raised, e.g. it registers a kind that another module
            registered), naming the plugin and the original error; the traceback is logged first.
    """
    plugins: dict[str, tuple[str, Callable[[], object]]] = {}  # what is imported -> (its name, how to import it)
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        plugins.setdefault(f"entry point {entry.value}", (entry.name, entry.load))
    named = [name.strip() for name in os.environ.get(ENVIRONMENT_VARIABLE, "").split(",") if name.strip()]
    for name in [*named, *modules]:
        key = str(Path(name).expanduser().resolve()) if name.endswith(".py") else name
        plugins.setdefault(key, (name, lambda name=name: _import(name)))
    for name, load in plugins.values():
        try:
            load()
        except Exception as error:
            logger.debug("plugin %r could not be imported", name, exc_info=True)  # the error below is the one line
            reason = " ".join(f"{type(error).__name__}: {error}".split())
            raise ValueError(f"plugin {name!r} could not be imported: {reason}") from error
    return [name for name, _ in plugins.values()]


def _import(name: str) -> None:
    """Import a dotted module name, or a ``.py`` file under `_file_module_name` of it (unless that module is imported)."""
    if not name.endswith(".py"):
        importlib.import_module(name)
        return
    path = Path(name).expanduser().resolve()
    if not path.is_file():
        raise FileNotFoundError(f"no file {path}")
    module_name = _file_module_name(path)
    if module_name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickling look their module up while it runs
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise


def _file_module_name(path: Path) -> str:
    """The module name a ``.py`` plugin file (its resolved ``path``) is imported under: its stem and a hash of the path,
    so that two files of one name stay apart and one file is one module."""
    stem = re.sub(r"\W", "_", path.stem)
    return f"funcdiff_plugin_{stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:12]}"


def plugin_args(argv: list[str]) -> tuple[list[str], list[str]]:
    """Split a command line into the plugins that ``--plugin X`` and ``--plugin=X`` name and the other arguments, both
    in their order, so that plugins load before the rest is parsed.

    Raises:
        ValueError: if a ``--plugin`` has no value (the end of the line, an empty one, or another option next).
    """
    plugins: list[str] = []
    rest: list[str] = []
    arguments = iter(argv)
    for argument in arguments:
        if argument == FLAG:
            value = next(arguments, None)
        elif argument.startswith(FLAG + "="):
            value = argument[len(FLAG) + 1:]
        else:
            rest.append(argument)
            continue
        if not value or value.startswith("-"):
            raise ValueError(f"{FLAG} needs a module name or a .py file, got {'nothing' if value is None else repr(value)}")
        plugins.append(value)
    return plugins, rest
