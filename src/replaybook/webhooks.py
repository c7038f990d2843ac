"""Webhook triggers: `POST /api/hooks/{name}` starts a configured playbook with the
request's JSON body as payload, when the request proves it knows the hook's secret.

A hook is a store row (name, playbook, auth) plus its secret, kept as a stored
credential `hook.<name>` (type generic, encrypted like every credential). Two ways to
prove the secret:

- `hmac` (default): header `X-Replaybook-Signature: sha256=<hex>` (or GitHub's
  `X-Hub-Signature-256`), the HMAC-SHA256 of the raw body keyed with the secret;
- `token`: header `X-Replaybook-Token: <secret>` (or `Authorization: Bearer <secret>`).

Comparisons are constant-time; a failed check starts nothing, and no message names
the secret or the signature expected.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from typing import Any, Final

from replaybook.errors import ReplaybookError
from replaybook.store.base import Hook, Store

AUTH_KINDS: Final = ("hmac", "token")
SIGNATURE_HEADERS: Final = ("x-replaybook-signature", "x-hub-signature-256")
TOKEN_HEADER: Final = "x-replaybook-token"
_NAME: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}\Z")


class HookError(ReplaybookError):
    """A bad hook definition (name, auth kind, playbook)."""


class HookDenied(ReplaybookError):
    """A request that does not prove the hook's secret (HTTP 401)."""


def credential_name(hook_name: str) -> str:
    return f"hook.{hook_name}"


def check_hook_name(name: str) -> str:
    if not _NAME.match(name or ""):
        raise HookError(f"hook name {name!r}: use letters, digits, '_', '-' and '.' (at most 64)")
    return name


def sign(secret: str, body: bytes) -> str:
    """The signature header value a sender puts on `body`."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def add_hook(
    store: Store,
    credentials: Any,
    name: str,
    playbook_path: str,
    *,
    secret: str,
    auth: str = "hmac",
    playbook_version: int | None = None,
) -> Hook:
    """Create or replace hook `name` (its secret stored encrypted)."""
    check_hook_name(name)
    if auth not in AUTH_KINDS:
        raise HookError(f"hook auth {auth!r}: use {' or '.join(AUTH_KINDS)}")
    if len(secret) < 16:
        raise HookError(f"hook '{name}': the secret must be at least 16 characters")
    credentials.put(credential_name(name), "generic", {"secret": secret})
    return store.put_hook(name, playbook_path, playbook_version, auth, credential_name(name))


def delete_hook(store: Store, credentials: Any, name: str) -> bool:
    found = store.delete_hook(name)
    if found:
        credentials.delete(credential_name(name))
    return found


def verify(hook: Hook, secret: str, body: bytes, headers: Mapping[str, str]) -> None:
    """Raise HookDenied unless the request carries proof of `secret`. `headers` are
    looked up lower-case."""
    if hook.auth == "token":
        given = headers.get(TOKEN_HEADER)
        if given is None:
            bearer = headers.get("authorization", "")
            given = bearer[7:] if bearer.lower().startswith("bearer ") else None
        if given is None or not hmac.compare_digest(given.encode(), secret.encode()):
            raise HookDenied(f"hook '{hook.name}': missing or wrong token ({TOKEN_HEADER})")
        return
    given = next((headers[h] for h in SIGNATURE_HEADERS if h in headers), None)
    if given is None or not hmac.compare_digest(given.encode(), sign(secret, body).encode()):
        raise HookDenied(
            f"hook '{hook.name}': missing or wrong signature "
            "(X-Replaybook-Signature: sha256=<HMAC-SHA256 of the body>)"
        )
