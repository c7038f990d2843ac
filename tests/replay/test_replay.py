"""Golden event histories replayed through the pure core.

Two checks per history: folding the whole log rebuilds the recorded outcome, and at
every point where workers reported something, `decide` takes exactly the decisions
that were recorded after it. A change that alters either is a change of engine logic:
re-record (tests/replay/record.py) and bump LOGIC_VERSION on purpose, never by accident.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from replaybook.core import events as ev
from replaybook.core.decide import decide
from replaybook.core.state import ExecutionState
from replaybook.core.topology import build_topology
from replaybook.playbook.load import load_file
from replaybook.store.base import Event, NewEvent
from replaybook.version import LOGIC_VERSION

HERE = Path(__file__).parent
GOLDEN = sorted((HERE / "golden").glob("*.json"))
DECISIONS = {
    ev.STEP_SCHEDULED,
    ev.STEP_SKIPPED,
    ev.STEP_CANCELLED,
    ev.STEP_ITEMS_DONE,
    ev.WARNING,
    ev.EXECUTION_COMPLETED,
    ev.EXECUTION_FAILED,
}


def _event(d: dict[str, Any]) -> Event:
    return Event(
        id="",
        execution_id="golden",
        seq=d["seq"],
        type=d["type"],
        at="",
        step=d.get("step"),
        visit=d.get("visit"),
        index=d.get("index"),
        attempt=d.get("attempt"),
        data=d["data"],
        logic_version=d["logic_version"],
    )


def _shape(e: Event | NewEvent) -> tuple[Any, ...]:
    return (e.type, e.step, e.visit, e.index, e.attempt, json.dumps(e.data, sort_keys=False))


@pytest.fixture(params=GOLDEN, ids=[g.stem for g in GOLDEN])
def golden(request: pytest.FixtureRequest) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(Path(request.param).read_text())
    pb, _ = load_file(HERE / "playbooks" / data["playbook"])
    data["pb"] = pb
    return data


def test_histories_were_written_by_this_logic_version(golden: dict[str, Any]) -> None:
    assert {e["logic_version"] for e in golden["events"]} == {LOGIC_VERSION}


def test_fold_rebuilds_the_recorded_outcome(golden: dict[str, Any]) -> None:
    events = [_event(e) for e in golden["events"]]
    st = ExecutionState(build_topology(golden["pb"]), "golden").apply_all(events)
    out = golden["outcome"]
    assert st.status == out["status"]
    assert st.result == out["result"]
    assert st.error == out["error"]
    assert st.step_summary() == out["steps"]


def test_decide_takes_the_recorded_decisions(golden: dict[str, Any]) -> None:
    pb = golden["pb"]
    events = [_event(e) for e in golden["events"]]
    i = 0
    while i < len(events):
        # A batch of non-decision events (what a worker or a caller reported)...
        while i < len(events) and events[i].type not in DECISIONS:
            i += 1
        # ...is followed by exactly the decisions decide takes from there.
        expected = []
        while i < len(events) and events[i].type in DECISIONS:
            expected.append(events[i])
            i += 1
        taken: list[NewEvent] = []
        probe = ExecutionState(build_topology(pb), "golden").apply_all(events[: i - len(expected)])
        while more := decide(pb, probe):
            probe.apply_all(more)
            taken.extend(more)
        assert [_shape(e) for e in taken] == [_shape(e) for e in expected], f"at seq {i}"
