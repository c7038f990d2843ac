"""Health, metrics, and the workers and pools this server has heard from."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from replaybook.server.app import ServerState, state_of
from replaybook.server.workers import iso_utc

router = APIRouter()


@router.get("/health", tags=["system"], summary="Liveness and store reachability")
def health(request: Request) -> dict[str, Any]:
    st = state_of(request)
    st.store.list_executions(limit=1)  # the store answers
    return {"status": "ok"}


@router.get("/metrics", tags=["system"], summary="Prometheus metrics (text format)")
def metrics(request: Request) -> Response:
    st = state_of(request)
    st.metrics.stream_clients.set(st.hub.clients())
    st.metrics.workers.set(sum(1 for w in st.workers.all() if w["alive"]))
    return Response(generate_latest(st.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/api/workers", tags=["workers"], summary="Workers and their last heartbeats")
def list_workers(request: Request) -> list[dict[str, Any]]:
    st = state_of(request)
    return _in_process(st) + st.workers.all()


@router.get("/api/pools", tags=["workers"], summary="Worker pools and how many workers serve them")
def list_pools(request: Request) -> list[dict[str, Any]]:
    st = state_of(request)
    pools = st.workers.pools()
    for w in _in_process(st):  # the default pool
        rec = next((p for p in pools if p["pool"] == "default"), None)
        if rec is None:
            rec = {"pool": "default", "workers": 0, "alive": 0, "running": 0}
            pools.insert(0, rec)
        rec["workers"] += 1
        rec["alive"] += 1
        rec["running"] += w["running"]
    return sorted(pools, key=lambda r: str(r["pool"]))


def _in_process(st: ServerState) -> list[dict[str, Any]]:
    """The server's own worker slots (`--workers N`), which lease in process, so the
    registry of workers heard over HTTP does not list them."""
    pool = getattr(st.runner, "pool", None)
    if pool is None:
        return []
    now = iso_utc(time.time())
    return [
        {
            "worker_id": pool.worker_id,
            "pools": [None],
            "first_seen": now,
            "last_heartbeat": now,
            "seconds_since_heartbeat": 0.0,
            "alive": True,
            "running": pool.running(),
            "concurrency": pool.concurrency,
            "jobs_leased": None,
            "in_process": True,
        }
    ]
