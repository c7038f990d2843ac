"""The pure core: fold + decide over hand-written worker outcomes, no I/O."""

from __future__ import annotations

import ast
import pathlib
from typing import Any

from replaybook.core import events as ev
from replaybook.core.decide import cancel, decide, jobs_for
from replaybook.core.state import ExecutionState
from replaybook.core.topology import build_topology
from replaybook.playbook.model import Arc, Playbook, Routing, Step
from replaybook.store.base import NewEvent


def _pb(*steps: Step) -> Playbook:
    return Playbook("t", "t", None, None, {}, {}, tuple(steps))


def _step(
    name: str, i: int, *targets: str, on_error: tuple[str, ...] = (), typ: str | None = "python"
) -> Step:
    return Step(
        name=name,
        type=typ,
        index=i,
        next=Routing(tuple(Arc(t, group=g) for g, t in enumerate(targets))),
        on_error=Routing(tuple(Arc(t, group=g) for g, t in enumerate(on_error))),
    )


class Sim:
    """Drives the core like the engine does, with scripted worker outcomes."""

    def __init__(self, pb: Playbook) -> None:
        self.pb = pb
        self.state = ExecutionState(build_topology(pb), "e1")
        self.log: list[NewEvent] = []
        self.jobs: list[Any] = []
        self.commit([NewEvent(ev.EXECUTION_STARTED, data={"workload": {}})])

    def commit(self, events: list[NewEvent]) -> list[NewEvent]:
        out = list(events)
        self.state.apply_all(out)
        while more := decide(self.pb, self.state):
            self.state.apply_all(more)
            out.extend(more)
        self.jobs.extend(jobs_for(self.pb, self.state, out))
        self.log.extend(out)
        return out

    def complete(
        self, step: str, result: Any = None, routes: list[str] | None = None
    ) -> list[NewEvent]:
        visit = self.state.rec(step).visits
        rs = [
            ev.route(t) for t in (routes if routes is not None else self.pb.step(step).next.targets)
        ]
        return self.commit(
            [
                NewEvent(
                    ev.STEP_COMPLETED,
                    step=step,
                    visit=visit,
                    attempt=1,
                    data={"result": result, "routes": rs},
                )
            ]
        )

    def fail(self, step: str, routes: list[str] | None = None) -> list[NewEvent]:
        err = ev.error_object(step, "boom", "error", 1)
        rs = [ev.route(t) for t in routes or []]
        return self.commit(
            [NewEvent(ev.STEP_FAILED, step=step, attempt=1, data={"error": err, "routes": rs})]
        )

    def scheduled(self) -> list[str]:
        return [e.step or "" for e in self.log if e.type == ev.STEP_SCHEDULED]


def test_linear_flow_completes_with_end_result() -> None:
    sim = Sim(
        _pb(_step("start", 0, "a", typ=None), _step("a", 1, "end"), _step("end", 2, typ=None))
    )
    assert sim.scheduled() == ["start"]
    sim.complete("start")
    sim.complete("a", 5)
    sim.complete("end", {"a": 5})
    assert sim.state.status == "completed"
    assert sim.state.result == {"a": 5}
    assert [j.step for j in sim.jobs] == ["start", "a", "end"]


def test_join_waits_for_both_and_dead_path_skips() -> None:
    pb = _pb(
        _step("start", 0, "l", "r", typ=None),
        _step("l", 1, "j"),
        _step("r", 2, "r2"),
        _step("r2", 3, "j"),
        _step("j", 4, "end"),
        _step("end", 5, typ=None),
    )
    sim = Sim(pb)
    sim.complete("start", routes=["l", "r"])
    sim.complete("l")
    assert "j" not in sim.scheduled()
    sim.complete("r", routes=[])  # r takes no arc: r2 is skipped, the skip flows on
    assert sim.state.steps["r2"].status == "skipped"
    assert sim.scheduled().count("j") == 1
    sim.complete("j")
    sim.complete("end")
    assert sim.state.status == "completed"


def test_back_edge_runs_step_again_and_resets_downstream() -> None:
    pb = _pb(
        _step("start", 0, "page", typ=None),
        _step("page", 1, "page", "done"),
        _step("done", 2, "end", typ=None),
        _step("end", 3, typ=None),
    )
    sim = Sim(pb)
    sim.complete("start")
    sim.complete("page", routes=["page"])
    # The loop is still going: what lies after it waits instead of being skipped.
    assert "done" not in sim.state.steps or sim.state.steps["done"].status == "pending"
    sim.complete("page", routes=["page"])
    sim.complete("page", routes=["done"])
    sim.complete("done")
    sim.complete("end")
    assert sim.state.status == "completed"
    summary = sim.state.step_summary()
    assert summary["page"]["visits"] == 3
    assert summary["done"] == {"status": "completed", "attempts": 1, "visits": 1}


def test_unhandled_failure_fails_execution_and_cancels_running() -> None:
    sim = Sim(
        _pb(
            _step("start", 0, "a", "b", typ=None),
            _step("a", 1),
            _step("b", 2),
            _step("end", 3, typ=None),
        )
    )
    sim.complete("start", routes=["a", "b"])
    out = sim.fail("a")
    types = [e.type for e in out]
    assert types[-2:] == [ev.STEP_CANCELLED, ev.EXECUTION_FAILED]
    assert sim.state.status == "failed"
    assert sim.state.error is not None and sim.state.error["step"] == "a"


def test_on_error_route_keeps_execution_going() -> None:
    pb = _pb(
        _step("start", 0, "risky", typ=None),
        _step("risky", 1, "happy", on_error=("recover",)),
        _step("happy", 2, "end"),
        _step("recover", 3, "end"),
        _step("end", 4, typ=None),
    )
    sim = Sim(pb)
    sim.complete("start")
    sim.fail("risky", routes=["recover"])
    assert sim.state.steps["happy"].status == "skipped"
    sim.complete("recover", "ok")
    sim.complete("end", {"recover": "ok"})
    assert sim.state.status == "completed"
    assert sim.state.error is None


def test_end_not_reached_completes_with_null_and_warning() -> None:
    sim = Sim(
        _pb(_step("start", 0, "a", typ=None), _step("a", 1, "end"), _step("end", 2, typ=None))
    )
    sim.complete("start")
    out = sim.complete("a", routes=[])
    assert [e.type for e in out][-2:] == [ev.WARNING, ev.EXECUTION_COMPLETED]
    assert sim.state.result is None


def test_retrying_enqueues_next_attempt_with_delay() -> None:
    sim = Sim(
        _pb(_step("start", 0, "a", typ=None), _step("a", 1, "end"), _step("end", 2, typ=None))
    )
    sim.complete("start")
    err = ev.error_object("a", "x", "error", 1)
    sim.commit(
        [
            NewEvent(
                ev.STEP_RETRYING,
                step="a",
                visit=1,
                attempt=1,
                data={"error": err, "delay_ms": 1500},
            )
        ]
    )
    job = sim.jobs[-1]
    assert (job.step, job.attempt, job.delay_ms) == ("a", 2, 1500)


def test_cancel_and_resume() -> None:
    sim = Sim(
        _pb(_step("start", 0, "a", typ=None), _step("a", 1, "end"), _step("end", 2, typ=None))
    )
    sim.complete("start")
    sim.commit(cancel(sim.state))
    assert sim.state.status == "cancelled"
    assert sim.state.steps["a"].status == "cancelled"
    sim.commit([NewEvent(ev.EXECUTION_RESUMED, data={"from_step": None})])
    assert sim.scheduled().count("a") == 2
    sim.complete("a")
    sim.complete("end")
    assert sim.state.status == "completed"


def test_fold_is_deterministic() -> None:
    pb = _pb(
        _step("start", 0, "a", "b", typ=None),
        _step("a", 1, "end"),
        _step("b", 2, "end"),
        _step("end", 3, typ=None),
    )
    sim = Sim(pb)
    sim.complete("start", routes=["a", "b"])
    sim.complete("b", 2)
    sim.complete("a", 1)
    sim.complete("end", "r")
    again = ExecutionState(build_topology(pb), "e1").apply_all(sim.log)
    assert again.step_summary() == sim.state.step_summary()
    assert again.result == sim.state.result == "r"


FORBIDDEN = {
    "os",
    "time",
    "random",
    "uuid",
    "socket",
    "subprocess",
    "threading",
    "sqlite3",
    "httpx",
    "duckdb",
    "psycopg",
    "pathlib",
    "datetime",
    "io",
    "shutil",
    "asyncio",
}


def test_core_imports_no_io_modules() -> None:
    core = pathlib.Path(__file__).resolve().parents[2] / "src" / "replaybook" / "core"
    for f in core.glob("*.py"):
        tree = ast.parse(f.read_text())
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for n in names:
                assert n.split(".")[0] not in FORBIDDEN, f"{f.name} imports {n}"
