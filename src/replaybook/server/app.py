"""The FastAPI application: `create_app(store_or_url, ...)`.

The server keeps no state of its own beyond caches: every request is answered from
the store, through an Engine whose cached execution states re-read the log when
another process wrote first (SeqConflict) or when a job's snapshot is taken. So any
number of servers can share one database, and an execution progresses whichever of
them its workers and clients talk to.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.responses import Response

from replaybook.errors import (
    NotFound,
    PlaybookInvalid,
    StaleLease,
    TemplateError,
    UsageError,
)
from replaybook.runtime.coordinator import LocalCoordinator
from replaybook.runtime.engine import Engine
from replaybook.server.metrics import Metrics
from replaybook.server.sse import EventHub
from replaybook.server.workers import WorkerRegistry
from replaybook.store.base import Store


@dataclass
class ServerState:
    store: Store
    engine: Engine
    coordinator: LocalCoordinator
    hub: EventHub
    metrics: Metrics
    workers: WorkerRegistry
    poll_seconds: float
    max_lease_wait: float
    runner: Any = None  # an EmbeddedRunner-like object for in-process worker slots
    background: Any = None  # schedules and retention (server/background.py)


def state_of(request: Request) -> ServerState:
    st: ServerState = request.app.state.rb
    return st


def create_app(
    store: Store | str | None = None,
    *,
    token: str | None = None,
    workers: int = 0,
    data_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
    poll_seconds: float = 0.5,
    max_lease_wait: float = 10.0,
    close_store: bool | None = None,
    scheduler: bool | None = None,
    retention: timedelta | None = None,
) -> FastAPI:
    """The API over `store` (a Store or a URL). `workers` > 0 runs that many worker
    slots in this process (default pool). `token` turns authentication on."""
    from replaybook.runtime.embedded import catalog_loader
    from replaybook.store import default_data_dir, open_store

    owns_store = isinstance(store, str) or store is None
    the_store: Store = open_store(store) if isinstance(store, str) or store is None else store
    engine = Engine(the_store, catalog_loader(the_store), env=env)
    coordinator = LocalCoordinator(engine, shared=True, poll_seconds=poll_seconds)
    state = ServerState(
        store=the_store,
        engine=engine,
        coordinator=coordinator,
        hub=EventHub(),
        metrics=Metrics(),
        workers=WorkerRegistry(),
        poll_seconds=poll_seconds,
        max_lease_wait=max_lease_wait,
    )
    engine.add_listener(lambda eid, _written: state.hub.notify(eid))
    coordinator.add_change_listener(lambda eid, _jobs: state.hub.notify(eid))
    coordinator.on_finished(_forgetting(engine))
    if workers > 0:
        state.runner = _in_process_workers(state, workers, data_dir or default_data_dir())
    state.background = _background(state, data_dir, scheduler, retention)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        import anyio.to_thread

        # Long polls (leases, waits) hold a thread each: allow many of them.
        anyio.to_thread.current_default_thread_limiter().total_tokens = 200
        if state.runner is not None:
            state.runner.start()
        state.background.start()
        try:
            yield
        finally:
            state.background.stop()
            coordinator.close()
            if state.runner is not None:
                state.runner.stop()
            if close_store if close_store is not None else owns_store:
                the_store.close()

    app = FastAPI(
        title="Replaybook",
        version=_version(),
        description="Run declarative YAML playbooks, durably: catalog, executions, "
        "live events, and the queue remote workers lease from.",
        lifespan=lifespan,
    )
    app.state.rb = state
    _install_middleware(app, state, token)
    _install_errors(app, state)
    from replaybook.server.routes import catalog, credentials, executions, queue, system

    for module in (system, catalog, executions, queue, credentials):
        app.include_router(module.router)
    _include_triggers(app)
    from replaybook.server import ui

    ui.install(app, token)
    return app


def _install_middleware(app: FastAPI, state: ServerState, token: str | None) -> None:
    from replaybook.server.asgi import Guard

    # Outermost: nothing is served (or measured) unauthenticated.
    app.add_middleware(Guard, metrics=state.metrics, token=token)


def _install_errors(app: FastAPI, state: ServerState) -> None:
    def handler(status: int, kind: str) -> Callable[[Request, Exception], Awaitable[Response]]:
        async def handle(request: Request, exc: Exception) -> Response:
            if isinstance(exc, StaleLease):
                state.metrics.stale_completions.inc()
            return JSONResponse({"detail": str(exc), "type": kind}, status_code=status)

        return handle

    async def invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PlaybookInvalid)
        return JSONResponse(
            {
                "detail": "invalid playbook",
                "type": "invalid",
                "status": "invalid",
                "errors": [p.as_dict() for p in exc.problems],
            },
            status_code=422,
        )

    app.add_exception_handler(NotFound, handler(404, "not_found"))
    app.add_exception_handler(StaleLease, handler(409, "stale_lease"))
    app.add_exception_handler(TemplateError, handler(422, "template"))
    app.add_exception_handler(UsageError, handler(400, "usage"))
    app.add_exception_handler(PlaybookInvalid, invalid)


# Finished executions whose folded state the engine keeps cached (a resume or a late
# reader may still want it); older ones are dropped, so a long-running server's
# memory does not grow with every execution it has seen.
KEEP_FINISHED = 256


def _forgetting(engine: Engine) -> Callable[[str], None]:
    finished: deque[str] = deque()
    lock = threading.Lock()

    def on_finished(execution_id: str) -> None:
        with lock:
            finished.append(execution_id)
            old = finished.popleft() if len(finished) > KEEP_FINISHED else None
        if old is not None:
            engine.forget(old)

    return on_finished


class _InProcessWorkers:
    """`--workers N`: N worker slots in the server process, default pool."""

    def __init__(self, state: ServerState, slots: int, data_dir: Path) -> None:
        from replaybook.runtime.children import ChildRunner
        from replaybook.runtime.embedded import make_services
        from replaybook.runtime.worker import WorkerPool

        # Remote workers may run this execution's steps too: share the files.
        self.services = make_services(slots, shared_files=True)
        self.pool = WorkerPool(
            state.coordinator,
            concurrency=slots,
            data_dir=data_dir,
            services=self.services,
            pools=[None],
        )
        children = ChildRunner(state.engine, self.pool.release_slot, self.pool.take_slot)
        self.pool.services["children"] = children
        self.pool.services.update(_credentials(state.store))

    def start(self) -> None:
        self.pool.start()

    def stop(self) -> None:
        from replaybook.runtime.embedded import close_services

        self.pool.drain(timeout=30)
        close_services(self.services)


def _in_process_workers(state: ServerState, slots: int, data_dir: Path) -> _InProcessWorkers:
    return _InProcessWorkers(state, slots, data_dir)


def _include_triggers(app: FastAPI) -> None:
    from replaybook.server.routes import hooks, schedules

    app.include_router(schedules.router)
    app.include_router(hooks.router)
    from replaybook.server import observe

    observe.install(app.state.rb)


def _background(
    state: ServerState, data_dir: Path | None, scheduler: bool | None, retention: Any
) -> Any:
    """Schedules and retention; see server/background.py for the settings."""
    from replaybook.server.background import Background, retention_from_env
    from replaybook.store import default_data_dir

    if scheduler is None:
        scheduler = os.environ.get("REPLAYBOOK_SCHEDULER", "1") != "0"
    return Background(
        state.store,
        state.engine,
        data_dir or default_data_dir(),
        scheduler=scheduler,
        retention=retention if retention is not None else retention_from_env(),
        metrics=state.metrics,
    )


def _credentials(store: Store) -> dict[str, Any]:
    """The credentials service of the worker, when this build has one."""
    try:
        from replaybook.credentials import Credentials
    except ImportError:
        return {}
    return {"credentials": Credentials(store)}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("replaybook")
    except PackageNotFoundError:
        return "0"


def default_token() -> str | None:
    return os.environ.get("REPLAYBOOK_API_TOKEN") or None
