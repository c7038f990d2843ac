"""The queue as remote workers see it: lease (long poll), complete, record,
heartbeat, release. Completions run `Engine.commit` here, fenced by the job's lease:
a late result from an attempt whose lease was lost gets 409."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from replaybook.errors import StaleLease
from replaybook.server.app import ServerState, state_of
from replaybook.server.wire import job_from_json, job_to_json, new_event_from_json
from replaybook.store.base import Job, Lessee

router = APIRouter(prefix="/api/queue", tags=["queue"])


class LeaseRequest(BaseModel):
    worker_id: str
    limit: int = Field(1, ge=1, le=1000)
    lease_seconds: float = Field(30.0, gt=0, le=3600)
    pools: list[str | None] | None = Field(
        None,
        description="Pools to lease from (null in the list: the default pool); null: every pool.",
    )
    wait: float = Field(0.0, ge=0, description="Seconds to wait for work when none is due.")
    running: int | None = Field(None, description="Jobs the worker runs now (for /api/workers).")
    concurrency: int | None = None


class ChainRequest(BaseModel):
    worker_id: str
    lease_seconds: float = Field(30.0, gt=0, le=3600)
    pools: list[str | None] | None = None


class CompleteRequest(BaseModel):
    job: dict[str, Any] = Field(description="The leased job, as the lease returned it.")
    events: list[dict[str, Any]] = Field(description="The attempt's outcome events.")
    chain: ChainRequest | None = Field(
        None,
        description="Lease, in the same commit, one of the jobs this outcome enqueues "
        "(if one is due) for this worker and return it.",
    )


class CompleteManyRequest(BaseModel):
    completions: list[CompleteRequest] = Field(
        description="Outcomes of several leased jobs; their `chain` is ignored."
    )
    chain: ChainRequest | None = Field(
        None, description="Lease, for this worker, one follow-up job per outcome that enqueued one."
    )


class RecordRequest(BaseModel):
    execution_id: str
    events: list[dict[str, Any]]


class HeartbeatRequest(BaseModel):
    worker_id: str
    lease_seconds: float = Field(30.0, gt=0, le=3600)
    jobs: list[dict[str, Any]] = Field(default_factory=list)
    pools: list[str | None] | None = None
    running: int | None = None
    concurrency: int | None = None


class ReleaseRequest(BaseModel):
    jobs: list[dict[str, Any]]


def leased(st: ServerState, job: Job, chained: bool = False) -> dict[str, Any]:
    """A job with what it needs to run: its playbook's catalog key and a snapshot
    (null when the execution has ended or is gone: drop the job)."""
    ctx = st.coordinator.context(job, chained=chained)
    if ctx is None:
        return {"job": job_to_json(job), "playbook": None, "snapshot": None}
    snap = ctx.snapshot
    if snap is None:
        return {"job": job_to_json(job), "playbook": None, "snapshot": None}
    ref = {"path": snap["execution"]["path"], "version": snap["execution"]["version"]}
    return {"job": job_to_json(job), "playbook": ref, "snapshot": snap}


@router.post("/lease", summary="Lease due jobs; waits up to `wait` seconds when none is due")
def lease(body: LeaseRequest, request: Request) -> dict[str, Any]:
    st = state_of(request)
    wait = min(body.wait, st.max_lease_wait)
    pools = ["*"] if body.pools is None else body.pools
    st.workers.seen(body.worker_id, pools, running=body.running, concurrency=body.concurrency)
    jobs = st.coordinator.lease(body.worker_id, body.limit, body.lease_seconds, body.pools, wait)
    if jobs:
        st.metrics.jobs_leased.inc(len(jobs))
        st.workers.seen(body.worker_id, None, leased=len(jobs))
    return {"jobs": [leased(st, j) for j in jobs]}


@router.post(
    "/complete",
    summary="Record a job's outcome",
    responses={409: {"description": "The job's lease was lost: the outcome is refused."}},
)
def complete(body: CompleteRequest, request: Request) -> dict[str, Any]:
    st = state_of(request)
    job = job_from_json(body.job)
    events = [new_event_from_json(e) for e in body.events]
    nxt = st.coordinator.complete(job, events, chain=_lessee(body.chain))
    st.metrics.jobs_completed.inc()
    if nxt is not None:
        st.metrics.jobs_leased.inc()
    return {"next": None if nxt is None else leased(st, nxt, chained=True)}


def _lessee(body: ChainRequest | None) -> Lessee | None:
    if body is None:
        return None
    pools = None if body.pools is None else tuple(body.pools)
    return Lessee(body.worker_id, body.lease_seconds, pools)


@router.post("/complete-many", summary="Record several jobs' outcomes in one request")
def complete_many(body: CompleteManyRequest, request: Request) -> dict[str, Any]:
    """A busy worker's completions, batched: each execution's outcomes are committed
    in one transaction. Answers one entry per outcome, in order: `{"next": job or
    null}`, or `{"error": {"type": "stale_lease"|..., "detail"}}` (that outcome was
    refused; the others are recorded)."""
    st = state_of(request)
    outcomes = [
        (job_from_json(c.job), [new_event_from_json(e) for e in c.events])
        for c in body.completions
    ]
    answers = st.coordinator.complete_many(outcomes, chain=_lessee(body.chain))
    out: list[dict[str, Any]] = []
    for answer in answers:
        if isinstance(answer, Exception):
            kind = "stale_lease" if isinstance(answer, StaleLease) else "error"
            if kind == "stale_lease":
                st.metrics.stale_completions.inc()
            out.append({"error": {"type": kind, "detail": str(answer)}})
            continue
        st.metrics.jobs_completed.inc()
        if answer is not None:
            st.metrics.jobs_leased.inc()
        out.append({"next": None if answer is None else leased(st, answer, chained=True)})
    return {"results": out}


@router.post("/record", status_code=204, summary="Append events that decide nothing")
def record(body: RecordRequest, request: Request) -> Response:
    st = state_of(request)
    st.coordinator.record(body.execution_id, [new_event_from_json(e) for e in body.events])
    return Response(status_code=204)


@router.post("/heartbeat", summary="Extend leases; answers the lease tokens of lost ones")
def heartbeat(body: HeartbeatRequest, request: Request) -> dict[str, Any]:
    st = state_of(request)
    st.workers.seen(body.worker_id, body.pools, running=body.running, concurrency=body.concurrency)
    jobs = [job_from_json(j) for j in body.jobs]
    lost = st.coordinator.heartbeat(jobs, body.lease_seconds)
    return {"lost": sorted(lost)}


@router.post("/release", status_code=204, summary="Give leased jobs back to the queue")
def release(body: ReleaseRequest, request: Request) -> Response:
    state_of(request).coordinator.release([job_from_json(j) for j in body.jobs])
    return Response(status_code=204)
