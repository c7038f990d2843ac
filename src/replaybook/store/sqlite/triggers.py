"""The SQLite store's schedules and webhooks (a mixin of SQLiteStore, which provides
the connection, the transactions and the clock)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Final

from replaybook.errors import StoreError
from replaybook.store.base import (
    Hook,
    NewSchedule,
    QueueStats,
    RunningJob,
    Schedule,
    ScheduleSlot,
    iso_seconds,
)
from replaybook.store.sqlite.sql import QUERIES

_SCHEDULE: Final = {
    name: QUERIES[name]
    for name in (
        "insert_schedule",
        "get_schedule",
        "list_schedules",
        "set_schedule_paused",
        "delete_schedule",
        "delete_schedule_slots",
        "advance_schedule",
        "insert_schedule_slot",
        "set_slot_execution",
        "schedule_slots",
        "unstarted_slots",
        "put_hook",
        "get_hook",
        "list_hooks",
        "delete_hook",
    )
}


def _iso(instant: str) -> str:
    """Any ISO-8601 instant in the store's one text form, so text order is time order."""
    from replaybook.store.sqlite.store import iso_utc

    return iso_utc(iso_seconds(instant))


def _schedule(row: Sequence[Any]) -> Schedule:
    return Schedule(
        id=row[0],
        playbook_path=row[1],
        playbook_version=row[2],
        cron=row[3],
        timezone=row[4],
        payload=json.loads(row[5]),
        catch_up=row[6],
        paused=bool(row[7]),
        created_at=row[8],
        updated_at=row[9],
        last_slot=row[10],
    )


class TriggerStore:
    if TYPE_CHECKING:
        _clock: Callable[[], float]

        def _write(self) -> AbstractContextManager[sqlite3.Connection]: ...
        def _read(self) -> AbstractContextManager[sqlite3.Connection]: ...

    def _now(self) -> str:
        from replaybook.store.sqlite.store import iso_utc

        return iso_utc(self._clock())

    # -- schedules -------------------------------------------------------------------

    def create_schedule(self, schedule: NewSchedule) -> Schedule:
        params = {
            "id": schedule.id,
            "playbook_path": schedule.playbook_path,
            "playbook_version": schedule.playbook_version,
            "cron": schedule.cron,
            "timezone": schedule.timezone,
            "payload": json.dumps(dict(schedule.payload), ensure_ascii=False),
            "catch_up": schedule.catch_up,
            "now": self._now(),
        }
        try:
            with self._write() as conn:
                conn.execute(_SCHEDULE["insert_schedule"], params)
                row = conn.execute(_SCHEDULE["get_schedule"], params).fetchone()
        except StoreError as exc:
            if isinstance(exc.__cause__, sqlite3.IntegrityError):
                raise StoreError(f"schedule {schedule.id!r} already exists") from exc
            raise
        return _schedule(row)

    def get_schedule(self, schedule_id: str) -> Schedule | None:
        with self._read() as conn:
            row = conn.execute(_SCHEDULE["get_schedule"], {"id": schedule_id}).fetchone()
        return None if row is None else _schedule(row)

    def list_schedules(self) -> list[Schedule]:
        with self._read() as conn:
            return [_schedule(r) for r in conn.execute(_SCHEDULE["list_schedules"]).fetchall()]

    def set_schedule_paused(self, schedule_id: str, paused: bool) -> bool:
        params = {"id": schedule_id, "paused": int(paused), "now": self._now()}
        with self._write() as conn:
            return conn.execute(_SCHEDULE["set_schedule_paused"], params).rowcount > 0

    def delete_schedule(self, schedule_id: str) -> bool:
        with self._write() as conn:
            conn.execute(_SCHEDULE["delete_schedule_slots"], {"id": schedule_id})
            return conn.execute(_SCHEDULE["delete_schedule"], {"id": schedule_id}).rowcount > 0

    def claim_schedule_slot(self, schedule_id: str, slot: str, claimed_by: str) -> bool:
        params = {"id": schedule_id, "slot": _iso(slot), "now": self._now()}
        try:
            with self._write() as conn:
                if conn.execute(_SCHEDULE["advance_schedule"], params).rowcount == 0:
                    return False
                claim = {**params, "claimed_by": claimed_by}
                conn.execute(_SCHEDULE["insert_schedule_slot"], claim)
        except StoreError as exc:
            if isinstance(exc.__cause__, sqlite3.IntegrityError):
                return False  # claimed already (rolled back, cursor included)
            raise
        return True

    def skip_schedule_slots(self, schedule_id: str, up_to: str) -> None:
        with self._write() as conn:
            conn.execute(_SCHEDULE["advance_schedule"], {"id": schedule_id, "slot": _iso(up_to)})

    def set_slot_execution(self, schedule_id: str, slot: str, execution_id: str) -> None:
        params = {"id": schedule_id, "slot": _iso(slot), "execution_id": execution_id}
        with self._write() as conn:
            conn.execute(_SCHEDULE["set_slot_execution"], params)

    def schedule_slots(self, schedule_id: str, limit: int = 20) -> list[ScheduleSlot]:
        params = {"id": schedule_id, "limit": limit}
        with self._read() as conn:
            rows = conn.execute(_SCHEDULE["schedule_slots"], params).fetchall()
        return [ScheduleSlot(*row) for row in rows]

    def unstarted_slots(self, claimed_before: str) -> list[ScheduleSlot]:
        params = {"before": _iso(claimed_before)}
        with self._read() as conn:
            rows = conn.execute(_SCHEDULE["unstarted_slots"], params).fetchall()
        return [ScheduleSlot(*row) for row in rows]

    # -- webhooks --------------------------------------------------------------------

    def put_hook(
        self,
        name: str,
        playbook_path: str,
        playbook_version: int | None,
        auth: str,
        secret_credential: str,
    ) -> Hook:
        params = {
            "name": name,
            "playbook_path": playbook_path,
            "playbook_version": playbook_version,
            "auth": auth,
            "secret_credential": secret_credential,
            "now": self._now(),
        }
        with self._write() as conn:
            conn.execute(_SCHEDULE["put_hook"], params)
            row = conn.execute(_SCHEDULE["get_hook"], params).fetchone()
        return Hook(*row)

    def get_hook(self, name: str) -> Hook | None:
        with self._read() as conn:
            row = conn.execute(_SCHEDULE["get_hook"], {"name": name}).fetchone()
        return None if row is None else Hook(*row)

    def list_hooks(self) -> list[Hook]:
        with self._read() as conn:
            return [Hook(*row) for row in conn.execute(_SCHEDULE["list_hooks"]).fetchall()]

    def delete_hook(self, name: str) -> bool:
        with self._write() as conn:
            return conn.execute(_SCHEDULE["delete_hook"], {"name": name}).rowcount > 0


__all__ = ["TriggerStore"]


class StatsStore:
    """Counts for metrics (a mixin of SQLiteStore)."""

    if TYPE_CHECKING:
        _clock: Callable[[], float]

        def _read(self) -> AbstractContextManager[sqlite3.Connection]: ...

    def executions_by_status(self) -> dict[str, int]:
        with self._read() as conn:
            return dict(conn.execute(QUERIES["executions_by_status"]).fetchall())

    def queue_stats(self) -> QueueStats:
        with self._read() as conn:
            row = conn.execute(QUERIES["queue_stats"], {"now": self._clock()}).fetchone()
        return QueueStats(
            int(row[0]), int(row[1]), int(row[2]), int(row[3]), float(row[4]), float(row[5])
        )

    def running_jobs(self, limit: int = 200) -> list[RunningJob]:
        params = {"now": self._clock(), "limit": limit}
        with self._read() as conn:
            rows = conn.execute(QUERIES["running_jobs"], params).fetchall()
        return [
            RunningJob(int(r[0]), str(r[1]), str(r[2]), r[3], int(r[4]), str(r[5]), float(r[6]))
            for r in rows
        ]
