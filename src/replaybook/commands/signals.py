"""SIGTERM handled like Ctrl-C by the commands that run an execution to its end
(`run`, `execute --wait`, `executions resume`): `timeout`, `docker stop`, CI runners
and process managers send SIGTERM, and the execution must not be left `running`.

The first SIGTERM raises KeyboardInterrupt in the main thread, so the command's Ctrl-C
path cancels the execution cleanly and exits 1 (cancelled); further ones are ignored
while it does so. SIGKILL cannot be handled: see `executions resume`'s message.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = False

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        nonlocal received
        if received:
            return  # already cancelling
        received = True
        raise KeyboardInterrupt("SIGTERM")

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
