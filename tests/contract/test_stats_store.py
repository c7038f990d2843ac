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


def test_running_jobs_lists_leases_by_worker_without_tokens(
    store: Store, clock: FakeClock
) -> None:
    assert store.running_jobs() == []
    store.create_execution("e", "flows/a", 1)
    jobs = [NewJob("a", 1, 1), NewJob("b", 1, 1, index=3), NewJob("c", 1, 1)]
    store.append("e", 0, [NewEvent("x")], jobs)
    store.lease_jobs("w2", 1, lease_seconds=10)
    store.lease_jobs("w1", 1, lease_seconds=30)
    clock.advance(4)
    running = store.running_jobs()
    assert [(r.worker_id, r.step, r.index, r.attempt) for r in running] == [
        ("w1", "b", 3, 1),
        ("w2", "a", None, 1),
    ]
    assert running[0].execution_id == "e"
    assert running[0].lease_left_seconds == pytest.approx(26, abs=0.01)
    assert running[1].lease_left_seconds == pytest.approx(6, abs=0.01)
    assert not hasattr(running[0], "lease_token")
    assert len(store.running_jobs(limit=1)) == 1
