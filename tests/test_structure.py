"""The package's shape: imports run one way between its packages, and every command is a small module with its
options (sharing the common ones, declared once) and its ``run``."""

import ast
import sys
from pathlib import Path

import funcdiff
from funcdiff.commands import COMMANDS
from funcdiff.commands.common import CommonOptions, Verbosity

LAYERS = ["_typing", "points", "json_config", "owner_lock", "registry", "domains", "mollifiers", "metrics", "data",
          "conditioning", "processes", "operators", "sampling", "training", "tasks", "factory", "evaluation", "run_file",
          "plugins", "commands"]
"""funcdiff's modules and packages, each importing only those before it (the package's ``__init__`` re-exports)."""

ROOT = Path(funcdiff.__file__).parent


def imported_units(path: Path) -> set[str]:
    """The top-level funcdiff units (``funcdiff.X``) a source file imports, anywhere in it."""
    units = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else \
            [a.name for a in node.names] if isinstance(node, ast.Import) else []
        units |= {name.split(".")[1] for name in names if name.startswith("funcdiff.")}
    return units


def test_imports_run_one_way() -> None:
    """No unit imports one listed after it in `LAYERS`, so there is no cycle; every unit is listed."""
    units = {p.stem if p.is_file() else p.name for p in ROOT.iterdir() if p.suffix == ".py" or (p / "__init__.py").is_file()}
    assert units - {"__init__", "__main__"} == set(LAYERS)
    upward = []
    for path in ROOT.rglob("*.py"):
        unit = path.relative_to(ROOT).parts[0].removesuffix(".py")
        if unit in ("__init__", "__main__"):
            continue
        upward += [(unit, other, str(path.relative_to(ROOT))) for other in imported_units(path)
                   if other != unit and LAYERS.index(other) > LAYERS.index(unit)]
    assert not upward, upward


def test_commands_are_small_modules_sharing_their_common_options() -> None:
    """One module per command (under ~300 lines) with its options and ``run``; ``verbose`` (and ``device``, but for
    train and demo, whose device is a run setting) are declared once, in `funcdiff.commands.common`."""
    for name, (options, run) in COMMANDS.items():
        module = Path(sys.modules[run.__module__].__file__)
        assert module.parent.name == "commands" and run.__name__ == "run" and options.__module__ == run.__module__, name
        assert len(module.read_text().splitlines()) < 300, module
        assert issubclass(options, Verbosity), name
        declared = options.__dict__.get("__annotations__", {})
        assert "verbose" not in declared and "device" not in declared, name
        assert issubclass(options, CommonOptions) or name in ("train", "demo"), name
