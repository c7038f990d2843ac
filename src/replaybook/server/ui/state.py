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


class BadParameter(Exception):
    """A query parameter a page cannot use: answered as a 400 page naming it."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


def bad_request(request: Request, exc: BadParameter) -> HTMLResponse:
    return page(
        request,
        "error.html",
        status_code=400,
        title="Bad request",
        message=f"Parameter '{exc.name}': {exc}",
    )


def int_param(name: str, raw: str | None, default: int | None, lo: int, hi: int) -> int | None:
    """A whole number in lo..hi from the query string (absent or empty: `default`)."""
    if raw is None or raw.strip() == "":
        return default
    text = raw.strip()
    digits = text[1:] if text.startswith("-") else text
    if not (digits.isascii() and digits.isdigit()):
        raise BadParameter(name, f"{raw!r} is not a whole number from {lo:,} to {hi:,}.")
    value = int(text) if len(digits) <= 30 else None  # no 4,000-digit int parsing
    if value is None or not lo <= value <= hi:
        raise BadParameter(name, f"{text[:40]} is not from {lo:,} to {hi:,}.")
    return value


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
