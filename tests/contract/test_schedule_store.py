"""The Store contract for schedules and webhooks (every backend in conftest.BACKENDS)."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import pytest

from replaybook.errors import StoreError
from replaybook.store.base import NewSchedule, Store

if TYPE_CHECKING:
    from conftest import FakeClock, StoreFactory

SLOT = "2026-03-29T01:00:00Z"
LATER = "2026-03-30T01:00:00Z"


def sched(id: str = "daily", **kw: object) -> NewSchedule:
    fields: dict[str, object] = dict(
        id=id, playbook_path="flows/report", cron="0 6 * * *", timezone="Europe/Berlin",
        payload={"b": 1, "a": [1, 2]}, catch_up="last",
    )  # fmt: skip
    fields.update(kw)
    return NewSchedule(**fields)  # type: ignore[arg-type]


def test_create_get_list_delete(store: Store) -> None:
    made = store.create_schedule(sched(playbook_version=3))
    assert made.id == "daily" and made.playbook_version == 3 and not made.paused
    assert list(made.payload) == ["b", "a"] and made.last_slot is None
    assert made.created_at.endswith("Z")
    store.create_schedule(sched("hourly", cron="0 * * * *", catch_up="all"))
    assert [s.id for s in store.list_schedules()] == ["daily", "hourly"]
    got = store.get_schedule("hourly")
    assert got is not None and got.playbook_version is None and got.catch_up == "all"
    with pytest.raises(StoreError, match="already exists"):
        store.create_schedule(sched())
    assert store.claim_schedule_slot("daily", SLOT, "s1")
    assert store.delete_schedule("daily") and not store.delete_schedule("daily")
    assert store.get_schedule("daily") is None and store.schedule_slots("daily") == []


def test_a_slot_is_claimed_once_and_moves_the_cursor(store: Store) -> None:
    store.create_schedule(sched())
    assert store.claim_schedule_slot("daily", SLOT, "s1")
    assert not store.claim_schedule_slot("daily", SLOT, "s2")
    assert not store.claim_schedule_slot("daily", "2026-03-28T01:00:00Z", "s2")  # behind
    got = store.get_schedule("daily")
    assert got is not None and got.last_slot == "2026-03-29T01:00:00.000000Z"
    assert not store.claim_schedule_slot("nope", SLOT, "s1")
    [slot] = store.schedule_slots("daily")
    assert (slot.slot, slot.claimed_by, slot.execution_id) == (
        "2026-03-29T01:00:00.000000Z",
        "s1",
        None,
    )
    store.set_slot_execution("daily", SLOT, "ex1")
    assert store.schedule_slots("daily")[0].execution_id == "ex1"


def test_skip_moves_the_cursor_forward_only(store: Store) -> None:
    store.create_schedule(sched())
    store.skip_schedule_slots("daily", LATER)
    store.skip_schedule_slots("daily", SLOT)
    got = store.get_schedule("daily")
    assert got is not None and got.last_slot == "2026-03-30T01:00:00.000000Z"
    assert not store.claim_schedule_slot("daily", SLOT, "s1")
    assert store.schedule_slots("daily") == []


def test_paused_schedules_claim_nothing_and_resume_skips_the_pause(
    store: Store, clock: FakeClock
) -> None:
    store.create_schedule(sched())
    assert store.set_schedule_paused("daily", True)
    assert not store.claim_schedule_slot("daily", SLOT, "s1")
    got = store.get_schedule("daily")
    assert got is not None and got.paused
    assert store.set_schedule_paused("daily", False)
    got = store.get_schedule("daily")
    assert got is not None and not got.paused and got.last_slot == got.updated_at
    assert not store.set_schedule_paused("nope", True)


def test_unstarted_slots(store: Store, clock: FakeClock) -> None:
    store.create_schedule(sched())
    store.claim_schedule_slot("daily", SLOT, "s1")
    store.claim_schedule_slot("daily", LATER, "s1")
    store.set_slot_execution("daily", LATER, "ex")
    assert store.unstarted_slots("2000-01-01T00:00:00Z") == []
    clock.advance(10)
    from datetime import UTC, datetime

    now = datetime.fromtimestamp(clock(), UTC).isoformat()
    assert [s.slot for s in store.unstarted_slots(now)] == ["2026-03-29T01:00:00.000000Z"]


def test_racing_claimers_fire_each_slot_once(store_factory: StoreFactory) -> None:
    first = store_factory()
    first.create_schedule(sched("race", cron="* * * * *"))
    stores = [store_factory() for _ in range(4)]
    slots = [f"2026-05-01T00:{m:02d}:00Z" for m in range(30)]
    wins: list[tuple[int, str]] = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(stores))

    def claim(n: int) -> None:
        barrier.wait()
        for slot in slots:
            if stores[n].claim_schedule_slot("race", slot, f"s{n}"):
                with lock:
                    wins.append((n, slot))

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    won = [slot for _, slot in wins]
    assert len(won) == len(set(won))  # no slot twice
    assert sorted(won) == slots  # and none lost
    assert len(first.schedule_slots("race", limit=100)) == len(won)
    for s in stores:
        s.close()


def test_hooks_put_get_list_delete(store: Store) -> None:
    hook = store.put_hook("deploy", "flows/deploy", None, "hmac", "hook.deploy")
    assert (hook.name, hook.playbook_path, hook.auth, hook.secret_credential) == (
        "deploy",
        "flows/deploy",
        "hmac",
        "hook.deploy",
    )
    again = store.put_hook("deploy", "flows/deploy2", 2, "token", "hook.deploy")
    assert again.created_at == hook.created_at and again.playbook_version == 2
    store.put_hook("build", "flows/build", None, "token", "hook.build")
    assert [h.name for h in store.list_hooks()] == ["build", "deploy"]
    got = store.get_hook("deploy")
    assert got is not None and got.playbook_path == "flows/deploy2"
    assert store.delete_hook("deploy") and not store.delete_hook("deploy")
    assert store.get_hook("deploy") is None
