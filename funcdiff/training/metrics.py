"""``metrics.jsonl``: one JSON row per logging window, appended; readers tolerate a line torn by a crash."""

import json
import logging
import os
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a metrics file; lines that are not complete JSON objects (a crash mid-write) are skipped."""
    path = Path(path)
    if not path.is_file():
        return []
    rows, torn = [], 0
    for line in path.read_text(errors="replace").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            torn += bool(line.strip())
            continue
        if isinstance(row, dict) and "step" in row:
            rows.append(row)
    if torn:
        logger.warning("skipped %d unreadable line(s) of %s", torn, path)
    return rows


def append_metrics(path: str | Path, row: dict[str, Any]) -> None:
    """Append one row, first ending a torn last line so the new row stays readable."""
    path = Path(path)
    with path.open("ab") as f:
        if f.tell() > 0:
            with path.open("rb") as r:
                r.seek(-1, 2)
                if r.read(1) != b"\n":
                    f.write(b"\n")
        f.write((json.dumps(row) + "\n").encode())


def truncate_metrics(path: str | Path, step: int) -> None:
    """Keep only the readable rows up to ``step`` (a resumed run logs the steps after its checkpoint again)."""
    path = Path(path)
    if path.is_file():
        rows = [r for r in read_metrics(path) if r["step"] <= step]
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
        os.replace(tmp, path)  # a crash meanwhile leaves the old file whole
