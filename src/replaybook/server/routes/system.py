"""Health, metrics, and the workers and pools this server has heard from."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from replaybook.server.app import state_of

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
    """Remote workers (`replaybook worker --server`); the server's own slots are
    counted in /api/pools."""
    return state_of(request).workers.all()


@router.get("/api/pools", tags=["workers"], summary="Worker pools and how many workers serve them")
def list_pools(request: Request) -> list[dict[str, Any]]:
    """Remote workers by pool, and the server's own worker slots (`--workers N`), which
    lease in process and serve the default pool: `in_process` is their number. A
    client can tell from `alive` whether anything will run its execution."""
    st = state_of(request)
    pools = st.workers.pools()
    pool = getattr(st.runner, "pool", None)
    if pool is not None:
        rec = next((p for p in pools if p["pool"] == "default"), None)
        if rec is None:
            rec = {"pool": "default", "workers": 0, "alive": 0, "running": 0}
            pools.append(rec)
        rec["workers"] += 1
        rec["alive"] += 1
        rec["running"] += pool.running()
        rec["in_process"] = pool.concurrency
    return sorted(pools, key=lambda r: str(r["pool"]))
