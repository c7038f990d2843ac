"""Bearer-token authentication: with a token configured, every request but `/health`
must carry `Authorization: Bearer <token>`.

A browser cannot add that header to a page load, so the UI's login page (open, like
its stylesheet) takes the token once and sets an HttpOnly, SameSite=Strict cookie
that the Guard accepts too. The cookie holds an HMAC of the token, not the token:
it is worth as much to whoever steals it, but does not reveal the token the CLI and
workers use, and changing the token signs every browser out.
"""

from __future__ import annotations

import hashlib
import hmac

OPEN_PATHS = frozenset({"/health", "/ui/login"})
# Webhooks are called by other systems: each hook's own secret guards it.
OPEN_PREFIXES = ("/api/hooks/", "/ui/static/")
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
UI_COOKIE = "replaybook_session"


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


def ui_cookie_value(token: str) -> str:
    return hmac.new(token.encode(), b"replaybook ui session v1", hashlib.sha256).hexdigest()


def cookie_from_header(header: bytes, name: str) -> bytes | None:
    """The value of cookie `name` in a Cookie header, if there."""
    for part in header.split(b";"):
        key, sep, value = part.strip().partition(b"=")
        if sep and key.decode("latin-1") == name:
            return value.strip().strip(b'"')
    return None


def is_page(path: str) -> bool:
    """UI pages answer an unauthenticated browser with the login page, not a 401."""
    return path == "/" or path == "/ui" or path.startswith("/ui/")
