"""The playbook catalog: register (versioned, idempotent on content), list, get."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from replaybook.errors import NotFound
from replaybook.server.app import state_of
from replaybook.server.wire import catalog_to_json

router = APIRouter(prefix="/api/catalog", tags=["catalog"])


class RegisterRequest(BaseModel):
    content: str = Field(description="The playbook's YAML text.")
    file: str | None = Field(None, description="File name shown in validation errors.")
    strict: bool = Field(False, description="Unknown keys are errors.")


@router.post("", status_code=201, summary="Register a playbook (a new version if changed)")
def register(body: RegisterRequest, request: Request) -> dict[str, Any]:
    from replaybook.playbook.load import load_playbook

    pb, warnings = load_playbook(body.content, body.file or "<request>", strict=body.strict)
    entry, new = state_of(request).store.register_playbook(pb.path, pb.name, pb.source)
    out = catalog_to_json(entry)
    out["new"] = new
    out["warnings"] = [w.as_dict() for w in warnings]
    return out


@router.get("", summary="The latest version of every registered playbook")
def list_playbooks(request: Request) -> list[dict[str, Any]]:
    return [catalog_to_json(e) for e in state_of(request).store.list_playbooks()]


@router.get("/{path:path}/versions", summary="Every version of one playbook")
def versions(path: str, request: Request) -> list[dict[str, Any]]:
    rows = state_of(request).store.playbook_versions(path)
    if not rows:
        raise NotFound(f"no playbook '{path}'")
    return [catalog_to_json(e) for e in rows]


@router.get("/{path:path}", summary="One playbook with its YAML (latest or `version`)")
def get_playbook(path: str, request: Request, version: int | None = None) -> dict[str, Any]:
    entry = state_of(request).store.get_playbook(path, version)
    if entry is None:
        which = f"'{path}'" + (f" version {version}" if version is not None else "")
        raise NotFound(f"no playbook {which}")
    return catalog_to_json(entry, content=True)
