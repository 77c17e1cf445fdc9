"""SIGINT and SIGTERM during training: the first asks the loop to stop after its step, a second exits at once."""

import os
import signal
import sys
import threading
import time
from types import FrameType, TracebackType

CAUGHT = (signal.SIGINT, signal.SIGTERM)


REPEAT_WINDOW = 1.0
"""Seconds after the first signal in which another one is the same request (``kill`` of a whole process tree and
torchrun's forwarding deliver two), not a second one."""


class StopSignals:
    """While active (main thread only), records the first SIGINT/SIGTERM in `received` instead of dying.

    Args:
        announce: say on stderr that the run will stop (one process of a distributed run should).
    """

    def __init__(self, *, announce: bool = True) -> None:
        self.received: signal.Signals | None = None
        self.announce = announce
        self._first = 0.0
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        """First signal: remember it and say so; a second one (after `REPEAT_WINDOW`): exit now, 128 + its number."""
        if self.received is not None:
            if time.monotonic() - self._first < REPEAT_WINDOW:
                return
            os._exit(128 + signum)
        self.received, self._first = signal.Signals(signum), time.monotonic()
        if self.announce:
            print(f"\n{self.received.name}: stopping after this step and saving a checkpoint (send it again to exit at once)",
                  file=sys.stderr, flush=True)

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in CAUGHT}
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}
