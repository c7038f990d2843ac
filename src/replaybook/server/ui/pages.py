"""The pages. Each reads what it shows from the store (like the API, so any server
can serve any page); actions (start, cancel, resume, schedule changes) are made by
the page's script through the API."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from replaybook.errors import ReplaybookError
from replaybook.server.app import ServerState, state_of
from replaybook.server.ui.render import span
from replaybook.server.ui.state import BadParameter, int_param, not_found, page, ui_of
from replaybook.server.ui.views import GraphView, execution_view, step_children
from replaybook.store.base import ExecutionInfo

router = APIRouter(include_in_schema=False)
unknown = APIRouter(include_in_schema=False)  # included after every other UI router

STATUSES = ("running", "completed", "failed", "cancelled")
PAGE_SIZES = (25, 50, 100, 200)
MAX_OFFSET = 10**9
MAX_VERSION = 2**31 - 1


@router.get("/")
def home() -> Response:
    return RedirectResponse("/ui/executions", status_code=307)


@router.get("/ui")
@router.get("/ui/")
def ui_home() -> Response:
    return RedirectResponse("/ui/executions", status_code=307)


@router.get("/ui/static/{name}")
def static(name: str, request: Request, v: str | None = None) -> Response:
    files = ui_of(request).static
    body = files.files.get(name)
    if body is None:
        return not_found(request, f"No file '{name}' here.")
    cache = "public, max-age=31536000, immutable" if v == files.versions[name] else "no-cache"
    return Response(body, media_type=files.TYPES[name], headers={"Cache-Control": cache})


# -- catalog ------------------------------------------------------------------------


@router.get("/ui/catalog", response_class=HTMLResponse)
def catalog(request: Request) -> Response:
    store = state_of(request).store
    entries = store.list_playbooks()
    counts = {e.path: len(store.playbook_versions(e.path)) for e in entries}
    return page(request, "catalog.html", title="Catalog", entries=entries, counts=counts)


@router.get("/ui/catalog/{path:path}", response_class=HTMLResponse)
def playbook(path: str, request: Request, version: str | None = None) -> Response:
    st = state_of(request)
    number = int_param("version", version, None, 1, MAX_VERSION)
    entry = st.store.get_playbook(path, number)
    if entry is None:
        which = f"'{path}'" + (f" version {number}" if number is not None else "")
        return not_found(request, f"No playbook {which} in the catalog.")
    versions = st.store.playbook_versions(path)
    graph, workload, problem, description = None, None, None, None
    try:
        loaded = st.engine.loaded(entry.path, entry.version)
        graph = _graph(request, st, entry.path, entry.version)
        workload = dict(loaded.playbook.workload)
        description = loaded.playbook.description
    except ReplaybookError as exc:  # an old version this build can no longer load
        problem = str(exc)
    recent = st.store.list_executions(playbook_path=path, limit=10)
    return page(
        request,
        "playbook.html",
        title=entry.name,
        entry=entry,
        versions=versions,
        graph=graph,
        workload=workload,
        problem=problem,
        description=description,
        recent=recent,
        now=_now(),
    )


def _graph(request: Request, st: ServerState, path: str, version: int) -> GraphView:
    loaded = st.engine.loaded(path, version)
    return ui_of(request).graphs.get(path, version, loaded.playbook, loaded.topology)


# -- executions ---------------------------------------------------------------------


def execution_row(r: ExecutionInfo) -> dict[str, Any]:
    end = r.updated_at if r.status in STATUSES[1:] else None
    return {"info": r, "duration": span(r.created_at, end)}


@router.get("/ui/executions", response_class=HTMLResponse)
def executions(
    request: Request,
    status: str | None = None,
    playbook: str | None = None,
    offset: str | None = None,
    limit: str | None = None,
) -> Response:
    st = state_of(request)
    status = status or None
    if status is not None and status not in STATUSES:
        raise BadParameter("status", f"{status!r} is not one of {', '.join(STATUSES)}.")
    playbook = playbook or None
    size = int_param("limit", limit, 50, 1, max(PAGE_SIZES)) or 50
    if size not in PAGE_SIZES:
        raise BadParameter("limit", f"{size} is not one of {', '.join(map(str, PAGE_SIZES))}.")
    start = int_param("offset", offset, 0, 0, MAX_OFFSET) or 0
    t0 = time.perf_counter()
    rows = st.store.list_executions(
        status=status, playbook_path=playbook, limit=size + 1, offset=start
    )
    more = len(rows) > size
    rows = rows[:size]
    counts = st.store.executions_by_status()
    total = sum(counts.values())
    # How many rows the filters match, when the page knows (not per playbook).
    matching = None if playbook else (counts.get(status, 0) if status else total)
    last = max(0, (matching - 1) // size * size) if matching else 0
    return page(
        request,
        "executions.html",
        title="Executions",
        rows=[execution_row(r) for r in rows],
        status=status,
        playbook=playbook,
        offset=start,
        limit=size,
        more=more,
        counts=counts,
        total=total,
        matching=matching,
        last_offset=last,
        playbooks=[e.path for e in st.store.list_playbooks()],
        statuses=STATUSES,
        query_ms=(time.perf_counter() - t0) * 1000,
        now=_now(),
    )


@router.get("/ui/executions/{execution_id}", response_class=HTMLResponse)
def execution(execution_id: str, request: Request) -> Response:
    st = state_of(request)
    info = st.store.get_execution(execution_id)
    if info is None:
        return not_found(request, f"No execution '{execution_id}'.")
    loaded = st.engine.loaded(info.playbook_path, info.playbook_version)
    events = st.store.read_events(execution_id)
    view = execution_view(info, loaded.playbook, loaded.topology, events)
    graph = _graph(request, st, info.playbook_path, info.playbook_version)
    children = st.store.list_executions(parent_id=execution_id, limit=200)
    parent = st.store.get_execution(info.parent_id) if info.parent_id else None
    live = {
        "execution_id": execution_id,
        "status": view.status,
        "last_seq": view.last_seq,
        "started_at": view.started_at,
        "ended_at": view.ended_at,
        "now": _now(),
        "order": list(view.steps),
        "steps": {
            s.name: {
                "status": s.status,
                "attempts": s.attempts,
                "visits": s.visits,
                "type": s.type,
                "items": None
                if s.items is None
                else {"total": s.items.total, "done": s.items.done, "failed": s.items.failed},
            }
            for s in view.steps.values()
        },
        "attempts": [a.as_json() for a in view.attempts],
    }
    return page(
        request,
        "execution.html",
        title=f"{view.playbook_name} · {execution_id[:8]}",
        view=view,
        graph=graph,
        children=children,
        parent=parent,
        live=live,
        now=live["now"],
    )


@router.get("/ui/executions/{execution_id}/panel", response_class=HTMLResponse)
def panel(execution_id: str, request: Request, step: str | None = None) -> Response:
    """The side panel of the execution page: one step's details, or (no `step`)
    the execution's result, error and inputs. Fetched by the page's script."""
    st = state_of(request)
    info = st.store.get_execution(execution_id)
    if info is None:
        return not_found(request, f"No execution '{execution_id}'.")
    loaded = st.engine.loaded(info.playbook_path, info.playbook_version)
    if step is not None and not loaded.playbook.has_step(step):
        return not_found(request, f"No step '{step}' in {info.playbook_path}.")
    view = execution_view(info, loaded.playbook, loaded.topology, st.store.read_events(info.id))
    children = st.store.list_executions(parent_id=execution_id, limit=200)
    context: dict[str, Any] = {"view": view, "now": _now()}
    if step is None:
        return page(request, "panel_execution.html", children=children, **context)
    return page(
        request,
        "panel_step.html",
        step=view.steps[step],
        children=step_children(children, step, view.steps[step]),
        attempts=[a for a in view.attempts if a.step == step],
        **context,
    )


# -- workers and schedules -------------------------------------------------------------


RUNNING_SHOWN = 200  # running jobs listed on the workers page


def pool_rows(remote: list[dict[str, Any]], local: dict[str, Any] | None) -> list[dict[str, Any]]:
    """One row per pool: its remote workers, and the server's own slots (which serve
    the default pool, as /api/pools counts them in `in_process`)."""
    rows = {
        str(p["pool"]): {**p, "in_process": 0, "local_running": 0, "remote_running": p["running"]}
        for p in remote
    }
    if local is not None:
        empty = {"pool": "default", "workers": 0, "alive": 0, "running": 0, "remote_running": 0}
        rec = rows.setdefault("default", {**empty, "in_process": 0, "local_running": 0})
        rec["in_process"] = local["concurrency"]
        rec["local_running"] = local["running"]
        rec["running"] = rec["remote_running"] + local["running"]
    return sorted(rows.values(), key=lambda r: str(r["pool"]))


@router.get("/ui/workers", response_class=HTMLResponse)
def workers(request: Request) -> Response:
    st = state_of(request)
    local = None
    if st.runner is not None:
        pool = st.runner.pool
        local = {
            "worker_id": pool.worker_id,
            "concurrency": pool.concurrency,
            "running": pool.running(),
        }
    return page(
        request,
        "workers.html",
        title="Workers",
        pools=pool_rows(st.workers.pools(), local),
        workers=st.workers.all(),
        local=local,
        queue=st.store.queue_stats(),
        running=st.store.running_jobs(RUNNING_SHOWN),
        running_shown=RUNNING_SHOWN,
        now=_now(),
    )


@router.get("/ui/schedules", response_class=HTMLResponse)
def schedules(request: Request) -> Response:
    from replaybook.server.routes.schedules import schedule_to_json

    st = state_of(request)
    now = datetime.now(UTC)
    rows = [schedule_to_json(s, now) for s in st.store.list_schedules()]
    return page(request, "schedules.html", title="Schedules", rows=rows, now=_now())


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@unknown.get("/ui/{rest:path}", response_class=HTMLResponse)
def no_such_page(rest: str, request: Request) -> Response:
    return not_found(request, f"There is no page '/ui/{rest}'.")
