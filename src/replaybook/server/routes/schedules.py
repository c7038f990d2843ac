"""Cron schedules over HTTP: the same operations as `replaybook schedule`."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from replaybook.actions.jsonsafe import not_json
from replaybook.errors import NotFound, UsageError
from replaybook.scheduling.scheduler import iso
from replaybook.scheduling.slots import (
    ScheduleError,
    check_catch_up,
    check_cron,
    slots_between,
    zone,
)
from replaybook.server.app import state_of
from replaybook.store.base import NewSchedule, Schedule

router = APIRouter(prefix="/api/schedules", tags=["schedules"])


class ScheduleRequest(BaseModel):
    playbook: str = Field(description="Catalog path of the playbook.")
    cron: str = Field(description='Cron expression, e.g. "0 6 * * *".')
    timezone: str = Field("UTC", description="IANA time zone, e.g. Europe/Berlin.")
    payload: dict[str, Any] = Field(default_factory=dict, description="Merged over workload.")
    catch_up: str = Field("last", description="Missed slots after downtime: none|last|all.")
    id: str | None = Field(None, description="Schedule id (generated if absent).")
    version: int | None = Field(None, description="Pin a version (default: the latest).")


def schedule_to_json(schedule: Schedule, now: datetime | None = None) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    upcoming = None
    if not schedule.paused:
        try:
            found = next(
                slots_between(schedule.cron, schedule.timezone, now, now + timedelta(days=400)),
                None,
            )
            upcoming = None if found is None else iso(found)
        except ScheduleError:
            upcoming = None
    return {
        "id": schedule.id,
        "playbook_path": schedule.playbook_path,
        "playbook_version": schedule.playbook_version,
        "cron": schedule.cron,
        "timezone": schedule.timezone,
        "payload": dict(schedule.payload),
        "catch_up": schedule.catch_up,
        "paused": schedule.paused,
        "created_at": schedule.created_at,
        "updated_at": schedule.updated_at,
        "last_slot": schedule.last_slot,
        "next_slot": upcoming,
    }


def _get(request: Request, schedule_id: str) -> Schedule:
    schedule = state_of(request).store.get_schedule(schedule_id)
    if schedule is None:
        raise NotFound(f"no schedule '{schedule_id}'")
    return schedule


@router.post("", status_code=201, summary="Add a cron schedule for a registered playbook")
def add(body: ScheduleRequest, request: Request) -> dict[str, Any]:
    store = state_of(request).store
    try:
        check_cron(body.cron)
        zone(body.timezone)
        check_catch_up(body.catch_up)
    except ScheduleError as exc:
        raise UsageError(str(exc)) from None
    bad = not_json(body.payload)
    if bad:  # every slot would start an execution that cannot record it
        raise UsageError(f"payload is not JSON data: {bad} (NaN and infinities have no JSON form)")
    if store.get_playbook(body.playbook, body.version) is None:
        which = f"'{body.playbook}'" + (f" version {body.version}" if body.version else "")
        raise NotFound(f"playbook {which} is not in the catalog")
    made = store.create_schedule(
        NewSchedule(
            id=body.id or uuid.uuid4().hex[:12],
            playbook_path=body.playbook,
            cron=body.cron,
            timezone=body.timezone,
            payload=body.payload,
            catch_up=body.catch_up,
            playbook_version=body.version,
        )
    )
    return schedule_to_json(made)


@router.get("", summary="Every schedule, oldest first")
def list_schedules(request: Request) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    return [schedule_to_json(s, now) for s in state_of(request).store.list_schedules()]


@router.get("/{schedule_id}", summary="One schedule and its latest fired slots")
def get_schedule(schedule_id: str, request: Request) -> dict[str, Any]:
    out = schedule_to_json(_get(request, schedule_id))
    out["fired"] = [
        {"slot": s.slot, "execution_id": s.execution_id, "claimed_by": s.claimed_by}
        for s in state_of(request).store.schedule_slots(schedule_id)
    ]
    return out


@router.post("/{schedule_id}/pause", summary="Pause: its slots do not fire")
def pause(schedule_id: str, request: Request) -> dict[str, Any]:
    _get(request, schedule_id)
    state_of(request).store.set_schedule_paused(schedule_id, True)
    return schedule_to_json(_get(request, schedule_id))


@router.post("/{schedule_id}/resume", summary="Resume (the paused slots are not caught up)")
def resume(schedule_id: str, request: Request) -> dict[str, Any]:
    _get(request, schedule_id)
    state_of(request).store.set_schedule_paused(schedule_id, False)
    return schedule_to_json(_get(request, schedule_id))


@router.delete("/{schedule_id}", summary="Delete a schedule (not its executions)")
def delete(schedule_id: str, request: Request) -> dict[str, Any]:
    if not state_of(request).store.delete_schedule(schedule_id):
        raise NotFound(f"no schedule '{schedule_id}'")
    return {"id": schedule_id, "deleted": True}
