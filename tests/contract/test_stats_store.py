"""The Store contract for metrics counts (every backend in conftest.BACKENDS)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from replaybook.store.base import NewEvent, NewJob, Store

if TYPE_CHECKING:
    from conftest import FakeClock


def test_executions_by_status(store: Store) -> None:
    assert store.executions_by_status() == {}
    for n, status in enumerate(["completed", "completed", "failed", None]):
        store.create_execution(f"e{n}", "flows/a", 1)
        if status:
            store.append(f"e{n}", 0, [NewEvent("x")], status=status)
    assert store.executions_by_status() == {"completed": 2, "failed": 1, "running": 1}


def test_queue_stats(store: Store, clock: FakeClock) -> None:
    empty = store.queue_stats()
    assert (empty.queued, empty.due, empty.leased, empty.expired) == (0, 0, 0, 0)
    assert empty.oldest_due_seconds == 0 and empty.oldest_leased_seconds == 0
    store.create_execution("e", "flows/a", 1)
    jobs = [NewJob("a", 1, 1), NewJob("b", 1, 1), NewJob("later", 1, 1, delay_ms=60_000)]
    store.append("e", 0, [NewEvent("x")], jobs)
    clock.advance(5)
    [leased] = store.lease_jobs("w", 1, lease_seconds=10)
    clock.advance(3)
    stats = store.queue_stats()
    assert (stats.queued, stats.due, stats.leased, stats.expired) == (2, 1, 1, 0)
    assert stats.oldest_due_seconds == pytest.approx(8, abs=0.01)
    assert stats.oldest_leased_seconds == pytest.approx(8, abs=0.01)
    clock.advance(20)  # the lease expires
    assert store.queue_stats().expired == 1
    assert leased.step == "a"
