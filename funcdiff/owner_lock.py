"""An exclusive lock on a file that names its holder; the operating system releases it when the holder dies.

Used to keep two runs out of one output directory and two processes from compiling the native kernel at once.
A lock left by a killed process is never stale: ``flock`` belongs to the open file, which dies with its process.
"""

import fcntl
import os
import socket
from pathlib import Path
from typing import TextIO


class OwnerLock:
    """A ``flock`` on ``path``; the file holds the holder's pid and host for the messages of those who wait."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file: TextIO | None = None

    def try_acquire(self) -> str | None:
        """Take the lock and return None, or return who holds it (``pid N on HOST``) without waiting."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            file = self.path.open("a+")
            try:
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                file.seek(0)
                owner = file.read().strip() or "another process"
                file.close()
                return owner
            if self._is_current(file):
                break
            file.close()  # the holder removed the file after we opened it: lock the new one
        file.seek(0)
        file.truncate()
        file.write(f"pid {os.getpid()} on {socket.gethostname()}")
        file.flush()
        self._file = file
        return None

    def _is_current(self, file: TextIO) -> bool:
        """Whether the open ``file`` is still the one at ``path`` (a releasing holder removes it)."""
        try:
            return os.stat(self.path).st_ino == os.fstat(file.fileno()).st_ino
        except FileNotFoundError:
            return False

    def release(self) -> None:
        """Give the lock up and remove its file, nothing left behind (idempotent). The file goes while still locked,
        and `try_acquire` locks only the file that is at ``path``, so no two holders can ever coexist."""
        if self._file is not None:
            self.path.unlink(missing_ok=True)
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None
