"""A lock that keeps two runs out of one output directory; the operating system releases it when its owner dies."""

import fcntl
import os
import socket
from pathlib import Path


class RunLock:
    """An exclusive ``flock`` on ``<directory>/.lock`` holding the owner's host and pid (for the error message)."""

    def __init__(self, directory: str | Path) -> None:
        self.path = Path(directory) / ".lock"
        self._file = None

    def acquire(self) -> "RunLock":
        """Take the lock, or raise if another live process holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        f = self.path.open("a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            owner = f.read().strip() or "another process"
            f.close()
            raise RuntimeError(f"{self.path.parent} is in use by another run ({owner}); wait for it or choose another --out-dir") from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} on {socket.gethostname()}")
        f.flush()
        self._file = f
        return self

    def release(self) -> None:
        """Give the lock up (idempotent)."""
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None
