"""The server's outermost layer, as plain ASGI (cheaper per request than Starlette's
BaseHTTPMiddleware, which matters on the queue's hot path): the bearer-token (or UI
session cookie) check and the request metrics."""

from __future__ import annotations

import hmac
import json
import time
from typing import Any
from urllib.parse import quote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from replaybook.server.auth import (
    OPEN_PATHS,
    OPEN_PREFIXES,
    UI_COOKIE,
    cookie_from_header,
    is_page,
    ui_cookie_ok,
)
from replaybook.server.metrics import Metrics

_UNAUTHORIZED = json.dumps(
    {"detail": "missing or wrong API token (Authorization: Bearer ...)"}
).encode()


class Guard:
    def __init__(self, app: ASGIApp, metrics: Metrics, token: str | None) -> None:
        self.app = app
        self.metrics = metrics
        self.expected = f"Bearer {token}".encode() if token else None
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if (
            self.expected is not None
            and path not in OPEN_PATHS
            and not path.startswith(OPEN_PREFIXES)
        ):
            headers = dict(scope["headers"])
            given = headers.get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected) and not self._signed_in(headers):
                if is_page(path) and scope["method"] in ("GET", "HEAD"):
                    query = scope.get("query_string", b"").decode("latin-1")
                    await _send_to_login(send, path + ("?" + query if query else ""))
                else:
                    await _send_401(send)
                return
        t0 = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route: Any = scope.get("route")
            name = getattr(route, "path", "unmatched")
            self.metrics.requests.labels(scope["method"], name, str(status)).inc()
            self.metrics.latency.labels(name).observe(time.perf_counter() - t0)

    def _signed_in(self, headers: dict[bytes, bytes]) -> bool:
        """The UI's session cookie (set by /ui/login) stands in for the header."""
        assert self.token is not None
        value = cookie_from_header(headers.get(b"cookie", b""), UI_COOKIE)
        return value is not None and ui_cookie_ok(self.token, value, time.time())


async def _send_to_login(send: Send, path: str) -> None:
    location = "/ui/login?next=" + quote(path, safe="")
    await send(
        {
            "type": "http.response.start",
            "status": 303,
            "headers": [(b"location", location.encode()), (b"content-length", b"0")],
        }
    )
    await send({"type": "http.response.body", "body": b""})


async def _send_401(send: Send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(_UNAUTHORIZED)).encode()),
                (b"www-authenticate", b"Bearer"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": _UNAUTHORIZED})
