"""Bearer-token authentication: with a token configured, every request but `/health`
must carry `Authorization: Bearer <token>`."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

OPEN_PATHS = frozenset({"/health"})
# Webhooks are called by other systems: each hook's own secret guards it.
OPEN_PREFIXES = ("/api/hooks/",)
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


class TokenRequired(ValueError):
    """Binding a non-loopback address without an API token."""


def check_bind(host: str, token: str | None) -> None:
    """Refuse to serve beyond this machine without a token."""
    if token:
        return
    if host not in LOOPBACK_HOSTS and not host.startswith("127."):
        raise TokenRequired(
            f"binding {host} (not loopback) requires an API token: set REPLAYBOOK_API_TOKEN"
        )


def token_middleware(
    token: str,
) -> Callable[[Request, Callable[[Request], Awaitable[Response]]], Awaitable[Response]]:
    expected = f"Bearer {token}".encode()

    async def check(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        path = request.url.path
        if path not in OPEN_PATHS and not path.startswith(OPEN_PREFIXES):
            given = request.headers.get("authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                return JSONResponse(
                    {"detail": "missing or wrong API token (Authorization: Bearer ...)"},
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
        return await call_next(request)

    return check
