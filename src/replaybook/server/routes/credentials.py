"""Stored credentials over the API: add or replace, list, show, delete. No response
ever carries a secret value: `show` masks them as the CLI does."""

from __future__ import annotations

import base64
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from replaybook.credentials import CredentialError, Credentials, KeyMismatch
from replaybook.errors import NotFound, UsageError
from replaybook.server.app import state_of

router = APIRouter(prefix="/api/credentials", tags=["credentials"])


class CredentialRequest(BaseModel):
    type: str = Field(description="postgres, http_bearer, http_basic, http_header, s3 or generic.")
    fields: dict[str, Any] = Field(description="The credential's fields (see the type).")


def _credentials(request: Request) -> Credentials:
    return Credentials(state_of(request).store)


def _shown(name: str, type_: str, fields: dict[str, Any], created: str, updated: str) -> Any:
    return {
        "name": name,
        "type": type_,
        "fields": fields,
        "created_at": created,
        "updated_at": updated,
    }


@router.get("", summary="Every credential: name, type and dates, never a value")
def list_credentials(request: Request) -> list[dict[str, Any]]:
    return [c.as_dict() for c in _credentials(request).list()]


@router.get("/{name}", summary="One credential, its secret values masked")
def show_credential(name: str, request: Request) -> Any:
    creds = _credentials(request)
    if creds.store.get_credential(name) is None:
        raise NotFound(f"no credential named '{name}'")
    try:
        cred = creds.get(name)
    except CredentialError as exc:  # a wrong key: the server's fault, not the caller's
        return JSONResponse({"detail": exc.message, "type": "credential"}, status_code=500)
    shown: dict[str, Any] = _shown(
        cred.name, cred.type, cred.masked(), cred.created_at, cred.updated_at
    )
    return shown


@router.get("/{name}/sealed", summary="A credential's ciphertext, for remote workers")
def sealed_credential(name: str, request: Request) -> dict[str, Any]:
    """What a `replaybook worker --server` reads to resolve `auth`: the encrypted
    bytes as stored. The worker decrypts them with its own key (the same
    REPLAYBOOK_SECRET_KEY as the server's), so no secret value crosses the API."""
    row = state_of(request).store.get_credential(name)
    if row is None:
        raise NotFound(f"no credential named '{name}'")
    return {
        "name": row.name,
        "type": row.type,
        "data": base64.b64encode(row.data).decode("ascii"),
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


@router.put("/{name}", summary="Add or replace a credential (encrypted at rest)")
def put_credential(name: str, body: CredentialRequest, request: Request) -> Any:
    try:
        cred = _credentials(request).put(name, body.type, body.fields)
    except KeyMismatch as exc:  # the server's key does not match its store's: conflict
        return JSONResponse({"detail": exc.message, "type": "credential_key"}, status_code=409)
    except CredentialError as exc:
        raise UsageError(exc.message) from None
    return {"name": cred.name, "type": cred.type, "fields": cred.masked()}


@router.delete("/{name}", summary="Delete a credential")
def delete_credential(name: str, request: Request) -> dict[str, Any]:
    if not _credentials(request).delete(name):
        raise NotFound(f"no credential named '{name}'")
    return {"name": name, "deleted": True}
