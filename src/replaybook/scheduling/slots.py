"""Which slots of a cron schedule are due: pure functions of the expression, the time
zone and two instants (no clock, no store).

A slot is an instant (UTC). Slots come from the cron expression read in the
schedule's time zone (cronsim), with cron's daylight-saving rules:
- spring forward: a time that does not exist that day (02:30 in Berlin on the last
  Sunday of March) fires at the first instant after the gap (03:00 CEST), once;
- fall back: a time that happens twice (02:30 on the last Sunday of October) fires on
  its first occurrence only; expressions with a wildcard hour (`*/15 * * * *`) fire
  at each real instant, both passes of the repeated hour included.

cronsim started inside the repeated hour can hand back a time before its start, so
every result is checked to be after the window's start; that makes the window's
result independent of where a previous window ended.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

CATCH_UP: Final = ("none", "last", "all")
# A slot this late is "missed" (downtime): catch_up decides whether it still fires.
DEFAULT_GRACE: Final = timedelta(seconds=60)
# `catch_up: all` after a long downtime fires at most this many slots per tick.
MAX_SLOTS: Final = 1000


class ScheduleError(ValueError):
    """A bad cron expression, time zone or catch-up policy."""


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(
            f"unknown time zone {name!r}: use an IANA name such as 'Europe/Berlin' or 'UTC'"
        ) from None


def check_cron(expr: str) -> str:
    """The expression, checked (5 fields: minute hour day month weekday)."""
    fields = expr.split()
    if len(fields) != 5:
        # cronsim also reads a sixth field as seconds: "* * * * * *" would fire every
        # second, which nobody writing a playbook schedule means.
        raise ScheduleError(
            f"bad cron expression {expr!r}: it has {len(fields)} fields, cron has 5"
            " (minute hour day-of-month month day-of-week)"
        )
    try:
        CronSim(expr, datetime(2000, 1, 1, tzinfo=UTC))
    except CronSimError as exc:
        raise ScheduleError(f"bad cron expression {expr!r}: {exc}") from None
    return expr


def check_catch_up(policy: str) -> str:
    if policy not in CATCH_UP:
        raise ScheduleError(f"bad catch_up {policy!r}: use one of {', '.join(CATCH_UP)}")
    return policy


def slots_between(expr: str, tz: str, after: datetime, until: datetime) -> Iterator[datetime]:
    """The slots in (after, until], in order, as aware UTC datetimes."""
    if after.tzinfo is None or until.tzinfo is None:
        raise ValueError("instants must be timezone-aware")
    last = after
    for local in CronSim(expr, after.astimezone(zone(tz))):
        slot = local.astimezone(UTC)
        if slot > until:
            return
        if slot > last:  # also drops what cronsim gives back from inside a fold
            last = slot
            yield slot


@dataclass(frozen=True)
class Due:
    fire: list[datetime]  # the slots to fire now, in order
    skip_to: datetime | None  # move the cursor here without firing (missed slots)


def due_slots(
    expr: str,
    tz: str,
    after: datetime,
    now: datetime,
    catch_up: str = "last",
    grace: timedelta = DEFAULT_GRACE,
) -> Due:
    """What a scheduler does at `now` for a schedule whose cursor is at `after`.

    Slots later than `now - grace` are on time and always fire. Missed slots (older)
    follow the policy: `all` fires every one (at most MAX_SLOTS), `last` fires the
    latest of them (when no slot is on time), `none` fires none."""
    check_catch_up(catch_up)
    every: list[datetime] = []
    on_time: list[datetime] = []
    latest_missed: datetime | None = None
    for slot in slots_between(expr, tz, after, now):
        if catch_up == "all":
            every.append(slot)
            if len(every) >= MAX_SLOTS:
                break  # the cursor stops here; the next tick goes on
        elif now - slot <= grace:
            on_time.append(slot)
        else:
            latest_missed = slot
    if catch_up == "all":
        return Due(every, None)
    if on_time:
        return Due(on_time, None)
    if latest_missed is None:
        return Due([], None)
    if catch_up == "last":
        return Due([latest_missed], None)
    return Due([], latest_missed)
