"""The README's Python examples run as shown."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_python_block_runs(code: str) -> None:
    """Each python block of the README executes without error."""
    exec(compile(code, str(README), "exec"), {})


def test_readme_shows_the_ci_test_command() -> None:
    """The README's test command is the one .ci/run runs."""
    ci = (README.parent / ".ci" / "run").read_text()
    command = re.search(r"python -m pytest[^\n]*", ci).group(0)
    assert command in README.read_text()
