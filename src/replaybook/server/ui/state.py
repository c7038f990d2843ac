"""What the UI keeps for the life of the app: templates, static files, layouts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse

from replaybook.server.ui.render import Static, environment
from replaybook.server.ui.views import GraphCache


@dataclass
class UiState:
    templates: jinja2.Environment
    static: Static
    graphs: GraphCache
    token: str | None

    @classmethod
    def create(cls, token: str | None) -> UiState:
        static = Static()
        return cls(environment(static), static, GraphCache(), token)


def ui_of(request: Request) -> UiState:
    ui: UiState = request.app.state.ui
    return ui


def page(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    ui = ui_of(request)
    html = ui.templates.get_template(template).render(
        request_path=request.url.path, auth_on=ui.token is not None, **context
    )
    return HTMLResponse(html, status_code=status_code, headers=_NO_STORE)


def not_found(request: Request, message: str) -> HTMLResponse:
    return page(request, "error.html", status_code=404, title="Not found", message=message)


# Pages show live data and may show results: never cached, never framed elsewhere.
_NO_STORE = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'self'; style-src 'self'; img-src 'self' data:; "
        "script-src 'self'; frame-ancestors 'none'"
    ),
}
