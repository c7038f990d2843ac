"""The web UI: server-rendered pages (Jinja2) with one script and one stylesheet,
over the same store and engine as the API. Mounted by `create_app`; `/` leads to
the executions page. Pages: catalog, a playbook version (YAML, graph, start form),
executions (filters, paging), an execution (live graph, timeline, steps), workers,
schedules, and the login page when an API token is configured."""

from __future__ import annotations

from fastapi import FastAPI, Request, Response

from replaybook.server.ui.state import UiState


def install(app: FastAPI, token: str | None) -> None:
    from replaybook.server.ui import login, pages
    from replaybook.server.ui.state import BadParameter, bad_request

    app.state.ui = UiState.create(token)
    app.include_router(pages.router)
    app.include_router(login.router)
    app.include_router(pages.unknown)  # last: any other /ui/ path is a 404 page

    async def bad_parameter(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, BadParameter)
        return bad_request(request, exc)

    app.add_exception_handler(BadParameter, bad_parameter)
