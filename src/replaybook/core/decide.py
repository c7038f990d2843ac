"""Decisions: given a playbook and a folded state, what happens next.

Pure functions from state to new events (decisions as data). The runtime applies the
returned events to the state and calls `decide` again until it returns nothing, so
each call only needs to take one wave of decisions (skips flow on wave by wave).
`jobs_for` turns decision events into the queue work they imply.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from replaybook.core import events as ev
from replaybook.core.state import ExecutionState
from replaybook.playbook.model import Playbook
from replaybook.store.base import NewEvent, NewJob


def decide(pb: Playbook, state: ExecutionState) -> list[NewEvent]:
    if state.status != "running":
        return []
    if state.unhandled is not None:
        return _fail(state, state.unhandled)
    order = state.topology.order
    out: list[NewEvent] = []
    for name in sorted(state.to_skip, key=order.__getitem__):
        out.append(NewEvent(ev.STEP_SKIPPED, step=name))
    for name in sorted(state.ready, key=order.__getitem__):
        ready = state.ready[name]
        visit = state.rec(name).visits + 1
        out.append(ev.scheduled(name, visit, ready.inputs, ready.sources))
    for name in sorted(state.iters, key=order.__getitem__):
        out.extend(_iterate(name, state))
    if out or state.active:
        return out
    return _complete(state)


def _iterate(name: str, state: ExecutionState) -> list[NewEvent]:
    """Start items up to the iterator's concurrency; when every started item has
    settled and no more may start, hand over to the step's finishing job."""
    it = state.iters[name]
    if it.finishing:
        return []
    visit = state.rec(name).visits
    out: list[NewEvent] = []
    i = it.next_index
    running = it.running
    if it.failed is None:
        settled = it.settled
        while i < len(it.items) and running < it.concurrency:
            if settled[i]:  # finished before a resume: keeps its result
                i += 1
                continue
            out.append(NewEvent(ev.STEP_SCHEDULED, step=name, visit=visit, index=i))
            i += 1
            running += 1
    if running == 0 and (i >= len(it.items) or it.failed is not None):
        data = {"count": len(it.items), "failed": it.failed is not None}
        out.append(NewEvent(ev.STEP_ITEMS_DONE, step=name, visit=visit, data=data))
    return out


def _complete(state: ExecutionState) -> list[NewEvent]:
    out: list[NewEvent] = []
    end = state.steps.get("end")
    if end is not None and end.status == "completed":
        result: Any = end.result
    else:
        result = None
        out.append(
            NewEvent(ev.WARNING, data={"message": "the execution finished without reaching 'end'"})
        )
    out.append(NewEvent(ev.EXECUTION_COMPLETED, data={"result": result}))
    return out


def _fail(state: ExecutionState, error: dict[str, Any]) -> list[NewEvent]:
    out = cancel_running(state)
    out.append(NewEvent(ev.EXECUTION_FAILED, data={"error": error}))
    return out


def cancel_running(state: ExecutionState) -> list[NewEvent]:
    order = state.topology.order
    return [
        NewEvent(ev.STEP_CANCELLED, step=name, visit=state.rec(name).visits)
        for name in sorted(state.active, key=order.__getitem__)
    ]


def cancel(state: ExecutionState, reason: str = "cancelled by request") -> list[NewEvent]:
    """Events that cancel a running execution (nothing if it already finished)."""
    if state.finished:
        return []
    out = cancel_running(state)
    out.append(NewEvent(ev.EXECUTION_CANCELLED, data={"reason": reason}))
    return out


def execution_status(events: Sequence[NewEvent]) -> str | None:
    """The execution status these events move to, if they end it."""
    for e in reversed(events):
        if e.type == ev.EXECUTION_COMPLETED:
            return "completed"
        if e.type == ev.EXECUTION_FAILED:
            return "failed"
        if e.type == ev.EXECUTION_CANCELLED:
            return "cancelled"
        if e.type == ev.EXECUTION_RESUMED:
            return "running"
    return None


def jobs_for(pb: Playbook, state: ExecutionState, events: Sequence[NewEvent]) -> list[NewJob]:
    """Queue work implied by decision and worker events (state is after them)."""
    jobs: list[NewJob] = []
    for e in events:
        if e.index is not None and e.step is not None:
            if e.type in (ev.STEP_SCHEDULED, ev.STEP_RETRYING):
                it = state.iters[e.step]
                jobs.append(
                    NewJob(
                        step=e.step,
                        visit=e.visit or 1,
                        attempt=1 if e.type == ev.STEP_SCHEDULED else (e.attempt or 1) + 1,
                        index=e.index,
                        delay_ms=int(e.data.get("delay_ms") or 0),
                        pool=pb.step(e.step).pool,
                        payload={"item": it.items[e.index], "count": len(it.items)},
                    )
                )
        elif e.type == ev.STEP_ITEMS_DONE and e.step is not None:
            rec = state.rec(e.step)
            jobs.append(
                NewJob(
                    step=e.step,
                    visit=e.visit or rec.visits,
                    attempt=rec.attempts or 1,
                    pool=pb.step(e.step).pool,
                    payload={"phase": "finish", "inputs": rec.inputs, "from": rec.sources},
                )
            )
        elif e.type == ev.STEP_SCHEDULED and e.step is not None:
            step = pb.step(e.step)
            jobs.append(
                NewJob(
                    step=e.step, visit=e.visit or 1, attempt=1, pool=step.pool, payload=dict(e.data)
                )
            )
        elif e.type == ev.STEP_RETRYING and e.step is not None:
            rec = state.rec(e.step)
            jobs.append(
                NewJob(
                    step=e.step,
                    visit=e.visit or rec.visits,
                    attempt=(e.attempt or 1) + 1,
                    delay_ms=int(e.data.get("delay_ms") or 0),
                    pool=pb.step(e.step).pool,
                    payload={"inputs": rec.inputs, "from": rec.sources},
                )
            )
    return jobs
