"""Execution state, folded from the event log.

`ExecutionState.apply(event)` is the fold step: deterministic, no I/O, no clock. The
state is updated in place rather than copied per event because a copy would cost
O(steps) per event (a 1,000-step playbook would spend most of its time copying);
the discipline that keeps this safe is that nothing but `apply` mutates it, and a
state whose provisional events failed to commit is thrown away and re-folded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from replaybook.core import events as ev
from replaybook.core.topology import Topology
from replaybook.store.base import Event, NewEvent

# Step statuses
PENDING = "pending"
SCHEDULED = "scheduled"
RUNNING = "running"
RETRYING = "retrying"
COMPLETED = "completed"
FAILED = "failed"
SKIPPED = "skipped"
CANCELLED = "cancelled"

ACTIVE_STATUSES = frozenset({SCHEDULED, RUNNING, RETRYING})


@dataclass
class StepRec:
    status: str = PENDING
    visits: int = 0
    attempts: int = 0  # attempts of the current/last visit
    result: Any = None
    error: dict[str, Any] | None = None
    # What the current visit was scheduled with; a retry or resume reuses it.
    inputs: dict[str, Any] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)


@dataclass
class IterRec:
    """Progress of one iterator visit. Scheduling walks `next_index` forward, so
    no per-item cost grows with the number of items already done."""

    items: list[Any]
    concurrency: int
    continue_on_error: bool
    results: list[Any]
    next_index: int = 0
    running: int = 0
    done: int = 0
    failed: dict[str, Any] | None = None
    finishing: bool = False
    # 1 for each item whose outcome stands (completed, or failed under
    # continue_on_error): a resume runs only the others.
    settled: bytearray = field(default_factory=bytearray)

    def reopen(self) -> None:
        """Prepare a resume: unsettled items run again, settled ones keep results."""
        self.failed = None
        self.finishing = False
        self.running = 0
        self.next_index = 0


@dataclass
class Ready:
    """A step whose turn has come, waiting for `decide` to schedule it."""

    inputs: dict[str, Any]
    sources: list[str]


@dataclass
class Arrival:
    taken: bool
    data: dict[str, Any]


class ExecutionState:
    def __init__(self, topology: Topology, execution_id: str = "") -> None:
        self.topology = topology
        self.execution_id = execution_id
        self.status = "new"
        self.last_seq = 0
        self.workload: dict[str, Any] = {}
        self.payload: dict[str, Any] = {}
        self.playbook: dict[str, Any] = {}
        self.parent: dict[str, Any] | None = None
        self.steps: dict[str, StepRec] = {}
        # Results of completed steps (latest visit), the template context's core.
        self.results: dict[str, Any] = {}
        # target -> source -> what the source's settling said about the arc.
        self.inbox: dict[str, dict[str, Arrival]] = {}
        self.ready: dict[str, Ready] = {}
        self.to_skip: set[str] = set()
        self.active: set[str] = set()
        self.unhandled: dict[str, Any] | None = None  # error that fails the execution
        self.iters: dict[str, IterRec] = {}  # iterator steps whose items are running
        # Iterators that failed or were cancelled, kept so a resume re-runs only the
        # items that did not finish.
        self.halted_iters: dict[str, IterRec] = {}
        self.result: Any = None
        self.error: dict[str, Any] | None = None

    # -- queries -------------------------------------------------------------
    def rec(self, step: str) -> StepRec:
        r = self.steps.get(step)
        if r is None:
            r = self.steps[step] = StepRec()
        return r

    @property
    def finished(self) -> bool:
        return self.status in ("completed", "failed", "cancelled")

    def step_summary(self) -> dict[str, dict[str, Any]]:
        """The `steps` mapping of the CLI's JSON contract (reached steps only)."""
        out: dict[str, dict[str, Any]] = {}
        for name in sorted(self.steps, key=self.topology.order.__getitem__):
            r = self.steps[name]
            if r.status == PENDING:
                continue
            out[name] = {"status": r.status, "attempts": r.attempts, "visits": r.visits}
        return out

    # -- fold ----------------------------------------------------------------
    def apply_all(self, events: Iterable[Event | NewEvent]) -> ExecutionState:
        for e in events:
            self.apply(e)
        return self

    def apply(self, e: Event | NewEvent) -> None:
        if isinstance(e, Event):
            self.last_seq = e.seq
        handler = _HANDLERS.get(e.type)
        if handler is not None:
            handler(self, e)

    def _on_started(self, e: Event | NewEvent) -> None:
        d = e.data
        self.status = "running"
        self.workload = dict(d.get("workload") or {})
        self.payload = dict(d.get("payload") or {})
        self.playbook = dict(d.get("playbook") or {})
        self.parent = d.get("parent")
        self.ready["start"] = Ready({}, [])

    def _on_scheduled(self, e: Event | NewEvent) -> None:
        assert e.step is not None
        if e.index is not None:
            it = self.iters[e.step]
            it.running += 1
            it.next_index = max(it.next_index, e.index + 1)
            return
        self.iters.pop(e.step, None)
        self.halted_iters.pop(e.step, None)
        r = self.rec(e.step)
        self.ready.pop(e.step, None)
        self.to_skip.discard(e.step)
        r.status = SCHEDULED
        r.visits = e.visit or r.visits + 1
        r.attempts = 0
        r.error = None
        r.inputs = dict(e.data.get("inputs") or {})
        r.sources = list(e.data.get("from") or [])
        self.active.add(e.step)

    def _on_step_started(self, e: Event | NewEvent) -> None:
        assert e.step is not None
        if e.index is not None:
            return
        items = e.data.get("items")
        if isinstance(items, list):
            self.iters[e.step] = IterRec(
                items=items,
                concurrency=max(1, int(e.data.get("concurrency") or 1)),
                continue_on_error=bool(e.data.get("continue_on_error")),
                results=[None] * len(items),
                settled=bytearray(len(items)),
            )
        r = self.rec(e.step)
        if r.status in ACTIVE_STATUSES:
            r.status = RUNNING
            r.attempts = max(r.attempts, e.attempt or 1)

    def _on_retrying(self, e: Event | NewEvent) -> None:
        assert e.step is not None
        if e.index is not None:
            return
        r = self.rec(e.step)
        r.status = RETRYING
        r.attempts = max(r.attempts, e.attempt or 1)
        r.error = e.data.get("error")

    def _on_completed(self, e: Event | NewEvent) -> None:
        assert e.step is not None
        if e.index is not None:
            it = self.iters[e.step]
            it.results[e.index] = e.data.get("result")
            it.settled[e.index] = 1
            it.running -= 1
            it.done += 1
            return
        self.iters.pop(e.step, None)
        self.halted_iters.pop(e.step, None)
        r = self.rec(e.step)
        r.status = COMPLETED
        r.attempts = max(r.attempts, e.attempt or 1)
        r.result = e.data.get("result")
        self.results[e.step] = r.result
        self.active.discard(e.step)
        self._settle(e.step, e.data.get("routes") or [])

    def _on_failed(self, e: Event | NewEvent) -> None:
        assert e.step is not None
        if e.index is not None:
            it = self.iters[e.step]
            error = e.data.get("error")
            if it.continue_on_error:
                it.results[e.index] = {"error": error}
                it.settled[e.index] = 1
            elif it.failed is None:
                it.failed = error
            it.running -= 1
            it.done += 1
            return
        self._halt_iterator(e.step)
        r = self.rec(e.step)
        r.status = FAILED
        r.attempts = max(r.attempts, e.attempt or 1)
        r.error = e.data.get("error")
        self.active.discard(e.step)
        routes = e.data.get("routes") or []
        if not routes and self.unhandled is None:
            self.unhandled = r.error
        self._settle(e.step, routes)

    def _on_skipped(self, e: Event | NewEvent) -> None:
        assert e.step is not None
        r = self.rec(e.step)
        r.status = SKIPPED
        r.attempts = 0
        self.to_skip.discard(e.step)
        self._settle(e.step, [])

    def _on_step_cancelled(self, e: Event | NewEvent) -> None:
        assert e.step is not None
        self._halt_iterator(e.step)
        self.rec(e.step).status = CANCELLED
        self.active.discard(e.step)

    def _on_items_done(self, e: Event | NewEvent) -> None:
        assert e.step is not None
        self.iters[e.step].finishing = True

    def _on_execution_completed(self, e: Event | NewEvent) -> None:
        self.status = "completed"
        self.result = e.data.get("result")

    def _on_execution_failed(self, e: Event | NewEvent) -> None:
        self.status = "failed"
        self.error = e.data.get("error")

    def _on_execution_cancelled(self, e: Event | NewEvent) -> None:
        self.status = "cancelled"

    def _on_resumed(self, e: Event | NewEvent) -> None:
        """Failed and unfinished steps run again with the inputs they had; with
        `from_step`, that step and everything forward of it run again too."""
        self.status = "running"
        self.unhandled = None
        self.error = None
        self.to_skip.clear()
        rerun = [n for n, r in self.steps.items() if r.status in (FAILED, CANCELLED)]
        from_step = e.data.get("from_step")
        if from_step:
            rerun.append(from_step)
            for name in _forward_closure(self.topology, from_step):
                self.halted_iters.pop(name, None)  # runs again from its collection
                if name != from_step and name in self.steps:
                    self.steps[name].status = PENDING
                    self.results.pop(name, None)
                    self._clear_arrivals_from(name)
        if not self.steps:
            self.ready["start"] = Ready({}, [])
        for name in rerun:
            r = self.rec(name)
            self._clear_arrivals_from(name)
            it = self.halted_iters.pop(name, None)
            if it is None:
                self.ready[name] = Ready(dict(r.inputs), list(r.sources))
                continue
            # Same visit, same items: `decide` starts the unsettled ones.
            it.reopen()
            self.iters[name] = it
            r.status = RUNNING
            r.error = None
            self.active.add(name)

    def _halt_iterator(self, step: str) -> None:
        it = self.iters.pop(step, None)
        if it is not None:
            self.halted_iters[step] = it

    # -- routing bookkeeping -------------------------------------------------
    def _clear_arrivals_from(self, source: str) -> None:
        for t in self.topology.successors.get(source, ()):
            self.inbox.get(t, {}).pop(source, None)

    def _settle(self, source: str, routes: list[Mapping[str, Any]]) -> None:
        """Record what `source`'s settling means for each of its forward targets,
        then start loops for the back edges it took."""
        topo = self.topology
        taken: dict[str, dict[str, Any]] = {}
        back: list[tuple[str, dict[str, Any]]] = []
        for rt in routes:
            target = str(rt["step"])
            data = dict(rt.get("data") or {})
            if topo.is_back(source, target):
                back.append((target, data))
            else:
                taken.setdefault(target, {}).update(data)
        for target in topo.successors.get(source, ()):
            box = self.inbox.setdefault(target, {})
            box[source] = Arrival(target in taken, taken.get(target, {}))
            self._check_ready(target)
        for target, data in back:
            self._reset_region(target)
            self.ready[target] = Ready(data, [source])

    def _check_ready(self, target: str) -> None:
        preds = self.topology.predecessors.get(target, ())
        box = self.inbox.get(target, {})
        if any(p not in box for p in preds):
            return
        sources = [p for p in preds if box[p].taken]
        if not sources:
            self.to_skip.add(target)
            return
        merged: dict[str, Any] = {}
        for p in sources:  # workflow order: the later source wins a shared key
            merged.update(box[p].data)
        self.ready[target] = Ready(merged, sources)

    def _reset_region(self, target: str) -> None:
        region = self.topology.regions.get(target, frozenset({target}))
        for name in region:
            box = self.inbox.get(name)
            if box:
                for src in [s for s in box if s in region]:
                    del box[src]
            self.to_skip.discard(name)


def _forward_closure(topo: Topology, start: str) -> set[str]:
    seen = {start}
    todo = [start]
    while todo:
        for nxt in topo.successors.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


_HANDLERS = {
    ev.EXECUTION_STARTED: ExecutionState._on_started,
    ev.STEP_SCHEDULED: ExecutionState._on_scheduled,
    ev.STEP_STARTED: ExecutionState._on_step_started,
    ev.STEP_RETRYING: ExecutionState._on_retrying,
    ev.STEP_COMPLETED: ExecutionState._on_completed,
    ev.STEP_FAILED: ExecutionState._on_failed,
    ev.STEP_SKIPPED: ExecutionState._on_skipped,
    ev.STEP_ITEMS_DONE: ExecutionState._on_items_done,
    ev.STEP_CANCELLED: ExecutionState._on_step_cancelled,
    ev.EXECUTION_COMPLETED: ExecutionState._on_execution_completed,
    ev.EXECUTION_FAILED: ExecutionState._on_execution_failed,
    ev.EXECUTION_CANCELLED: ExecutionState._on_execution_cancelled,
    ev.EXECUTION_RESUMED: ExecutionState._on_resumed,
}


def fold(
    topology: Topology, events: Iterable[Event | NewEvent], execution_id: str = ""
) -> ExecutionState:
    return ExecutionState(topology, execution_id).apply_all(events)
