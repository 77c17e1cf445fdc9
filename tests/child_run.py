"""Running a test file again in a child pytest process, with other environment or without the runtime type checker."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).parents[1]

_ADDOPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["addopts"].split()
WITHOUT_TYPE_CHECKER = ("-o", "addopts=" + " ".join(a for a in _ADDOPTS if not a.startswith("--jaxtyping-packages")))
"""Pytest options: the project's ``addopts`` without ``--jaxtyping-packages`` (the import hook that wraps every function)."""


def run_pytest_child(path: str | Path, *options: str, env: dict[str, str], at_least: int) -> str:
    """Run pytest on ``path`` in a child process and return its summary line; fail unless every test passed (none
    skipped) and at least ``at_least`` ran."""
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *options, str(path)]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    assert done.returncode == 0 and "skipped" not in summary, done.stdout[-6000:] + done.stderr[-3000:]
    passed = re.search(r"(\d+) passed", summary)
    assert passed is not None and int(passed.group(1)) >= at_least, summary
    return summary
