"""Schedules in the server: the /api/schedules endpoints (TestClient, SQLite store)
and the background loop that fires due slots and prunes old executions."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from replaybook.runtime.embedded import catalog_loader
from replaybook.runtime.engine import Engine
from replaybook.scheduling.scheduler import Fired
from replaybook.server.app import create_app
from replaybook.server.background import Background
from replaybook.store import open_store
from replaybook.store.base import NewSchedule, Store

REPORT = """metadata: {name: report, path: flows/report}
workflow:
  - step: start
    next: end
  - step: end
"""


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(str(tmp_path / "rb.db"))
    s.register_playbook("flows/report", "report", REPORT)
    yield s
    s.close()


@pytest.fixture
def client(store: Store, tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(store, data_dir=tmp_path / "data", scheduler=False, close_store=False)
    with TestClient(app) as c:
        yield c


def test_schedule_crud(client: TestClient) -> None:
    r = client.post(
        "/api/schedules",
        json={"playbook": "flows/report", "cron": "0 6 * * *", "timezone": "Europe/Berlin",
              "payload": {"k": 1}, "id": "morning"},
    )  # fmt: skip
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["id"] == "morning" and made["catch_up"] == "last" and made["next_slot"]
    assert [s["id"] for s in client.get("/api/schedules").json()] == ["morning"]
    assert client.post("/api/schedules/morning/pause").json()["paused"] is True
    shown = client.get("/api/schedules/morning").json()
    assert shown["paused"] and shown["next_slot"] is None and shown["fired"] == []
    assert client.post("/api/schedules/morning/resume").json()["paused"] is False
    assert client.delete("/api/schedules/morning").json() == {"id": "morning", "deleted": True}
    assert client.get("/api/schedules/morning").status_code == 404
    assert client.delete("/api/schedules/morning").status_code == 404


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"cron": "61 * * * *"}, 400, "bad cron expression"),
        ({"cron": "0 6 * * *", "timezone": "Mars/Base"}, 400, "unknown time zone"),
        ({"cron": "0 6 * * *", "catch_up": "maybe"}, 400, "bad catch_up"),
        ({"cron": "0 6 * * *", "playbook": "flows/none"}, 404, "flows/none"),
    ],
)
def test_bad_schedules_are_refused(
    client: TestClient, body: dict[str, Any], status: int, message: str
) -> None:
    r = client.post("/api/schedules", json={"playbook": "flows/report", **body})
    assert r.status_code == status and message in r.json()["detail"]
    assert client.get("/api/schedules").json() == []


def test_a_schedule_whose_payload_is_not_json_is_refused(client: TestClient) -> None:
    body = '{"playbook": "flows/report", "cron": "0 6 * * *", "payload": {"n": 1e400}}'
    r = client.post("/api/schedules", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400 and "not JSON data: inf at ['n']" in r.json()["detail"]
    assert client.get("/api/schedules").json() == []


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_the_background_loop_fires_due_slots(store: Store, tmp_path: Path) -> None:
    made = store.create_schedule(NewSchedule("every", "flows/report", "*/5 * * * *", "UTC"))
    created = datetime.fromisoformat(made.created_at)
    clock = Clock(created)
    fired: list[Fired] = []
    seen = threading.Event()
    engine = Engine(store, catalog_loader(store), env={})
    bg = Background(store, engine, tmp_path, clock=clock, max_wait=0.02)
    assert bg.scheduler is not None
    bg.scheduler.on_fired.append(lambda f: (fired.append(f), seen.set()))
    bg.start()
    try:
        clock.now = created.replace(second=0, microsecond=0) + timedelta(minutes=5)
        assert seen.wait(10)
    finally:
        bg.stop()
    [done] = fired
    assert done.execution_id and store.get_execution(done.execution_id) is not None


def test_the_background_loop_prunes_with_a_retention(store: Store, tmp_path: Path) -> None:
    from replaybook.store.base import NewEvent

    engine = Engine(store, catalog_loader(store), env={})
    eid = "finished1"
    store.create_execution(eid, "flows/report", 1)
    store.append(eid, 0, [NewEvent("execution.completed")], status="completed")
    (tmp_path / "duckdb").mkdir()
    (tmp_path / "duckdb" / f"{eid}.duckdb").write_bytes(b"x")
    bg = Background(store, engine, tmp_path, scheduler=False, retention=timedelta(0),
                    max_wait=0.02)  # fmt: skip
    bg.start()
    try:
        deadline = time.monotonic() + 10
        while store.get_execution(eid) is not None and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        bg.stop()
    assert store.get_execution(eid) is None
    assert not (tmp_path / "duckdb" / f"{eid}.duckdb").exists()


def test_metrics_count_fired_slots(store: Store, tmp_path: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    store.create_schedule(NewSchedule("every", "flows/report", "* * * * *", "UTC"))
    app = create_app(store, data_dir=tmp_path, scheduler=False, close_store=False)
    state = app.state.rb
    assert state.background.scheduler is None
    bg = Background(store, state.engine, tmp_path, metrics=state.metrics,
                    clock=lambda: datetime.now(UTC) + timedelta(minutes=2))  # fmt: skip
    assert bg.scheduler is not None
    bg.scheduler.tick()
    with TestClient(app) as c:
        text = c.get("/metrics").text
    samples = {
        (s.name, s.labels.get("outcome")): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }
    assert samples[("replaybook_schedule_slots_total", "started")] >= 1


def test_two_servers_on_one_store_fire_each_slot_once(tmp_path: Path) -> None:
    """Two servers' background loops (each its own store connection and engine) race
    over the same due slots: every slot starts exactly one execution."""
    path = str(tmp_path / "shared.db")
    stores = [open_store(path), open_store(path)]
    stores[0].register_playbook("flows/report", "report", REPORT)
    made = stores[0].create_schedule(
        NewSchedule("often", "flows/report", "* * * * *", "UTC", catch_up="all")
    )
    # Both clocks stand 30 minutes after creation: 30 slots are due at once.
    now = datetime.fromisoformat(made.created_at) + timedelta(minutes=30, seconds=1)
    ticks = [0, 0]
    loops = []
    for n, store in enumerate(stores):
        engine = Engine(store, catalog_loader(store), env={})
        bg = Background(store, engine, tmp_path, clock=lambda: now, max_wait=0.01)
        assert bg.scheduler is not None
        tick = bg.scheduler.tick

        def counted(tick: Any = tick, n: int = n) -> list[Fired]:
            fired: list[Fired] = tick()
            ticks[n] += 1
            return fired

        bg.scheduler.tick = counted  # type: ignore[method-assign]
        loops.append(bg)
    for bg in loops:
        bg.start()
    try:
        deadline = time.monotonic() + 30
        while min(ticks) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        for bg in loops:
            bg.stop()
    slots = stores[0].schedule_slots("often", limit=100)
    assert len(slots) == 30 and len({s.slot for s in slots}) == 30
    assert all(s.execution_id for s in slots)
    assert len(stores[0].list_executions(playbook_path="flows/report", limit=100)) == 30
    for store in stores:
        store.close()
