"""Ctrl-C and SIGTERM for every long-running command, reliable by construction.

The signal handler takes no lock: it sets a plain attribute and writes one byte to a pipe of
its own. A `threading.Event` set from a handler can deadlock, since the handler runs on the
main thread, possibly while that thread holds the event's own lock inside `Event.wait` (the
first Ctrl-C of `watch` was then lost). `wait` selects on the pipe, so a signal that lands
before, during or just after the call to `select` ends it at once.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import threading
from types import FrameType
from typing import Any


class Stop:
    """SIGINT/SIGTERM -> `is_set()` is True and `wait()` returns; with `interrupt=True` the
    first signal raises KeyboardInterrupt instead (a command that is not waiting for it,
    e.g. the demo, is cut short and cleans up). Off the main thread it installs nothing."""

    def __init__(self, interrupt: bool = False) -> None:
        self.requested = False
        self.interrupt = interrupt
        self._previous: dict[int, Any] = {}
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)

    def __enter__(self) -> Stop:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        first = not self.requested
        self.requested = True
        with contextlib.suppress(OSError):  # the pipe is full: a byte is already there
            os.write(self._write, b"\0")
        if self.interrupt and first:
            raise KeyboardInterrupt

    def set(self) -> None:
        """Ask the waiter to stop (what a signal does)."""
        self.requested = True
        with contextlib.suppress(OSError):
            os.write(self._write, b"\0")

    def is_set(self) -> bool:
        """Whether a stop was asked for."""
        return self.requested

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until a stop is asked for, at most `timeout` seconds; returns `is_set()`."""
        if not self.requested:
            select.select([self._read], [], [], timeout)
        return self.requested

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
        for descriptor in (self._read, self._write):
            with contextlib.suppress(OSError):
                os.close(descriptor)
