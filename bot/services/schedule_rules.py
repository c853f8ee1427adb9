"""Schedule rules: weekday masks, reading reminder times, and the next due instant.

Pure domain code: no database, no Telegram, no clock (``after`` is always passed in).
Weekday masks use bit 0 = Monday ... bit 6 = Sunday, as ``date.weekday()`` numbers days.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

ALL_DAYS = 0b1111111
WEEKDAYS = 0b0011111
MAX_TIMES_PER_DAY = 4


def days_mask(days: Iterable[int]) -> int:
    """Weekday numbers (0 = Monday ... 6 = Sunday) -> a mask; ValueError outside 0-6."""
    mask = 0
    for day in days:
        if not 0 <= day <= 6:
            raise ValueError(f"weekday out of range: {day!r}")
        mask |= 1 << day
    return mask


def mask_days(mask: int) -> list[int]:
    """A mask -> its weekday numbers, Monday first."""
    return [day for day in range(7) if mask & (1 << day)]


# ---------------------------------------------------------------------------------------------
# Reading times typed by a patient
# ---------------------------------------------------------------------------------------------


class TimeParseError(ValueError):
    """``str(error)`` (and ``error.reason``) is a machine reason: empty, invalid, too_many."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# Words that only join times ("8 and 19", "8 og 19", "8 y 19"), introduce one ("kl. 8",
# "klokken 8", "a las 8") or follow one ("18:30 h", "8 o'clock").
_FILLER_WORDS = {
    "and",
    "og",
    "y",
    "&",
    "+",
    "kl",
    "kl.",
    "klokken",
    "at",
    "@",
    "las",
    "la",
    "h",
    "h.",
    "hs",
    "hrs",
    "hora",
    "horas",
    "o'clock",
    "oclock",
}
# "a las 18:30" / "a la 1": the Spanish "a" must not be read as "a.m."
_SPANISH_AT = re.compile(r"\ba(?=\s+las?\b)", re.IGNORECASE)
_SPLIT = re.compile(r"[,;/\s]+")
_MERIDIEM = re.compile(r"^(?P<body>.*?)(?P<mer>[ap])\.?(?:m\.?)?$")
_CLOCK = re.compile(r"^(?P<h>\d{1,2})(?:[:.h](?P<m>\d{2}))?h?$")
_COMPACT = re.compile(r"^(?P<h>\d{1,2})(?P<m>\d{2})$")  # "0830", "830", "1900"


def _meridiem(word: str) -> str | None:
    """'am', 'a.m.', 'pm', 'p.m', 'a', 'p' -> 'a' / 'p'; anything else -> None."""
    match = _MERIDIEM.match(word)
    return match["mer"] if match and not match["body"] else None


def _read_one(token: str, mer: str | None) -> str:
    token = token.rstrip(".!")  # "at 8:30." typed as a sentence
    match = _CLOCK.match(token) or _COMPACT.match(token)
    if match is None:
        raise TimeParseError("invalid")
    hour, minute = int(match["h"]), int(match["m"] or 0)
    if minute > 59:
        raise TimeParseError("invalid")
    if mer is not None:
        if not 1 <= hour <= 12:
            raise TimeParseError("invalid")
        hour = hour % 12 + (12 if mer == "p" else 0)
    elif hour > 23:
        raise TimeParseError("invalid")
    return f"{hour:02d}:{minute:02d}"


def parse_times(text: str) -> list[str]:
    """Read one or more local times: '8:30', '08.30', '0830', '8', '8 am', '7:15pm',
    '08:30, 19:00', '8:30 og 19', '8 y 19:30'.

    Times are separated by commas, semicolons, slashes, spaces or 'and' / 'og' / 'y'.
    Returns sorted, de-duplicated 'HH:MM' strings. Raises ``TimeParseError`` (a ``ValueError``)
    whose message is a machine reason: ``empty`` (nothing typed), ``invalid`` (anything that is
    not a time of day: '25:00', '12:61', 'soon', '-1', '8.5.3', '13 pm'), ``too_many`` (more than
    four different times).
    """
    words = [w for w in _SPLIT.split(_SPANISH_AT.sub(" ", text.strip().lower())) if w]
    words = [w for w in words if w not in _FILLER_WORDS]
    if not words:
        raise TimeParseError("empty")
    found: set[str] = set()
    i = 0
    while i < len(words):
        word = words[i]
        if _meridiem(word) is not None:  # "am" with no number before it
            raise TimeParseError("invalid")
        mer = None
        if i + 1 < len(words) and (mer := _meridiem(words[i + 1])) is not None:
            i += 1  # "8 am", "7:15 p.m."
        else:
            match = _MERIDIEM.match(word)
            if match and match["body"] and match["body"][-1].isdigit():  # "8am", "7:15pm"
                word, mer = match["body"], match["mer"]
        found.add(_read_one(word, mer))
        i += 1
    if len(found) > MAX_TIMES_PER_DAY:
        raise TimeParseError("too_many")
    return sorted(found)


def parse_hhmm(local_time: str) -> time:
    """A stored 'HH:MM' -> ``time``; ValueError on anything else."""
    match = re.fullmatch(r"(\d{2}):(\d{2})", local_time)
    if match is None or int(match[1]) > 23 or int(match[2]) > 59:
        raise ValueError(f"not an HH:MM time: {local_time!r}")
    return time(int(match[1]), int(match[2]))


# ---------------------------------------------------------------------------------------------
# The next due instant
# ---------------------------------------------------------------------------------------------


@lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo:
    """A ``ZoneInfo`` (ZoneInfoNotFoundError, a KeyError, for an unknown name)."""
    return ZoneInfo(name)


def wall_clock_instant(day: date, at: time, tz: str | ZoneInfo) -> datetime:
    """The UTC instant at which the wall clock in ``tz`` shows ``at`` on ``day`` (fold=0).

    See ``next_occurrence`` for what this means across DST changes.
    """
    zi = tz if isinstance(tz, ZoneInfo) else zone(tz)
    return datetime.combine(day, at, tzinfo=zi).astimezone(UTC)


def next_occurrence(local_time: str, days: int, tz: str, after: datetime) -> datetime | None:
    """The first instant strictly after ``after`` at which the wall clock in ``tz`` shows
    ``local_time`` ('HH:MM') on one of ``days`` (a weekday mask), in UTC; None if days == 0.

    The weekday is that of the local date. DST rule (PEP 495 ``fold=0``, via ``zoneinfo``):

    - A local time that does not exist that day (the spring-forward gap, e.g. 02:30 in
      Europe/Copenhagen on 2026-03-29) fires once, read with the offset in force *before* the
      jump: 02:30 CET = 01:30 UTC, which the wall clock shows as 03:30 CEST. So it fires an
      hour (the size of the gap) later on the wall clock, never skipped, never doubled.
    - A local time that occurs twice (the fall-back overlap, e.g. 02:30 in Copenhagen on
      2026-10-25) fires once, at its first occurrence: 02:30 CEST = 00:30 UTC.

    ``after`` must be aware; an instant exactly at an occurrence gives the following one.
    """
    if after.tzinfo is None:
        raise ValueError("after must be an aware datetime")
    at = parse_hhmm(local_time)
    days &= ALL_DAYS
    if days == 0:
        return None
    zi = zone(tz)
    after = after.astimezone(UTC)
    start = after.astimezone(zi).date()
    # From the day before (a gap just before midnight can push a slot onto the next date)
    # through a full week ahead: any non-empty mask has a day in there.
    for offset in range(-1, 9):
        day = start + timedelta(days=offset)
        if not days & (1 << day.weekday()):
            continue
        instant = wall_clock_instant(day, at, zi)
        if instant > after:
            return instant
    raise AssertionError("unreachable: a non-empty mask recurs within a week")  # pragma: no cover


def next_due(schedules: Iterable[tuple[str, int]], tz: str, after: datetime) -> datetime | None:
    """The earliest next occurrence across several (local_time, days) pairs; None if none."""
    due = [
        when
        for local_time, days in schedules
        if (when := next_occurrence(local_time, days, tz, after)) is not None
    ]
    return min(due, default=None)
