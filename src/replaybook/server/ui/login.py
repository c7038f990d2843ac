"""Signing in to the UI when the server has an API token: a browser cannot send
`Authorization: Bearer` on a page load, so the login page takes the token once and
sets a cookie that the Guard accepts in its place (see server/auth.py)."""

from __future__ import annotations

import hmac
import time
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from replaybook.server.auth import SESSION_SECONDS, UI_COOKIE, ui_cookie_value
from replaybook.server.ui.state import page, ui_of

router = APIRouter(include_in_schema=False)



def _safe_next(target: str | None) -> str:
    """Only a path on this server (no scheme, no host, no `//`) is followed."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/ui/executions"
    return target


@router.get("/ui/login", response_class=HTMLResponse)
def login_form(request: Request, next: str | None = None) -> Response:
    if ui_of(request).token is None:
        return RedirectResponse(_safe_next(next), status_code=303)
    return page(request, "login.html", title="Sign in", next=_safe_next(next), error=None)


@router.post("/ui/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    token = ui_of(request).token
    # A plain form post: parsed here rather than pulling in a multipart library.
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    given = (form.get("token") or [""])[0].strip()
    target = _safe_next((form.get("next") or [""])[0])
    if token is None:
        return RedirectResponse(target, status_code=303)
    if not hmac.compare_digest(given.encode(), token.encode()):
        return page(
            request,
            "login.html",
            status_code=401,
            title="Sign in",
            next=target,
            error="That token is not the server's API token.",
        )
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        UI_COOKIE,
        ui_cookie_value(token, int(time.time()) + SESSION_SECONDS),
        max_age=SESSION_SECONDS,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.get("/ui/logout")
def logout(request: Request) -> Response:
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(UI_COOKIE, path="/", httponly=True, samesite="strict")
    return response
