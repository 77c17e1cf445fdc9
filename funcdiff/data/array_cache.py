"""Arrays cached on disk as memory-mapped ``.npy`` files, keyed by what they were made from and written atomically.

An entry is a folder holding at most one ``<key>.npy``. A cache is built into a temporary file in that folder,
flushed to disk and renamed into place, so a reader sees a whole file or none: a crash (or Ctrl-C) leaves at most a
``.tmp-*`` file, which is never read and is deleted by the next build. Building holds a lock on the entry
(``fcntl.flock`` where there is one), so processes started together (one per rank) build it once. A new key
replaces the entry's older file; processes that still map the old one keep reading it (POSIX unlink semantics).
Files are read with ``allow_pickle=False``.
"""

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

try:
    import fcntl
except ImportError:  # Windows: no advisory locks, so two processes may both build (each rename is still atomic)
    fcntl = None

logger = logging.getLogger(__name__)


def digest(*parts: object) -> str:
    """A hex SHA-256 of ``parts`` written as JSON (strings, numbers, lists)."""
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()


def files_key(root: Path, paths: Sequence[Path], *extra: object) -> str:
    """A key that changes when any of ``paths`` (below ``root``) is added, removed, renamed, resized or touched."""
    stats = [(p.relative_to(root).as_posix(), (s := p.stat()).st_size, s.st_mtime_ns) for p in paths]
    return digest(stats, *extra)


def cached_array(entry: Path, key: str, build: Callable[[Path], bool], *, check: Callable[[np.ndarray], bool]) -> np.ndarray | None:
    """The array cached in folder ``entry`` under ``key``, memory-mapped read-only; built first if absent.

    Args:
        entry: the cache folder of this array (one key at a time).
        key: what the array was made from (`files_key`); a file under another key is replaced.
        build: writes the array as an ``.npy`` file to the path it is given and returns True, or returns False to
            cache nothing.
        check: whether an array read from the cache has the expected shape and type; if not it is built again.

    Returns:
        The read-only memory map, or None when ``build`` declined.

    Raises:
        OSError: if the entry cannot be written (a read-only or full disk); nothing is left behind.
    """
    path = entry / f"{key}.npy"
    if (found := _read(path, check)) is not None:
        return found
    entry.mkdir(parents=True, exist_ok=True)
    with _locked(entry / "lock"):
        if (found := _read(path, check)) is not None:  # built by another process while this one waited
            return found
        for left in entry.glob(".tmp-*"):  # a crashed build's: nobody else builds while the lock is held
            left.unlink(missing_ok=True)
        fd, name = tempfile.mkstemp(dir=entry, prefix=".tmp-", suffix=".npy")
        os.close(fd)
        try:
            if not build(Path(name)):
                return None
            _fsync(Path(name))
            os.replace(name, path)
            _fsync(entry)
        finally:
            Path(name).unlink(missing_ok=True)
        for old in entry.glob("*.npy"):
            if old != path:
                old.unlink(missing_ok=True)
    return np.load(path, mmap_mode="r", allow_pickle=False)


def _read(path: Path, check: Callable[[np.ndarray], bool]) -> np.ndarray | None:
    """The memory-mapped array at ``path`` if it exists and passes ``check``; None otherwise (warning if unreadable)."""
    if not path.exists():
        return None
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as error:
        logger.warning("ignoring unreadable cache %s (%s); building it again", path, error)
        return None
    if not check(array):
        logger.warning("ignoring cache %s of unexpected shape %s or type %s; building it again", path, array.shape, array.dtype)
        return None
    return array


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``path`` (a no-op without ``fcntl``)."""
    with open(path, "a") as handle:
        if fcntl is not None:
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _fsync(path: Path) -> None:
    """Flush a file, or a folder's entries, to disk (folders only on POSIX)."""
    if path.is_dir() and os.name != "posix":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
