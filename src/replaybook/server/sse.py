"""Live event streams (Server-Sent Events) for executions.

A stream reads the log from the store (so any server can serve any execution) and
waits between reads for a change notice: a commit in this process (engine listener),
an append pushed by the store from another process (`Store.watch`), or, as a
fallback for backends that cannot push, a short poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

from replaybook.core import events as ev
from replaybook.store.base import Store

KEEPALIVE_SECONDS = 15.0


class EventHub:
    """Wakes the streams of an execution when it changes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}

    def notify(self, execution_id: str) -> None:
        with self._lock:
            waiters = list(self._waiters.get(execution_id, ()))
        for loop, event in waiters:
            with contextlib.suppress(RuntimeError):  # the loop has closed
                loop.call_soon_threadsafe(event.set)

    def subscribe(self, execution_id: str) -> tuple[asyncio.Event, Callable[[], None]]:
        loop = asyncio.get_running_loop()
        event = asyncio.Event()
        key = (loop, event)
        with self._lock:
            self._waiters.setdefault(execution_id, set()).add(key)

        def unsubscribe() -> None:
            with self._lock:
                got = self._waiters.get(execution_id)
                if got is not None:
                    got.discard(key)
                    if not got:
                        del self._waiters[execution_id]

        return event, unsubscribe

    def clients(self) -> int:
        with self._lock:
            return sum(len(v) for v in self._waiters.values())


def sse_message(event: str, data: Any, id: int | None = None) -> str:
    head = f"id: {id}\n" if id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


async def stream_events(
    store: Store,
    hub: EventHub,
    execution_id: str,
    after: int,
    poll_seconds: float,
    status: Callable[[], str],
) -> AsyncIterator[str]:
    """Every event after `after`, then new ones as they are written; ends with an
    `end` message carrying the status once the execution has finished."""
    changed, unsubscribe = hub.subscribe(execution_id)
    loop = asyncio.get_running_loop()
    try:
        idle = 0.0
        while True:
            changed.clear()
            read = functools.partial(store.read_events, execution_id, after_seq=after, limit=1000)
            batch = await loop.run_in_executor(None, read)
            finished = False
            for e in batch:
                after = e.seq
                yield sse_message("event", e.as_dict(), e.seq)
                finished = finished or e.type in ev.TERMINAL_EXECUTION
            if finished:
                yield sse_message("end", {"status": await loop.run_in_executor(None, status)})
                return
            if len(batch) == 1000:
                continue
            if not batch and idle >= KEEPALIVE_SECONDS:
                yield ": keep-alive\n\n"
                idle = 0.0
            try:
                await asyncio.wait_for(changed.wait(), poll_seconds)
            except TimeoutError:
                idle += poll_seconds
    finally:
        unsubscribe()
