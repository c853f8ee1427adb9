"""Pure schedule rules: masks, reading typed times, the next due instant across DST."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.services.schedule_rules import (
    ALL_DAYS,
    WEEKDAYS,
    TimeParseError,
    days_mask,
    mask_days,
    next_due,
    next_occurrence,
    parse_times,
)

MON, TUE, WED, THU, FRI, SAT, SUN = range(7)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- masks -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("days", "mask"),
    [
        ([], 0),
        ([MON], 0b0000001),
        ([SUN], 0b1000000),
        ([MON, TUE, WED, THU, FRI], WEEKDAYS),
        (range(7), ALL_DAYS),
        ([FRI, MON, FRI], 0b0010001),
    ],
)
def test_days_mask_round_trip(days: list[int], mask: int) -> None:
    assert days_mask(days) == mask
    assert mask_days(mask) == sorted(set(days))


@pytest.mark.parametrize("bad", [-1, 7])
def test_days_mask_rejects_out_of_range(bad: int) -> None:
    with pytest.raises(ValueError):
        days_mask([bad])


# --- parse_times -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("8:30", ["08:30"]),
        ("08:30", ["08:30"]),
        ("08.30", ["08:30"]),
        ("0830", ["08:30"]),
        ("830", ["08:30"]),
        ("1900", ["19:00"]),
        ("8", ["08:00"]),
        ("0", ["00:00"]),
        ("23:59", ["23:59"]),
        ("8 am", ["08:00"]),
        ("8am", ["08:00"]),
        ("8 a.m.", ["08:00"]),
        ("7:15pm", ["19:15"]),
        ("7:15 PM", ["19:15"]),
        ("12 am", ["00:00"]),
        ("12pm", ["12:00"]),
        ("8h30", ["08:30"]),
        ("kl. 8.30", ["08:30"]),
        ("  8:30.  ", ["08:30"]),
        ("08:30, 19:00", ["08:30", "19:00"]),
        ("19:00,08:30", ["08:30", "19:00"]),
        ("8:30 og 19", ["08:30", "19:00"]),
        ("8:30 and 7pm", ["08:30", "19:00"]),
        ("8 y 19:30", ["08:00", "19:30"]),
        ("8; 12; 16", ["08:00", "12:00", "16:00"]),
        ("8 12 16 20", ["08:00", "12:00", "16:00", "20:00"]),
        ("8:00, 8, 08.00", ["08:00"]),  # duplicates collapse
        ("8 am and 8 pm", ["08:00", "20:00"]),
    ],
)
def test_parse_times_reads(text: str, expected: list[str]) -> None:
    assert parse_times(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        (", ;", "empty"),
        ("og", "empty"),
        ("25:00", "invalid"),
        ("24", "invalid"),
        ("12:61", "invalid"),
        ("soon", "invalid"),
        ("-1", "invalid"),
        ("8.5.3", "invalid"),
        ("8.5", "invalid"),
        ("13 pm", "invalid"),
        ("0 am", "invalid"),
        ("am", "invalid"),
        ("8:30 and later", "invalid"),
        ("12345", "invalid"),
        ("8, 10, 12, 14, 16", "too_many"),
    ],
)
def test_parse_times_rejects(text: str, reason: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_times(text)
    assert str(info.value) == reason
    assert isinstance(info.value, TimeParseError) and info.value.reason == reason


# --- next_occurrence -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("local_time", "days", "tz", "after", "expected"),
    [
        # Plain daily, same day and next day.
        ("08:30", ALL_DAYS, "UTC", utc(2026, 5, 4, 7, 0), utc(2026, 5, 4, 8, 30)),
        ("08:30", ALL_DAYS, "UTC", utc(2026, 5, 4, 9, 0), utc(2026, 5, 5, 8, 30)),
        # Exactly at an occurrence: the next one.
        ("08:30", ALL_DAYS, "UTC", utc(2026, 5, 4, 8, 30), utc(2026, 5, 5, 8, 30)),
        ("08:30", ALL_DAYS, "UTC", utc(2026, 5, 4, 8, 29, 59), utc(2026, 5, 4, 8, 30)),
        # Copenhagen summer (UTC+2) and winter (UTC+1).
        ("08:30", ALL_DAYS, "Europe/Copenhagen", utc(2026, 7, 1), utc(2026, 7, 1, 6, 30)),
        ("08:30", ALL_DAYS, "Europe/Copenhagen", utc(2026, 1, 15), utc(2026, 1, 15, 7, 30)),
        # Weekday masks: Friday after the slot with WEEKDAYS -> Monday (2026-05-08 is a Friday).
        ("08:30", WEEKDAYS, "UTC", utc(2026, 5, 8, 12, 0), utc(2026, 5, 11, 8, 30)),
        ("08:30", WEEKDAYS, "UTC", utc(2026, 5, 9, 12, 0), utc(2026, 5, 11, 8, 30)),
        ("08:30", WEEKDAYS, "UTC", utc(2026, 5, 8, 8, 0), utc(2026, 5, 8, 8, 30)),
        ("08:30", 1 << SUN, "UTC", utc(2026, 5, 4), utc(2026, 5, 10, 8, 30)),
        # Only Monday, asked just after Monday's slot: a full week later.
        ("08:30", 1 << MON, "UTC", utc(2026, 5, 4, 8, 30), utc(2026, 5, 11, 8, 30)),
        # Asia/Kolkata, UTC+05:30: 08:30 local = 03:00 UTC.
        ("08:30", ALL_DAYS, "Asia/Kolkata", utc(2026, 5, 4), utc(2026, 5, 4, 3, 0)),
        ("08:30", ALL_DAYS, "Asia/Kolkata", utc(2026, 5, 4, 3, 0), utc(2026, 5, 5, 3, 0)),
        # Pacific/Auckland: Monday 08:00 local (NZST, UTC+12) is Sunday 20:00 UTC.
        ("08:00", 1 << MON, "Pacific/Auckland", utc(2026, 6, 1), utc(2026, 6, 7, 20, 0)),
        # ... and in NZDT (UTC+13, January): Monday 08:00 = Sunday 19:00 UTC.
        ("08:00", 1 << MON, "Pacific/Auckland", utc(2026, 1, 1), utc(2026, 1, 4, 19, 0)),
        # Late evening local is the same UTC date; early morning is the previous UTC date.
        ("23:30", 1 << SUN, "Pacific/Auckland", utc(2026, 6, 1), utc(2026, 6, 7, 11, 30)),
    ],
)
def test_next_occurrence(
    local_time: str, days: int, tz: str, after: datetime, expected: datetime
) -> None:
    got = next_occurrence(local_time, days, tz, after)
    assert got == expected
    assert got is not None and got.tzinfo is UTC


def test_next_occurrence_no_days() -> None:
    assert next_occurrence("08:30", 0, "UTC", utc(2026, 5, 4)) is None


def test_next_occurrence_needs_aware_after() -> None:
    with pytest.raises(ValueError):
        next_occurrence("08:30", ALL_DAYS, "UTC", datetime(2026, 5, 4))


@pytest.mark.parametrize("bad", ["8:30", "24:00", "08:60", "0830", ""])
def test_next_occurrence_rejects_bad_time(bad: str) -> None:
    with pytest.raises(ValueError):
        next_occurrence(bad, ALL_DAYS, "UTC", utc(2026, 5, 4))


def firings(local_time: str, days: int, tz: str, start: datetime, end: datetime) -> list[datetime]:
    """Every firing in (start, end], by chaining next_occurrence as the dispatcher does."""
    out = []
    when = next_occurrence(local_time, days, tz, start)
    while when is not None and when <= end:
        out.append(when)
        when = next_occurrence(local_time, days, tz, when)
    return out


# --- DST -------------------------------------------------------------------------------------


def test_copenhagen_spring_forward_gap_fires_once_at_0130_utc() -> None:
    # 2026-03-29: 02:00 CET -> 03:00 CEST, so 02:30 does not exist that night.
    got = firings(
        "02:30", ALL_DAYS, "Europe/Copenhagen", utc(2026, 3, 28, 12), utc(2026, 3, 30, 12)
    )
    assert got == [utc(2026, 3, 29, 1, 30), utc(2026, 3, 30, 0, 30)]
    # 01:30 UTC is read as 02:30 CET, shown on the wall clock as 03:30 CEST.
    assert got[0].astimezone(ZoneInfo("Europe/Copenhagen")).strftime("%H:%M") == "03:30"


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        (utc(2026, 3, 29, 0, 0), utc(2026, 3, 29, 1, 30)),  # 01:00 CET, before the jump
        (utc(2026, 3, 29, 1, 0), utc(2026, 3, 29, 1, 30)),  # the instant of the jump
        (utc(2026, 3, 29, 1, 15), utc(2026, 3, 29, 1, 30)),  # 03:15 CEST
        (utc(2026, 3, 29, 1, 30), utc(2026, 3, 30, 0, 30)),  # exactly at it: next day
    ],
)
def test_copenhagen_spring_forward_from_any_point_of_the_night(
    after: datetime, expected: datetime
) -> None:
    assert next_occurrence("02:30", ALL_DAYS, "Europe/Copenhagen", after) == expected


def test_copenhagen_fall_back_overlap_fires_once_at_first_occurrence() -> None:
    # 2026-10-25: 03:00 CEST -> 02:00 CET, so 02:30 happens twice (00:30 and 01:30 UTC).
    got = firings(
        "02:30", ALL_DAYS, "Europe/Copenhagen", utc(2026, 10, 24, 12), utc(2026, 10, 26, 12)
    )
    assert got == [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]
    # Asked during the second 02:00-03:00 hour: no second firing that night.
    after = utc(2026, 10, 25, 1, 0)
    assert next_occurrence("02:30", ALL_DAYS, "Europe/Copenhagen", after) == utc(
        2026, 10, 26, 1, 30
    )


@pytest.mark.parametrize(
    ("local_time", "start", "expected"),
    [
        # New York, 2026-03-08: 02:00 EST -> 03:00 EDT.
        (
            "08:00",
            utc(2026, 3, 7),
            [utc(2026, 3, 7, 13), utc(2026, 3, 8, 12), utc(2026, 3, 9, 12)],
        ),
        (
            "02:30",
            utc(2026, 3, 7),
            # the gap night: 02:30 EST = 07:30 UTC (03:30 EDT on the wall clock)
            [utc(2026, 3, 7, 7, 30), utc(2026, 3, 8, 7, 30), utc(2026, 3, 9, 6, 30)],
        ),
        # New York, 2026-11-01: 02:00 EDT -> 01:00 EST; 01:30 happens twice.
        (
            "01:30",
            utc(2026, 10, 31),
            [utc(2026, 10, 31, 5, 30), utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)],
        ),
        (
            "08:00",
            utc(2026, 10, 31),
            [utc(2026, 10, 31, 12), utc(2026, 11, 1, 13), utc(2026, 11, 2, 13)],
        ),
    ],
)
def test_new_york_dst_changes(local_time: str, start: datetime, expected: list[datetime]) -> None:
    end = start + timedelta(days=3)
    assert firings(local_time, ALL_DAYS, "America/New_York", start, end) == expected


@pytest.mark.parametrize(
    ("local_time", "start", "expected"),
    [
        # Auckland, 2026-04-05: 03:00 NZDT -> 02:00 NZST (autumn there); 02:30 happens twice.
        (
            "02:30",
            utc(2026, 4, 3, 12),
            # 02:30 NZDT (UTC+13) on the 4th and 5th (first occurrence), then NZST (UTC+12).
            [utc(2026, 4, 3, 13, 30), utc(2026, 4, 4, 13, 30), utc(2026, 4, 5, 14, 30)],
        ),
        (
            "08:00",
            utc(2026, 4, 3, 12),
            [utc(2026, 4, 3, 19), utc(2026, 4, 4, 20), utc(2026, 4, 5, 20)],
        ),
        # Auckland, 2026-09-27: 02:00 NZST -> 03:00 NZDT (spring there); 02:30 does not exist.
        (
            "02:30",
            utc(2026, 9, 25, 12),
            # 02:30 NZST = 14:30 UTC on the 26th (the gap night, read before the jump)
            [utc(2026, 9, 25, 14, 30), utc(2026, 9, 26, 14, 30), utc(2026, 9, 27, 13, 30)],
        ),
    ],
)
def test_auckland_dst_changes(local_time: str, start: datetime, expected: list[datetime]) -> None:
    end = start + timedelta(days=3)
    assert firings(local_time, ALL_DAYS, "Pacific/Auckland", start, end) == expected


@pytest.mark.parametrize(
    "tz", ["Europe/Copenhagen", "America/New_York", "Pacific/Auckland", "Asia/Kolkata", "UTC"]
)
@pytest.mark.parametrize("local_time", ["00:00", "00:30", "01:30", "02:00", "02:30", "23:30"])
def test_exactly_one_firing_per_local_day_through_a_year(tz: str, local_time: str) -> None:
    """Whatever DST does, a daily time fires once per local calendar day, never twice."""
    got = firings(local_time, ALL_DAYS, tz, utc(2025, 12, 30), utc(2027, 1, 3))
    zi = ZoneInfo(tz)
    dates = [when.astimezone(zi).date() for when in got]
    assert all(b - a == timedelta(days=1) for a, b in zip(dates, dates[1:], strict=False))
    assert dates[0] <= date(2026, 1, 1) and dates[-1] >= date(2026, 12, 31)
    assert all(b > a for a, b in zip(got, got[1:], strict=False))


def test_next_due_takes_the_earliest() -> None:
    after = utc(2026, 5, 8, 12, 0)  # Friday 14:00 in Copenhagen
    pairs = [("08:30", WEEKDAYS), ("19:00", 1 << TUE), ("10:00", 1 << SAT)]
    assert next_due(pairs, "Europe/Copenhagen", after) == utc(2026, 5, 9, 8, 0)
    assert next_due([("08:30", WEEKDAYS)], "Europe/Copenhagen", after) == utc(2026, 5, 11, 6, 30)


def test_next_due_with_nothing() -> None:
    assert next_due([], "UTC", utc(2026, 5, 4)) is None
    assert next_due([("08:30", 0)], "UTC", utc(2026, 5, 4)) is None
