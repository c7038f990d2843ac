"""The JSON forms of store records as the server and its clients exchange them.

Both sides import this module (it needs neither FastAPI nor httpx), so a job or an
event crosses the wire and comes back as the same dataclass.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from replaybook.store.base import CatalogEntry, Event, ExecutionInfo, Job, NewEvent


def job_to_json(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "execution_id": job.execution_id,
        "step": job.step,
        "visit": job.visit,
        "attempt": job.attempt,
        "index": job.index,
        "pool": job.pool,
        "payload": dict(job.payload),
        "lease_token": job.lease_token,
        "worker_id": job.worker_id,
        "leases": job.leases,
    }


def job_from_json(d: Mapping[str, Any]) -> Job:
    return Job(
        id=int(d["id"]),
        execution_id=str(d["execution_id"]),
        step=str(d["step"]),
        visit=int(d["visit"]),
        attempt=int(d["attempt"]),
        index=None if d.get("index") is None else int(d["index"]),
        pool=d.get("pool"),
        payload=dict(d.get("payload") or {}),
        lease_token=str(d["lease_token"]),
        worker_id=str(d["worker_id"]),
        leases=int(d.get("leases", 1)),
    )


def new_event_to_json(e: NewEvent) -> dict[str, Any]:
    return {
        "type": e.type,
        "step": e.step,
        "visit": e.visit,
        "index": e.index,
        "attempt": e.attempt,
        "data": dict(e.data),
    }


def new_event_from_json(d: Mapping[str, Any]) -> NewEvent:
    return NewEvent(
        type=str(d["type"]),
        step=d.get("step"),
        visit=d.get("visit"),
        index=d.get("index"),
        attempt=d.get("attempt"),
        data=dict(d.get("data") or {}),
    )


def event_from_json(d: Mapping[str, Any]) -> Event:
    """An Event from its `as_dict()` form."""
    return Event(
        id=str(d["id"]),
        execution_id=str(d["execution_id"]),
        seq=int(d["seq"]),
        type=str(d["type"]),
        at=str(d["at"]),
        step=d.get("step"),
        visit=d.get("visit"),
        index=d.get("index"),
        attempt=d.get("attempt"),
        data=dict(d.get("data") or {}),
        logic_version=int(d.get("logic_version", 1)),
    )


def execution_to_json(r: ExecutionInfo) -> dict[str, Any]:
    """The same keys as `replaybook executions list --json`."""
    return {
        "execution_id": r.id,
        "playbook": r.playbook_path,
        "version": r.playbook_version,
        "status": r.status,
        "created_at": r.created_at,
        "updated_at": r.updated_at,
        "parent_id": r.parent_id,
        "parent_step": r.parent_step,
        "last_seq": r.last_seq,
    }


def catalog_to_json(e: CatalogEntry, content: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "path": e.path,
        "name": e.name,
        "version": e.version,
        "content_hash": e.content_hash,
        "registered_at": e.registered_at,
    }
    if content:
        out["content"] = e.content
    return out
