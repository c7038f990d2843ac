"""The Scheduler: on each tick, fire the due slots of every active schedule, each
exactly once however many schedulers share the store.

A tick reads the schedules, asks `slots.due_slots` what is due since each cursor,
claims each slot in the store (`claim_schedule_slot`: the cursor moves and the
(schedule, slot) row is inserted in one transaction, so one claimer wins) and starts
the winner's execution through the Engine with a deterministic execution id. A
scheduler that dies between claim and start leaves a claimed slot without an
execution; any scheduler's later tick starts it (the id makes a second start a
no-op), so a slot is neither lost nor run twice.

The clock is injected (`clock() -> aware datetime`), so tests drive it across
daylight-saving changes without waiting.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from replaybook.errors import ReplaybookError
from replaybook.scheduling.slots import DEFAULT_GRACE, ScheduleError, due_slots
from replaybook.store.base import Schedule, Store

log = logging.getLogger("replaybook.scheduler")

_SLOT_IDS = uuid.UUID("1f0c6d1e-5b8a-4c53-9a57-2f3e8f2b7c10")


class Starter(Protocol):
    """What starts an execution (Engine.start)."""

    def start(
        self,
        path: str,
        version: int,
        payload: Mapping[str, Any] | None = None,
        *,
        execution_id: str | None = None,
    ) -> str: ...


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str) -> datetime:
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def slot_execution_id(schedule_id: str, slot: datetime) -> str:
    """The execution id of a slot: the same for every scheduler that could start it."""
    return uuid.uuid5(_SLOT_IDS, f"{schedule_id}@{iso(slot)}").hex


@dataclass(frozen=True)
class Fired:
    schedule_id: str
    slot: datetime
    execution_id: str | None  # None when the start failed (see error)
    error: str | None = None


class Scheduler:
    def __init__(
        self,
        store: Store,
        engine: Starter,
        *,
        clock: Callable[[], datetime] = utc_now,
        scheduler_id: str | None = None,
        grace: timedelta = DEFAULT_GRACE,
        restart_after: timedelta = timedelta(minutes=2),
    ) -> None:
        self.store = store
        self.engine = engine
        self.clock = clock
        self.id = scheduler_id or f"scheduler-{uuid.uuid4().hex[:8]}"
        self.grace = grace
        self.restart_after = restart_after
        self._bad: set[tuple[str, str]] = set()  # (id, cron) reported as invalid
        self._retried: set[tuple[str, str]] = set()  # unstarted slots retried once here
        self.on_fired: list[Callable[[Fired], None]] = []

    def tick(self) -> list[Fired]:
        """Fire what is due now; returns the slots this scheduler fired."""
        now = self.clock()
        fired: list[Fired] = []
        for schedule in self.store.list_schedules():
            if not schedule.paused:
                fired += self._tick_one(schedule, now)
        fired += self._restart_unstarted(now)
        for done in fired:
            for listener in self.on_fired:
                listener(done)
        return fired

    def _tick_one(self, schedule: Schedule, now: datetime) -> list[Fired]:
        after = parse_iso(schedule.last_slot or schedule.created_at)
        try:
            due = due_slots(
                schedule.cron, schedule.timezone, after, now, schedule.catch_up, self.grace
            )
        except ScheduleError as exc:
            if (schedule.id, schedule.cron) not in self._bad:
                self._bad.add((schedule.id, schedule.cron))
                log.error("schedule %s cannot fire: %s", schedule.id, exc)
            return []
        if due.skip_to is not None:
            log.info("schedule %s: missed slots up to %s skipped", schedule.id, iso(due.skip_to))
            self.store.skip_schedule_slots(schedule.id, iso(due.skip_to))
        fired = []
        for slot in due.fire:
            if self.store.claim_schedule_slot(schedule.id, iso(slot), self.id):
                fired.append(self._start(schedule, slot))
        return fired

    def _start(self, schedule: Schedule, slot: datetime) -> Fired:
        execution_id = slot_execution_id(schedule.id, slot)
        try:
            if self.store.get_execution(execution_id) is None:
                version = schedule.playbook_version or self._latest(schedule.playbook_path)
                self.engine.start(
                    schedule.playbook_path,
                    version,
                    dict(schedule.payload),
                    execution_id=execution_id,
                )
        except ReplaybookError as exc:
            if self.store.get_execution(execution_id) is None:
                log.error("schedule %s slot %s: not started: %s", schedule.id, iso(slot), exc)
                return Fired(schedule.id, slot, None, str(exc))
        self.store.set_slot_execution(schedule.id, iso(slot), execution_id)
        log.info(
            "schedule %s slot %s started %s",
            schedule.id,
            iso(slot),
            execution_id,
            extra={"execution_id": execution_id},
        )
        return Fired(schedule.id, slot, execution_id)

    def _latest(self, path: str) -> int:
        from replaybook.errors import NotFound

        entry = self.store.get_playbook(path)
        if entry is None:
            raise NotFound(f"no playbook '{path}' in the catalog")
        return entry.version

    def _restart_unstarted(self, now: datetime) -> list[Fired]:
        """Start the slots whose claimer stopped before starting them (claimed more
        than `restart_after` ago, within the last day), once per scheduler."""
        fired = []
        oldest = now - timedelta(days=1)
        for pending in self.store.unstarted_slots(iso(now - self.restart_after)):
            slot = parse_iso(pending.slot)
            if parse_iso(pending.claimed_at) < oldest:
                continue
            key = (pending.schedule_id, pending.slot)
            schedule = self.store.get_schedule(pending.schedule_id)
            if schedule is not None and key not in self._retried:
                self._retried.add(key)  # a start that fails again is not retried each tick
                fired.append(self._start(schedule, slot))
        return fired

    def next_slot(self) -> datetime | None:
        """The earliest upcoming slot of any active schedule (for sleeping)."""
        from replaybook.scheduling.slots import slots_between

        now = self.clock()
        soonest: datetime | None = None
        for schedule in self.store.list_schedules():
            if schedule.paused:
                continue
            try:
                upcoming = next(
                    slots_between(schedule.cron, schedule.timezone, now, now + timedelta(days=400)),
                    None,
                )
            except ScheduleError:
                continue
            if upcoming is not None and (soonest is None or upcoming < soonest):
                soonest = upcoming
        return soonest

    def run(self, stop: threading.Event, max_wait: float = 30.0) -> None:
        """Tick until `stop` is set, sleeping until the next slot (at most
        `max_wait` seconds, so new schedules and other schedulers are noticed)."""
        while not stop.is_set():
            try:
                self.tick()
                upcoming = self.next_slot()
            except Exception:  # a broken store or engine must not stop the loop
                log.exception("scheduler tick failed")
                upcoming = None
            wait = max_wait
            if upcoming is not None:
                wait = min(max_wait, max(0.05, (upcoming - self.clock()).total_seconds()))
            stop.wait(wait)
