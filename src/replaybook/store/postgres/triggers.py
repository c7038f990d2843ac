"""The PostgreSQL store's schedules and webhooks (a mixin of PostgresStore, which
provides the connection pool and the clock)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

import psycopg

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
from replaybook.store.postgres.migrate import Connection
from replaybook.store.postgres.sql import QUERIES

_Q: Final = {
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
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def _at(seconds: float) -> datetime:
    return _EPOCH + timedelta(microseconds=round(seconds * 1_000_000))


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

        def _connection(self) -> AbstractContextManager[Connection]: ...

    def _now(self) -> datetime:
        return _at(self._clock())

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
            with self._connection() as conn:
                row = conn.execute(_Q["insert_schedule"], params).fetchone()
        except StoreError as exc:
            if isinstance(exc.__cause__, psycopg.errors.UniqueViolation):
                raise StoreError(f"schedule {schedule.id!r} already exists") from exc
            raise
        assert row is not None
        return _schedule(row)

    def get_schedule(self, schedule_id: str) -> Schedule | None:
        with self._connection() as conn:
            row = conn.execute(_Q["get_schedule"], {"id": schedule_id}).fetchone()
        return None if row is None else _schedule(row)

    def list_schedules(self) -> list[Schedule]:
        with self._connection() as conn:
            return [_schedule(r) for r in conn.execute(_Q["list_schedules"]).fetchall()]

    def set_schedule_paused(self, schedule_id: str, paused: bool) -> bool:
        params = {"id": schedule_id, "paused": paused, "now": self._now()}
        with self._connection() as conn:
            return conn.execute(_Q["set_schedule_paused"], params).rowcount > 0

    def delete_schedule(self, schedule_id: str) -> bool:
        with self._connection() as conn, conn.transaction():
            conn.execute(_Q["delete_schedule_slots"], {"id": schedule_id})
            return conn.execute(_Q["delete_schedule"], {"id": schedule_id}).rowcount > 0

    def claim_schedule_slot(self, schedule_id: str, slot: str, claimed_by: str) -> bool:
        params = {
            "id": schedule_id,
            "slot": _at(iso_seconds(slot)),
            "now": self._now(),
            "claimed_by": claimed_by,
        }
        with self._connection() as conn:
            with conn.transaction() as tx:
                if conn.execute(_Q["advance_schedule"], params).rowcount == 0:
                    return False
                if conn.execute(_Q["insert_schedule_slot"], params).rowcount == 0:
                    raise psycopg.Rollback(tx)  # claimed already: the cursor stays
                return True
            return False

    def skip_schedule_slots(self, schedule_id: str, up_to: str) -> None:
        params = {"id": schedule_id, "slot": _at(iso_seconds(up_to))}
        with self._connection() as conn:
            conn.execute(_Q["advance_schedule"], params)

    def set_slot_execution(self, schedule_id: str, slot: str, execution_id: str) -> None:
        params = {"id": schedule_id, "slot": _at(iso_seconds(slot)), "execution_id": execution_id}
        with self._connection() as conn:
            conn.execute(_Q["set_slot_execution"], params)

    def schedule_slots(self, schedule_id: str, limit: int = 20) -> list[ScheduleSlot]:
        with self._connection() as conn:
            rows = conn.execute(_Q["schedule_slots"], {"id": schedule_id, "limit": limit})
            return [ScheduleSlot(*row) for row in rows.fetchall()]

    def unstarted_slots(self, claimed_before: str) -> list[ScheduleSlot]:
        params = {"before": _at(iso_seconds(claimed_before))}
        with self._connection() as conn:
            return [ScheduleSlot(*r) for r in conn.execute(_Q["unstarted_slots"], params)]

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
        with self._connection() as conn:
            row = conn.execute(_Q["put_hook"], params).fetchone()
        assert row is not None
        return Hook(*row)

    def get_hook(self, name: str) -> Hook | None:
        with self._connection() as conn:
            row = conn.execute(_Q["get_hook"], {"name": name}).fetchone()
        return None if row is None else Hook(*row)

    def list_hooks(self) -> list[Hook]:
        with self._connection() as conn:
            return [Hook(*row) for row in conn.execute(_Q["list_hooks"]).fetchall()]

    def delete_hook(self, name: str) -> bool:
        with self._connection() as conn:
            return conn.execute(_Q["delete_hook"], {"name": name}).rowcount > 0


class StatsStore:
    """Counts for metrics (a mixin of PostgresStore)."""

    if TYPE_CHECKING:
        _clock: Callable[[], float]

        def _connection(self) -> AbstractContextManager[Connection]: ...

    def executions_by_status(self) -> dict[str, int]:
        with self._connection() as conn:
            return {r[0]: int(r[1]) for r in conn.execute(QUERIES["executions_by_status"])}

    def queue_stats(self) -> QueueStats:
        with self._connection() as conn:
            row = conn.execute(QUERIES["queue_stats"], {"now": _at(self._clock())}).fetchone()
        assert row is not None
        return QueueStats(
            int(row[0]), int(row[1]), int(row[2]), int(row[3]), float(row[4]), float(row[5])
        )

    def running_jobs(self, limit: int = 200) -> list[RunningJob]:
        params = {"now": _at(self._clock()), "limit": limit}
        with self._connection() as conn:
            rows = conn.execute(QUERIES["running_jobs"], params).fetchall()
        return [
            RunningJob(int(r[0]), str(r[1]), str(r[2]), r[3], int(r[4]), str(r[5]), float(r[6]))
            for r in rows
        ]
