"""Event types of an execution's log and the shapes of their `data` (spec §11).

The log is the truth; everything else (status, step table, resume points, the UI) is
folded from it by `core.state`. Events written by workers carry what only a worker can
know (a rendered result, which arcs its templates selected, an error); events written
by `core.decide` carry decisions (schedule, skip, finish).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from replaybook.store.base import NewEvent

EXECUTION_STARTED = "execution.started"  # {playbook: {path, version}, workload, payload, parent}
EXECUTION_COMPLETED = "execution.completed"  # {result}
EXECUTION_FAILED = "execution.failed"  # {error}
EXECUTION_CANCELLED = "execution.cancelled"  # {reason}
EXECUTION_RESUMED = "execution.resumed"  # {from_step}
STEP_SCHEDULED = "step.scheduled"  # {inputs: edge data, from: [sources]} (+index for items)
STEP_STARTED = "step.started"  # {worker}; an iterator's expansion adds
#   {items: [...], concurrency, continue_on_error} (index absent)
STEP_COMPLETED = "step.completed"  # {result, routes: [{step, data}]}
STEP_FAILED = "step.failed"  # {error, routes: [{step, data}]} routes = on_error arcs taken
STEP_RETRYING = "step.retrying"  # {error, delay_ms}
#   An action's attempt adds to its outcome (one of the three above) what the worker
#   saw: {inputs: rendered and masked (or {_omitted}), duration_ms}; the fold ignores them.
STEP_SKIPPED = "step.skipped"  # {}
STEP_CANCELLED = "step.cancelled"  # {}
STEP_LOG = "step.log"  # {lines: [...]}
# An iterator's items have all settled; its finishing job builds the result list.
STEP_ITEMS_DONE = "step.items_done"  # {count, failed}
WARNING = "warning"  # {message}

TERMINAL_EXECUTION = frozenset({EXECUTION_COMPLETED, EXECUTION_FAILED, EXECUTION_CANCELLED})


def route(step: str, data: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {"step": step, "data": dict(data) if data else {}}


def error_object(
    step: str,
    message: str,
    type: str,
    attempt: int,
    status_code: int | None = None,
) -> dict[str, Any]:
    """The error object of spec §9."""
    err: dict[str, Any] = {"step": step, "message": message, "type": type, "attempt": attempt}
    if status_code is not None:
        err["status_code"] = status_code
    return err


def scheduled(step: str, visit: int, inputs: Mapping[str, Any], sources: Sequence[str]) -> NewEvent:
    return NewEvent(
        STEP_SCHEDULED, step=step, visit=visit, data={"inputs": dict(inputs), "from": list(sources)}
    )
