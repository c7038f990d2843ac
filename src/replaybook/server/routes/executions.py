"""Executions: start, list, inspect, follow live (SSE), cancel, resume."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from replaybook.actions.jsonsafe import not_json
from replaybook.core.state import ExecutionState
from replaybook.errors import NotFound, UsageError
from replaybook.server.app import ServerState, state_of
from replaybook.server.sse import stream_events
from replaybook.server.wire import execution_to_json
from replaybook.store.base import ExecutionInfo

router = APIRouter(prefix="/api/executions", tags=["executions"])

TERMINAL = frozenset({"completed", "failed", "cancelled"})
STATUSES = ("running", "completed", "failed", "cancelled")
# Bounds that keep numbers inside the stores' 64-bit integers (a bigger one was a 500).
MAX_OFFSET = 10**12
MAX_SEQ = 2**62
MAX_WAIT_SECONDS = 60.0


class ParentRef(BaseModel):
    execution_id: str
    step: str


class StartRequest(BaseModel):
    path: str = Field(description="Catalog path of the playbook.")
    version: int | None = Field(None, description="Default: the latest version.")
    payload: dict[str, Any] = Field(default_factory=dict, description="Merged over the workload.")
    parent: ParentRef | None = Field(None, description="Set when a playbook step starts a child.")


class CancelRequest(BaseModel):
    reason: str = "cancelled by request"


class ResumeRequest(BaseModel):
    from_step: str | None = Field(None, description="Re-run from this step.")


def _info(st: ServerState, execution_id: str) -> ExecutionInfo:
    info = st.store.get_execution(execution_id)
    if info is None:
        raise NotFound(f"no execution '{execution_id}'")
    return info


def outcome(st: ServerState, info: ExecutionInfo, results: bool = False) -> dict[str, Any]:
    """The `run --json` object of an execution, folded afresh from its log (the
    engine's cache is for executions being worked on, not for readers)."""
    topology = st.engine.loaded(info.playbook_path, info.playbook_version).topology
    fold = ExecutionState(topology, info.id)
    fold.apply_all(st.store.read_events(info.id))
    out = {
        "execution_id": info.id,
        "status": fold.status,
        "result": fold.result,
        "error": fold.error,
        "steps": fold.step_summary(),
        "playbook": info.playbook_path,
        "version": info.playbook_version,
        "parent_id": info.parent_id,
        "created_at": info.created_at,
        "updated_at": info.updated_at,
        "last_seq": fold.last_seq,
    }
    if results:
        out["results"] = dict(fold.results)
    return out


def _wait(st: ServerState, execution_id: str, seconds: float) -> None:
    deadline = time.monotonic() + min(seconds, MAX_WAIT_SECONDS)
    engine = st.engine
    while True:
        info = _info(st, execution_id)
        left = deadline - time.monotonic()
        if info.status in TERMINAL or left <= 0:
            return
        with engine.changed:  # notified when an execution ends in this process
            engine.changed.wait(min(left, st.poll_seconds))


@router.post("", status_code=201, summary="Start an execution of a registered playbook")
def start(body: StartRequest, request: Request) -> dict[str, Any]:
    st = state_of(request)
    entry = st.store.get_playbook(body.path, body.version)
    if entry is None:
        which = f"'{body.path}'" + (f" version {body.version}" if body.version else "")
        raise NotFound(f"playbook {which} is not in the catalog")
    bad = not_json(body.payload)
    if bad:  # JSON text may hold NaN or 1e400; an execution could not record them
        raise HTTPException(
            422, f"payload is not JSON data: {bad} (NaN and infinities have no JSON form)"
        )
    parent = body.parent.model_dump() if body.parent else None
    eid = st.engine.start(entry.path, entry.version, body.payload, parent=parent)
    st.metrics.executions_started.inc()
    return {"execution_id": eid, "playbook": entry.path, "version": entry.version}


@router.get("", summary="Executions, newest first, with filters and paging")
def list_executions(
    request: Request,
    status: str | None = None,
    playbook: str | None = None,
    parent: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[dict[str, Any]]:
    if not 0 < limit <= 1000 or not 0 <= offset <= MAX_OFFSET:
        raise UsageError(f"limit must be 1..1000 and offset 0..{MAX_OFFSET}")
    if status is not None and status not in STATUSES:
        raise UsageError(f"unknown status {status!r}: one of {', '.join(STATUSES)}")
    rows = state_of(request).store.list_executions(
        status=status, playbook_path=playbook, parent_id=parent, limit=limit, offset=offset
    )
    return [execution_to_json(r) for r in rows]


@router.get("/{execution_id}", summary="An execution's status, result, error and steps")
def get_execution(
    execution_id: str, request: Request, wait: float = 0, results: bool = False
) -> dict[str, Any]:
    """With `wait` > 0, answers when the execution has finished or after `wait`
    seconds (at most 60), whichever comes first."""
    st = state_of(request)
    if wait > 0:
        _wait(st, execution_id, wait)
    return outcome(st, _info(st, execution_id), results)


@router.get("/{execution_id}/events", summary="The event log, in pages")
def events(
    execution_id: str, request: Request, after: int = 0, limit: int = 1000
) -> list[dict[str, Any]]:
    st = state_of(request)
    _info(st, execution_id)
    if not 0 < limit <= 10000:
        raise UsageError("limit must be 1..10000")
    if not 0 <= after <= MAX_SEQ:
        raise UsageError(f"after must be 0..{MAX_SEQ}")
    return [e.as_dict() for e in st.store.read_events(execution_id, after_seq=after, limit=limit)]


@router.get(
    "/{execution_id}/stream",
    summary="Live events (Server-Sent Events)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
def stream(execution_id: str, request: Request, after: int = 0) -> StreamingResponse:
    """Every event after `after` as an `event` message (id = seq), then new ones as
    they are written; an `end` message with the final status closes the stream."""
    st = state_of(request)
    _info(st, execution_id)
    if not 0 <= after <= MAX_SEQ:
        raise UsageError(f"after must be 0..{MAX_SEQ}")

    def status() -> str:
        return _info(st, execution_id).status

    body = stream_events(st.store, st.hub, execution_id, after, st.poll_seconds * 2, status)
    return StreamingResponse(
        body,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.post("/{execution_id}/cancel", summary="Cancel a running execution (and its children)")
def cancel(
    execution_id: str, request: Request, body: CancelRequest | None = None
) -> dict[str, Any]:
    st = state_of(request)
    _info(st, execution_id)
    changed = st.engine.cancel(execution_id, (body or CancelRequest()).reason)
    out = outcome(st, _info(st, execution_id))
    out["changed"] = changed
    return out


@router.post("/{execution_id}/resume", summary="Resume a failed or cancelled execution")
def resume(
    execution_id: str, request: Request, body: ResumeRequest | None = None
) -> dict[str, Any]:
    st = state_of(request)
    before = _info(st, execution_id)
    try:
        st.engine.resume(execution_id, body.from_step if body else None)
    except ValueError as e:
        raise UsageError(str(e)) from e
    out = outcome(st, _info(st, execution_id))
    out["resumed_after_seq"] = before.last_seq
    return out
