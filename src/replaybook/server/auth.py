"""Bearer-token authentication: with a token configured, every request but `/health`
must carry `Authorization: Bearer <token>`.

A browser cannot add that header to a page load, so the UI's login page (open, like
its stylesheet) takes the token once and sets an HttpOnly, SameSite=Strict cookie
that the Guard accepts too. The cookie holds its expiry (SESSION_SECONDS after
signing in) signed with the token, not the token: it is worth as much to whoever
steals it until it expires, but does not reveal the token the CLI and workers use,
and changing the token signs every browser out.
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


# How long a browser stays signed in: a copied cookie stops working after this
# (changing the token signs every browser out at once).
SESSION_SECONDS = 12 * 3600


def ui_cookie_value(token: str, expires: int) -> str:
    """`EXPIRES.MAC`: when the session ends (epoch seconds), signed with the token."""
    message = f"replaybook ui session v2 {expires}".encode()
    return f"{expires}.{hmac.new(token.encode(), message, hashlib.sha256).hexdigest()}"


def ui_cookie_ok(token: str, value: bytes, now: float) -> bool:
    expires, sep, _ = value.partition(b".")
    if not sep or not expires.isdigit() or len(expires) > 12:
        return False
    want = ui_cookie_value(token, int(expires)).encode()
    return hmac.compare_digest(value, want) and int(expires) > now


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
