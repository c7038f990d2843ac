"""Due slots of cron schedules: pure, across the daylight-saving changes of
Europe/Berlin (2026-03-29 02:00 CET -> 03:00 CEST; 2026-10-25 03:00 CEST -> 02:00 CET)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from replaybook.scheduling.slots import (
    MAX_SLOTS,
    ScheduleError,
    check_catch_up,
    check_cron,
    due_slots,
    slots_between,
    zone,
)

BERLIN = "Europe/Berlin"


def utc(day: str, hm: str) -> datetime:
    return datetime.fromisoformat(f"{day}T{hm}:00+00:00")


def stepped(expr: str, start: datetime, end: datetime, step: timedelta) -> list[datetime]:
    """Every slot seen by a scheduler ticking every `step` from `start` to `end`,
    each window starting where the previous ended (as the store's cursor does)."""
    seen: list[datetime] = []
    cursor, now = start, start
    while now < end:
        now = min(now + step, end)
        due = due_slots(expr, BERLIN, cursor, now, "all")
        seen += due.fire
        cursor = now
    return seen


def local(slots: list[datetime]) -> list[str]:
    tz = zone(BERLIN)
    return [s.astimezone(tz).strftime("%m-%d %H:%M%z") for s in slots]


@pytest.mark.parametrize("step", [timedelta(minutes=1), timedelta(minutes=7), timedelta(hours=1)])
def test_daily_time_in_the_spring_gap_fires_once_after_it(step: timedelta) -> None:
    got = stepped("30 2 * * *", utc("2026-03-27", "12:00"), utc("2026-03-31", "12:00"), step)
    assert local(got) == [
        "03-28 02:30+0100",
        "03-29 03:00+0200",  # 02:30 does not exist that day: right after the gap
        "03-30 02:30+0200",
        "03-31 02:30+0200",
    ]


@pytest.mark.parametrize("step", [timedelta(minutes=1), timedelta(minutes=13), timedelta(hours=2)])
def test_daily_time_in_the_repeated_autumn_hour_fires_once(step: timedelta) -> None:
    got = stepped("30 2 * * *", utc("2026-10-23", "12:00"), utc("2026-10-27", "12:00"), step)
    assert local(got) == [
        "10-24 02:30+0200",
        "10-25 02:30+0200",  # not again at 02:30+0100, an hour later
        "10-26 02:30+0100",
        "10-27 02:30+0100",
    ]


def test_daily_six_am_is_six_am_local_on_both_sides_of_each_change() -> None:
    spring = stepped("0 6 * * *", utc("2026-03-27", "12:00"), utc("2026-03-31", "12:00"),
                     timedelta(hours=1))  # fmt: skip
    assert local(spring) == [
        "03-28 06:00+0100", "03-29 06:00+0200", "03-30 06:00+0200", "03-31 06:00+0200",
    ]  # fmt: skip
    autumn = stepped("0 6 * * *", utc("2026-10-23", "12:00"), utc("2026-10-27", "12:00"),
                     timedelta(hours=1))  # fmt: skip
    assert local(autumn) == [
        "10-24 06:00+0200", "10-25 06:00+0100", "10-26 06:00+0100", "10-27 06:00+0100",
    ]  # fmt: skip


def test_hourly_follows_real_hours_across_both_changes() -> None:
    spring = list(slots_between("0 * * * *", BERLIN, utc("2026-03-28", "22:30"),
                                utc("2026-03-29", "03:30")))  # fmt: skip
    # 23:00 CET ... 01:00 CET, then 03:00 CEST: the 02:00 hour does not exist.
    assert local(spring) == [
        "03-29 00:00+0100", "03-29 01:00+0100", "03-29 03:00+0200", "03-29 04:00+0200",
        "03-29 05:00+0200",
    ]  # fmt: skip
    autumn = list(slots_between("0 * * * *", BERLIN, utc("2026-10-24", "22:30"),
                                utc("2026-10-25", "03:30")))  # fmt: skip
    # Every real hour, both passes of 02:00 included; 5 slots in 5 hours.
    assert local(autumn) == [
        "10-25 01:00+0200", "10-25 02:00+0200", "10-25 02:00+0100", "10-25 03:00+0100",
        "10-25 04:00+0100",
    ]  # fmt: skip


def test_a_window_starting_inside_the_repeated_hour_does_not_go_back() -> None:
    # 01:10 UTC is 02:10 CET, the second pass; the 02:30 slot fired at 00:30 UTC.
    got = list(slots_between("30 2 * * *", BERLIN, utc("2026-10-25", "01:10"),
                             utc("2026-10-25", "23:00")))  # fmt: skip
    assert got == []


def test_catch_up_policies_after_downtime() -> None:
    after = utc("2026-05-01", "00:00")
    now = utc("2026-05-04", "07:00")  # down for three days; 06:00 slots missed
    daily = "0 6 * * *"
    assert local(due_slots(daily, BERLIN, after, now, "all").fire) == [
        "05-01 06:00+0200", "05-02 06:00+0200", "05-03 06:00+0200", "05-04 06:00+0200",
    ]  # fmt: skip
    last = due_slots(daily, BERLIN, after, now, "last")
    assert local(last.fire) == ["05-04 06:00+0200"] and last.skip_to is None
    none = due_slots(daily, BERLIN, after, now, "none")
    assert none.fire == [] and none.skip_to is not None
    assert local([none.skip_to]) == ["05-04 06:00+0200"]


def test_on_time_slots_fire_under_every_policy() -> None:
    after = utc("2026-05-04", "03:00")
    now = utc("2026-05-04", "04:00") + timedelta(seconds=20)  # 06:00 CEST, 20 s late
    for policy in ("none", "last", "all"):
        assert local(due_slots("0 6 * * *", BERLIN, after, now, policy).fire) == [
            "05-04 06:00+0200"
        ]


def test_nothing_due_and_window_bounds() -> None:
    after = utc("2026-05-04", "04:00")  # exactly the 06:00 CEST slot: excluded
    assert due_slots("0 6 * * *", BERLIN, after, after + timedelta(hours=1)).fire == []
    assert due_slots("0 6 * * *", BERLIN, after - timedelta(seconds=1), after).fire == [after]


def test_catch_up_all_is_bounded() -> None:
    due = due_slots("* * * * *", "UTC", utc("2026-01-01", "00:00"), utc("2026-01-05", "00:00"),
                    "all")  # fmt: skip
    assert len(due.fire) == MAX_SLOTS


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: check_cron("61 * * * *"), "bad cron expression '61 * * * *'"),
        (lambda: check_cron("every day"), "bad cron expression"),
        (lambda: check_cron("* * * * * *"), "it has 6 fields, cron has 5"),
        (lambda: check_cron("0 0 6 * * *"), "it has 6 fields, cron has 5"),
        (lambda: check_cron("0 6 * *"), "it has 4 fields, cron has 5"),
        (lambda: zone("Mars/Olympus"), "unknown time zone 'Mars/Olympus'"),
        (lambda: check_catch_up("some"), "bad catch_up 'some'"),
    ],
)
def test_bad_input_is_a_clear_error(call: object, message: str) -> None:
    with pytest.raises(ScheduleError, match=message.replace("*", r"\*")):
        call()  # type: ignore[operator]


def test_naive_instants_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        list(slots_between("* * * * *", "UTC", datetime(2026, 1, 1), datetime.now(UTC)))
