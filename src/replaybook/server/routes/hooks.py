"""`POST /api/hooks/{name}`: a webhook starts its playbook (see replaybook.webhooks).

This path is open to callers without the API token (auth.OPEN_PREFIXES): the hook's
own secret guards it, and nothing is started unless the request proves it."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.responses import Response

from replaybook.actions.jsonsafe import not_json
from replaybook.errors import NotFound
from replaybook.server.app import state_of
from replaybook.webhooks import HookDenied, verify

router = APIRouter(prefix="/api/hooks", tags=["hooks"])


@router.post(
    "/{name}",
    status_code=202,
    summary="Start the hook's playbook with the JSON body as payload (signed request)",
    responses={401: {"description": "Missing or wrong signature/token: nothing started"}},
)
async def trigger(name: str, request: Request) -> Response:
    import anyio.to_thread

    body = await request.body()
    headers = {k.lower(): v for k, v in request.headers.items()}
    out = await anyio.to_thread.run_sync(_trigger, request, name, body, headers)
    return out


def _trigger(request: Request, name: str, body: bytes, headers: dict[str, str]) -> Response:
    from replaybook.credentials import CredentialError, Credentials

    st = state_of(request)
    hook = st.store.get_hook(name)
    if hook is None:
        raise NotFound(f"no hook '{name}'")
    try:
        secret = Credentials(st.store).get(hook.secret_credential).fields["secret"]
    except (CredentialError, KeyError):
        return JSONResponse(
            {"detail": f"hook '{name}': its secret cannot be read on this server"},
            status_code=500,
        )
    try:
        verify(hook, str(secret), body, headers)
    except HookDenied as exc:
        st.metrics.hook_requests.labels("denied").inc()
        return JSONResponse({"detail": str(exc)}, status_code=401)
    payload = _payload(body)
    if payload is None:
        st.metrics.hook_requests.labels("bad_body").inc()
        return JSONResponse(
            {
                "detail": f"hook '{name}': the body must be a JSON object (or empty), "
                "without NaN or infinities"
            },
            status_code=400,
        )
    version = hook.playbook_version
    if version is None:
        entry = st.store.get_playbook(hook.playbook_path)
        if entry is None:
            raise NotFound(f"hook '{name}': playbook '{hook.playbook_path}' is not in the catalog")
        version = entry.version
    eid = st.engine.start(hook.playbook_path, version, payload)
    st.metrics.executions_started.inc()
    st.metrics.hook_requests.labels("started").inc()
    return JSONResponse(
        {"execution_id": eid, "playbook": hook.playbook_path, "version": version},
        status_code=202,
    )


def _payload(body: bytes) -> dict[str, Any] | None:
    if not body.strip():
        return {}
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(value, dict) or not_json(value):  # NaN, 1e400: not recordable
        return None
    return value
