"""Push notifications of appends: one thread LISTENing on a dedicated connection.

Every append runs `pg_notify(channel, '<execution_id>:<jobs enqueued>')` inside its
transaction, so a notification is sent exactly when the append commits. The watcher
waits on its connection's socket and on a wake-up pipe (so stopping is immediate),
hands each notification to the callback, and reconnects with backoff when the
connection drops. Notifications sent while it was disconnected are lost: callers
keep polling as well, the watcher only makes them react sooner.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
from typing import Final

import psycopg
from psycopg import sql

from replaybook.store.base import ChangeCallback
from replaybook.store.postgres.target import PostgresTarget

log = logging.getLogger(__name__)

# With nothing received for this long, a query checks the connection is alive.
IDLE_CHECK_SECONDS: Final = 30.0
RECONNECT_FIRST_DELAY: Final = 0.05
RECONNECT_MAX_DELAY: Final = 5.0
READY_TIMEOUT_SECONDS: Final = 10.0


def parse_message(message: str) -> tuple[str, int] | None:
    """'<execution_id>:<jobs>' -> (execution_id, jobs); None when malformed."""
    execution_id, sep, jobs = message.rpartition(":")
    if not sep or not execution_id:
        return None
    try:
        return execution_id, int(jobs)
    except ValueError:
        return None


class ChangeWatcher:
    """LISTEN on `target.channel` in a background thread until `stop()`."""

    def __init__(self, target: PostgresTarget, on_change: ChangeCallback) -> None:
        self._target = target
        self._on_change = on_change
        # Keepalives notice a peer that vanished without closing the connection.
        self._conninfo = target.connection_string(
            keepalives=1, keepalives_idle=30, keepalives_interval=10, keepalives_count=3
        )
        self._stopping = threading.Event()
        self._listening = threading.Event()
        self._wake_read, self._wake_write = os.pipe()
        self._thread = threading.Thread(target=self._run, name="replaybook-pg-watch", daemon=True)

    def start(self) -> None:
        """Start the thread; return once it listens (or after a timeout, if the server
        cannot be reached: it keeps trying in the background)."""
        self._thread.start()
        if not self._listening.wait(READY_TIMEOUT_SECONDS):
            log.warning("watching %s: not listening yet, retrying", self._target.display)

    def stop(self) -> None:
        if self._stopping.is_set():
            return
        self._stopping.set()
        with contextlib.suppress(OSError):
            os.write(self._wake_write, b"x")
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()
        for fd in (self._wake_read, self._wake_write):
            with contextlib.suppress(OSError):
                os.close(fd)

    @property
    def listening(self) -> bool:
        return self._listening.is_set()

    def _run(self) -> None:
        delay = RECONNECT_FIRST_DELAY
        while not self._stopping.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True) as conn:
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._target.channel)))
                    self._listening.set()
                    delay = RECONNECT_FIRST_DELAY
                    self._listen(conn)
            except psycopg.Error as exc:
                if self._stopping.is_set():
                    break
                log.warning(
                    "watching %s: %s; reconnecting in %.2fs", self._target.display, exc, delay
                )
            self._listening.clear()
            if self._stopping.wait(delay):
                break
            delay = min(delay * 2, RECONNECT_MAX_DELAY)

    def _listen(self, conn: psycopg.Connection[tuple[object, ...]]) -> None:
        fd = conn.fileno()
        while not self._stopping.is_set():
            readable, _, _ = select.select([fd, self._wake_read], [], [], IDLE_CHECK_SECONDS)
            if self._wake_read in readable:
                return
            if not readable:
                conn.execute("SELECT 1")  # raises when the connection is gone
            # A query may have read notifications into the backlog: drain it too.
            for note in conn.notifies(timeout=0):
                self._deliver(note.payload)

    def _deliver(self, message: str) -> None:
        parsed = parse_message(message)
        if parsed is None:
            log.warning("watching %s: ignored notification %r", self._target.display, message)
            return
        try:
            self._on_change(*parsed)
        except Exception:  # a failing callback must not stop the watcher
            log.exception("watch callback failed for execution %s", parsed[0])
