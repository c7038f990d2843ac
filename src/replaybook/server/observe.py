"""Operational metrics of a server, beyond its HTTP ones (metrics.py):

- from the store, read at scrape time (so every server of a cluster reports the same
  truth): executions by status, queue depth (queued, due, leased, expired leases), the
  longest wait of a due job and the age of the oldest leased job;
- from the events committed through this server's engine (its workers' and the remote
  workers' outcomes): step outcomes and finished executions by status;
- the step attempt counts and duration histograms by step type of the worker slots
  running in this process (observability.metrics).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from replaybook.observability.metrics import REGISTRY as WORKER_REGISTRY
from replaybook.store.base import Store

log = logging.getLogger("replaybook.server.metrics")

_STEP_STATUS = {
    "step.completed": "completed",
    "step.failed": "failed",
    "step.retrying": "retrying",
    "step.skipped": "skipped",
    "step.cancelled": "cancelled",
}
_EXECUTION_STATUS = {
    "execution.completed": "completed",
    "execution.failed": "failed",
    "execution.cancelled": "cancelled",
}


class StoreCollector(Collector):
    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            by_status = self.store.executions_by_status()
            queue = self.store.queue_stats()
        except Exception:  # a scrape must not fail on a store hiccup
            log.warning("cannot read the store for metrics", exc_info=True)
            return
        executions = GaugeMetricFamily(
            "replaybook_executions", "Executions in the store, by status", labels=["status"]
        )
        counts = {"running": 0, "completed": 0, "failed": 0, "cancelled": 0, **by_status}
        for status, count in counts.items():
            executions.add_metric([status], count)
        yield executions
        jobs = GaugeMetricFamily(
            "replaybook_queue_jobs", "Outstanding jobs, by state", labels=["state"]
        )
        jobs.add_metric(["queued"], queue.queued)
        jobs.add_metric(["due"], queue.due)
        jobs.add_metric(["leased"], queue.leased)
        jobs.add_metric(["lease_expired"], queue.expired)
        yield jobs
        yield GaugeMetricFamily(
            "replaybook_queue_oldest_due_seconds",
            "How long the longest-waiting due job has waited for a worker",
            value=queue.oldest_due_seconds,
        )
        yield GaugeMetricFamily(
            "replaybook_lease_oldest_age_seconds",
            "Age of the oldest leased job (since it became available)",
            value=queue.oldest_leased_seconds,
        )


class WorkerCollector(Collector):
    """The step attempt metrics of this process's worker slots."""

    def collect(self) -> Iterator[Any]:
        yield from WORKER_REGISTRY.collect()


def install(state: Any) -> None:
    """Add the collectors and the step/execution counters to a server's metrics."""
    registry = state.metrics.registry
    registry.register(StoreCollector(state.store))
    registry.register(WorkerCollector())
    steps = Counter(
        "replaybook_steps",
        "Step outcomes recorded through this server, by status",
        ["status"],
        registry=registry,
    )
    finished = Counter(
        "replaybook_executions_finished",
        "Executions that ended through this server, by status",
        ["status"],
        registry=registry,
    )

    def on_commit(execution_id: str, written: Sequence[Any]) -> None:
        for event in written:
            status = _STEP_STATUS.get(event.type)
            if status is not None:
                steps.labels(status).inc()
                continue
            status = _EXECUTION_STATUS.get(event.type)
            if status is not None:
                finished.labels(status).inc()

    state.engine.add_listener(on_commit)
