"""`replaybook schedule ...`: cron schedules of registered playbooks.

    schedule add PATH --cron "0 6 * * *" --tz Europe/Berlin [--payload JSON|@file]
                 [--catch-up none|last|all] [--id ID] [--version N]
    schedule list                  id, playbook, cron, zone, next slot, last run
    schedule show ID               the schedule and its latest fired slots
    schedule pause ID | resume ID  (resuming does not catch up the paused slots)
    schedule delete ID

PATH is a playbook file (registered first, like `register`) or a catalog path.
Schedules live in the store; `replaybook server` fires them (see
replaybook.scheduling), each slot once however many servers share the store.
"""

from __future__ import annotations

import json
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from replaybook.errors import UsageError

app = typer.Typer(no_args_is_help=True, help="Cron schedules of playbooks.")

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")]
DbOpt = Annotated[
    str | None, typer.Option("--db", help="Store URL (sqlite:///path); default $REPLAYBOOK_DB.")
]


def _emit(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")


def _store(db: str | None) -> Any:
    from replaybook.store import open_store

    return open_store(db)


def _next_slot(cron: str, tz: str, now: datetime) -> str | None:
    from replaybook.scheduling.scheduler import iso
    from replaybook.scheduling.slots import ScheduleError, slots_between

    try:
        upcoming = next(slots_between(cron, tz, now, now + timedelta(days=400)), None)
    except ScheduleError:
        return None
    return None if upcoming is None else iso(upcoming)


def _as_dict(schedule: Any, now: datetime) -> dict[str, Any]:
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
        "last_slot": schedule.last_slot,
        "next_slot": None if schedule.paused else _next_slot(schedule.cron, schedule.timezone, now),
    }


def _require(store: Any, schedule_id: str) -> Any:
    schedule = store.get_schedule(schedule_id)
    if schedule is None:
        raise UsageError(f"no schedule '{schedule_id}'")
    return schedule


def _playbook_path(store: Any, path: str, version: int | None) -> str:
    """A file is registered (and its catalog path used); else a catalog path."""
    file = Path(path)
    if file.is_file():
        from replaybook.playbook.load import load_file

        pb, _ = load_file(file)  # PlaybookInvalid: reported with lines, exit 2
        entry, _new = store.register_playbook(pb.path, pb.name, pb.source)
        if version is not None and version != entry.version:
            raise UsageError(f"--version {version}: {file} is version {entry.version}")
        return str(entry.path)
    if store.get_playbook(path, version) is None:
        what = f"'{path}'" + (f" version {version}" if version is not None else "")
        raise UsageError(f"no playbook file or catalog playbook {what}")
    return path


@app.command("add")
def add(
    path: Annotated[str, typer.Argument(help="A playbook file or a catalog path.")],
    cron: Annotated[str, typer.Option("--cron", help='Cron expression, e.g. "0 6 * * *".')],
    tz: Annotated[str, typer.Option("--tz", help="IANA time zone, e.g. Europe/Berlin.")] = "UTC",
    payload: Annotated[
        str | None, typer.Option("--payload", help="JSON object (or @file) merged over workload.")
    ] = None,
    catch_up: Annotated[
        str, typer.Option("--catch-up", help="Missed slots after downtime: none, last or all.")
    ] = "last",
    schedule_id: Annotated[str | None, typer.Option("--id", help="Schedule id.")] = None,
    version: Annotated[
        int | None, typer.Option("--version", help="Pin a version (default: the latest).")
    ] = None,
    as_json: JsonOpt = False,
    db: DbOpt = None,
) -> None:
    """Add a cron schedule for a playbook."""
    from replaybook.cli import parse_payload
    from replaybook.scheduling.slots import ScheduleError, check_catch_up, check_cron, zone
    from replaybook.store.base import NewSchedule

    try:
        check_cron(cron)
        zone(tz)
        check_catch_up(catch_up)
    except ScheduleError as exc:
        raise UsageError(str(exc)) from None
    data = parse_payload(payload, None)
    store = _store(db)
    try:
        catalog_path = _playbook_path(store, path, version)
        new = NewSchedule(
            id=schedule_id or uuid.uuid4().hex[:12],
            playbook_path=catalog_path,
            cron=cron,
            timezone=tz,
            payload=data,
            catch_up=catch_up,
            playbook_version=version,
        )
        schedule = store.create_schedule(new)
        out = _as_dict(schedule, datetime.now(UTC))
    finally:
        store.close()
    if as_json:
        _emit(out)
    else:
        print(f"schedule {out['id']}: {catalog_path} at '{cron}' ({tz}); next {out['next_slot']}")


@app.command("list")
def list_(as_json: JsonOpt = False, db: DbOpt = None) -> None:
    """List schedules."""
    store = _store(db)
    try:
        now = datetime.now(UTC)
        rows = [_as_dict(s, now) for s in store.list_schedules()]
    finally:
        store.close()
    if as_json:
        _emit(rows)
        return
    from replaybook.commands.tables import print_table

    table = [
        (
            r["id"],
            r["playbook_path"],
            r["cron"],
            r["timezone"],
            r["catch_up"],
            "paused" if r["paused"] else "active",
            r["next_slot"] or "-",
            r["last_slot"] or "-",
        )
        for r in rows
    ]
    headers = ("id", "playbook", "cron", "tz", "catch up", "state", "next slot", "last slot")
    print_table(headers, table, keep=("state",))


@app.command("show")
def show(schedule_id: str, as_json: JsonOpt = False, db: DbOpt = None) -> None:
    """A schedule and its latest fired slots."""
    store = _store(db)
    try:
        out = _as_dict(_require(store, schedule_id), datetime.now(UTC))
        out["fired"] = [
            {"slot": s.slot, "execution_id": s.execution_id, "claimed_by": s.claimed_by}
            for s in store.schedule_slots(schedule_id)
        ]
    finally:
        store.close()
    if as_json:
        _emit(out)
        return
    for key, value in out.items():
        if key != "fired":
            print(f"{key}: {json.dumps(value) if isinstance(value, dict) else value}")
    for fired in out["fired"]:
        print(f"  {fired['slot']}  {fired['execution_id'] or '(not started)'}")


def _set_paused(schedule_id: str, paused: bool, as_json: bool, db: str | None) -> None:
    store = _store(db)
    try:
        if not store.set_schedule_paused(schedule_id, paused):
            raise UsageError(f"no schedule '{schedule_id}'")
        out = _as_dict(store.get_schedule(schedule_id), datetime.now(UTC))
    finally:
        store.close()
    if as_json:
        _emit(out)
    else:
        print(f"schedule {schedule_id} {'paused' if paused else 'resumed'}")


@app.command("pause")
def pause(schedule_id: str, as_json: JsonOpt = False, db: DbOpt = None) -> None:
    """Pause a schedule: its slots do not fire."""
    _set_paused(schedule_id, True, as_json, db)


@app.command("resume")
def resume(schedule_id: str, as_json: JsonOpt = False, db: DbOpt = None) -> None:
    """Resume a paused schedule (the slots of the pause are not caught up)."""
    _set_paused(schedule_id, False, as_json, db)


@app.command("delete")
def delete(schedule_id: str, as_json: JsonOpt = False, db: DbOpt = None) -> None:
    """Delete a schedule and its history of fired slots (not their executions)."""
    store = _store(db)
    try:
        if not store.delete_schedule(schedule_id):
            raise UsageError(f"no schedule '{schedule_id}'")
    finally:
        store.close()
    if as_json:
        _emit({"id": schedule_id, "deleted": True})
    else:
        print(f"schedule {schedule_id} deleted")
