"""The Scheduler on every store backend: an injected clock drives two schedulers
sharing one database across the daylight-saving changes of Europe/Berlin; every slot
starts exactly one execution, none is lost or doubled."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from replaybook.runtime.embedded import catalog_loader
from replaybook.runtime.engine import Engine
from replaybook.scheduling.scheduler import Scheduler, slot_execution_id
from replaybook.store.base import NewSchedule, Store

if TYPE_CHECKING:
    from conftest import FakeClock, StoreFactory

PLAYBOOK = """metadata: {name: report, path: flows/report}
workload: {who: nobody}
workflow:
  - step: start
    next: end
  - step: end
"""
BERLIN = "Europe/Berlin"


def at(clock: FakeClock, when: datetime) -> None:
    clock.advance(when.timestamp() - clock())


def scheduler(store: Store, clock: FakeClock, name: str) -> Scheduler:
    engine = Engine(store, catalog_loader(store), env={})
    return Scheduler(
        store, engine, clock=lambda: datetime.fromtimestamp(clock(), UTC), scheduler_id=name
    )


def tick_together(schedulers: list[Scheduler]) -> None:
    barrier = threading.Barrier(len(schedulers))
    errors: list[BaseException] = []

    def run(s: Scheduler) -> None:
        try:
            barrier.wait()
            s.tick()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(s,)) for s in schedulers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def local(iso_slots: list[str]) -> list[str]:
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(BERLIN)
    return sorted(
        datetime.fromisoformat(s).astimezone(tz).strftime("%m-%d %H:%M%z") for s in iso_slots
    )


@pytest.mark.parametrize(
    ("start", "expected_0230"),
    [
        (
            datetime(2026, 3, 27, 12, tzinfo=UTC),
            ["03-28 02:30+0100", "03-29 03:00+0200", "03-30 02:30+0200"],
        ),
        (
            datetime(2026, 10, 23, 12, tzinfo=UTC),
            ["10-24 02:30+0200", "10-25 02:30+0200", "10-26 02:30+0100"],
        ),
    ],
    ids=["spring", "autumn"],
)
def test_two_schedulers_fire_each_slot_once_across_a_dst_change(
    store_factory: StoreFactory,
    clock: FakeClock,
    start: datetime,
    expected_0230: list[str],
) -> None:
    at(clock, start)
    a, b = store_factory(), store_factory()
    a.register_playbook("flows/report", "report", PLAYBOOK)
    a.create_schedule(NewSchedule("at0230", "flows/report", "30 2 * * *", BERLIN, {"n": 1}))
    a.create_schedule(NewSchedule("hourly", "flows/report", "0 * * * *", BERLIN))
    schedulers = [scheduler(a, clock, "one"), scheduler(b, clock, "two")]
    end = start + timedelta(days=3)
    step = timedelta(minutes=20)
    while datetime.fromtimestamp(clock(), UTC) < end:
        clock.advance(step.total_seconds())
        tick_together(schedulers)

    fired = a.schedule_slots("at0230")
    assert local([s.slot for s in fired]) == expected_0230
    hourly = a.schedule_slots("hourly", limit=1000)
    assert len(hourly) == 72  # every real hour of three days, DST or not
    assert len({s.slot for s in hourly}) == 72
    executions = a.list_executions(playbook_path="flows/report", limit=1000)
    assert len(executions) == len(fired) + len(hourly)
    for slot in [*fired, *hourly]:
        assert slot.execution_id is not None
        assert slot.execution_id == slot_execution_id(
            slot.schedule_id, datetime.fromisoformat(slot.slot)
        )
        assert a.get_execution(slot.execution_id) is not None
    assert {s.claimed_by for s in hourly} <= {"one", "two"}


def _one_schedule(store: Store, clock: FakeClock, catch_up: str) -> Callable[[], list[str]]:
    store.register_playbook("flows/report", "report", PLAYBOOK)
    store.create_schedule(
        NewSchedule("daily", "flows/report", "0 6 * * *", BERLIN, catch_up=catch_up)
    )
    return lambda: local([s.slot for s in store.schedule_slots("daily", limit=100)])


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("all", ["05-02 06:00+0200", "05-03 06:00+0200", "05-04 06:00+0200", "05-05 06:00+0200"]),
        ("last", ["05-05 06:00+0200"]),
        ("none", []),
    ],
)
def test_catch_up_after_downtime(
    store_factory: StoreFactory, clock: FakeClock, policy: str, expected: list[str]
) -> None:
    at(clock, datetime(2026, 5, 1, 12, tzinfo=UTC))
    store = store_factory()
    fired = _one_schedule(store, clock, policy)
    s = scheduler(store, clock, "one")
    at(clock, datetime(2026, 5, 5, 9, tzinfo=UTC))  # down for four days
    s.tick()
    assert fired() == expected
    at(clock, datetime(2026, 5, 6, 4, 0, 10, tzinfo=UTC))  # back: on time again
    s.tick()
    assert fired() == [*expected, "05-06 06:00+0200"]
    s.tick()
    assert len(fired()) == len(expected) + 1


def test_paused_schedules_do_not_fire_and_resume_without_catch_up(
    store_factory: StoreFactory, clock: FakeClock
) -> None:
    at(clock, datetime(2026, 5, 1, 12, tzinfo=UTC))
    store = store_factory()
    fired = _one_schedule(store, clock, "all")
    s = scheduler(store, clock, "one")
    store.set_schedule_paused("daily", True)
    at(clock, datetime(2026, 5, 3, 12, tzinfo=UTC))
    assert s.tick() == [] and fired() == []
    store.set_schedule_paused("daily", False)
    s.tick()
    assert fired() == []  # the slots of the pause are not caught up
    at(clock, datetime(2026, 5, 4, 4, tzinfo=UTC))
    s.tick()
    assert fired() == ["05-04 06:00+0200"]


def test_a_claimed_slot_whose_scheduler_died_is_started_later(
    store_factory: StoreFactory, clock: FakeClock
) -> None:
    at(clock, datetime(2026, 5, 1, 12, tzinfo=UTC))
    store = store_factory()
    fired = _one_schedule(store, clock, "last")
    at(clock, datetime(2026, 5, 2, 4, tzinfo=UTC))
    assert store.claim_schedule_slot("daily", "2026-05-02T04:00:00Z", "died")  # then nothing
    s = scheduler(store, clock, "other")
    assert s.tick() == []  # too soon to tell a slow start from a dead scheduler
    clock.advance(300)
    [done] = s.tick()
    assert done.execution_id is not None and store.get_execution(done.execution_id) is not None
    assert fired() == ["05-02 06:00+0200"]
    assert s.tick() == []


def test_a_schedule_of_a_missing_playbook_reports_and_goes_on(
    store_factory: StoreFactory, clock: FakeClock
) -> None:
    at(clock, datetime(2026, 5, 1, 12, tzinfo=UTC))
    store = store_factory()
    store.create_schedule(NewSchedule("ghost", "flows/missing", "0 6 * * *", BERLIN))
    s = scheduler(store, clock, "one")
    at(clock, datetime(2026, 5, 2, 4, tzinfo=UTC))
    [done] = s.tick()
    assert done.execution_id is None and done.error is not None
    assert "flows/missing" in done.error
    clock.advance(300)  # the unstarted slot is retried once, then left alone
    [retried] = s.tick()
    assert retried.error is not None and s.tick() == []
