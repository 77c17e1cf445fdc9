"""SIGINT and SIGTERM during training: the first asks the loop to stop after its step, a second exits at once."""

import os
import signal
import sys
import threading
from types import FrameType, TracebackType

CAUGHT = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """While active (main thread only), records the first SIGINT/SIGTERM in `received` instead of dying."""

    def __init__(self) -> None:
        self.received: signal.Signals | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        """First signal: remember it and say so; second: exit now with the conventional code."""
        if self.received is not None:
            os._exit(128 + signum)
        self.received = signal.Signals(signum)
        print(f"\n{self.received.name}: stopping after this step and saving a checkpoint (send it again to exit at once)", file=sys.stderr, flush=True)

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in CAUGHT}
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}
