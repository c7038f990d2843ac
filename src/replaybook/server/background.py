"""The server's background loop: fire due schedule slots and, when a retention is
set, prune old executions. One daemon thread per server; several servers on one store
each run it (slot claims in the store make each slot fire once; pruning is idempotent).

Settings (create_app arguments, else environment):
- scheduler: on unless `REPLAYBOOK_SCHEDULER=0`;
- retention: `REPLAYBOOK_RETENTION` (e.g. `30d`): finished executions older than that
  are pruned, with their DuckDB files, every `REPLAYBOOK_RETENTION_EVERY` (default 1h).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from replaybook.retention import parse_age
from replaybook.scheduling.scheduler import Fired, Scheduler, utc_now
from replaybook.store.base import Store

log = logging.getLogger("replaybook.server.background")


def retention_from_env() -> timedelta | None:
    text = os.environ.get("REPLAYBOOK_RETENTION")
    return parse_age(text) if text else None


class Background:
    def __init__(
        self,
        store: Store,
        engine: Any,
        data_dir: Path,
        *,
        scheduler: bool = True,
        retention: timedelta | None = None,
        prune_every: timedelta = timedelta(hours=1),
        metrics: Any = None,
        max_wait: float = 30.0,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.store = store
        self.data_dir = data_dir
        self.scheduler = Scheduler(store, engine, clock=clock) if scheduler else None
        self.retention = retention
        self.prune_every = prune_every.total_seconds()
        self.metrics = metrics
        self.max_wait = max_wait
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_prune = 0.0
        if self.scheduler is not None:
            self.scheduler.on_fired.append(self._count)

    def _count(self, fired: Fired) -> None:
        if self.metrics is not None:
            outcome = "started" if fired.execution_id else "failed"
            self.metrics.schedule_slots.labels(outcome).inc()
            if fired.execution_id:
                self.metrics.executions_started.inc()

    def start(self) -> None:
        if self.scheduler is None and self.retention is None:
            return
        self._thread = threading.Thread(target=self._run, name="replaybook-background")
        self._thread.daemon = True
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            wait = self.max_wait
            try:
                if self.scheduler is not None:
                    self.scheduler.tick()
                    upcoming = self.scheduler.next_slot()
                    if upcoming is not None:
                        ahead = (upcoming - self.scheduler.clock()).total_seconds()
                        wait = min(wait, max(0.05, ahead))
                if self.retention is not None and time.monotonic() >= self._next_prune:
                    self._prune(self.retention)
                    self._next_prune = time.monotonic() + self.prune_every
            except Exception:  # the loop outlives a store hiccup
                log.exception("background tick failed")
            self._stop.wait(wait)

    def _prune(self, retention: timedelta) -> None:
        from replaybook.retention import prune

        result = prune(self.store, self.data_dir, retention)
        if result.execution_ids:
            log.info(
                "pruned %d executions finished before %s",
                len(result.execution_ids),
                result.before,
            )
