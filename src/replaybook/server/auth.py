"""Bearer-token authentication: with a token configured, every request but `/health`
must carry `Authorization: Bearer <token>`."""

from __future__ import annotations

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
