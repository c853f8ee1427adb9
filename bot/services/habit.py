"""The habit over weeks: silence, the come-back offer, weekly reminders, and the way back.

A prompt that expires (or is replaced by the next one) without any answer makes the patient
"silent" since its slot (``users.silent_since``, ``users.silent_prompts``). Any press or
message ends the silence (``note_response``). The dispatcher asks ``decide`` what a due slot
becomes::

    silent < absence_after (3 days, and 3 prompts)   -> the regular prompt
    then, once                                         -> the come-back offer   (state "away")
    while away, before weekly_after more days (7)      -> nothing (the offer stays live)
    then every weekly_after days                       -> a weekly reminder     (state "weekly")

Every change of state is a ``HabitEvent`` row (away / weekly / returned), which /progress and
the therapist digest read (``absences``, ``absence_summary``). Services never commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import object_session

from bot.db.models import CheckIn, HabitEvent, Schedule, User

AWAY = "away"
WEEKLY = "weekly"
RETURNED = "returned"
# The come-back offer's choices (also the HabitEvent detail of a return); "message" is any
# other press or message.
CHOICES = ("keep", "fewer", "later", "pause")
MIN_SILENT_PROMPTS = 3
# A day is 23 or 25 hours across a DST change: thresholds allow for it.
_SLACK = timedelta(hours=1)
# Without a reminder on the next day, the next-morning question goes out at this local time.
NEXT_DAY_DEFAULT = time(9, 0)


class SlotKind:
    PROMPT = "prompt"  # the regular prompt
    COMEBACK = "comeback"  # the come-back offer replaces it
    WEEKLY = "weekly"  # a weekly reminder (the prompt with a gentle note)
    QUIET = "quiet"  # nothing is sent; the slot is recorded as missed


@dataclass(frozen=True)
class Decision:
    kind: str
    absence: str | None  # the state after this slot
    event: str | None = None  # a HabitEvent kind to record


def decide(
    user: Any,
    now: datetime,
    *,
    absence_after: timedelta = timedelta(days=3),
    weekly_after: timedelta = timedelta(days=7),
) -> Decision:
    """What a due slot of ``user`` (any row with the users' habit fields) becomes now."""
    state = user.absence
    if state is None:
        silent = user.silent_since
        if (
            silent is not None
            and (user.silent_prompts or 0) >= MIN_SILENT_PROMPTS
            and now - silent >= absence_after - _SLACK
        ):
            return Decision(SlotKind.COMEBACK, AWAY, AWAY)
        return Decision(SlotKind.PROMPT, None)
    last = user.absence_prompted_at
    if last is None or now - last >= weekly_after - _SLACK:
        return Decision(SlotKind.WEEKLY, WEEKLY, WEEKLY if state == AWAY else None)
    return Decision(SlotKind.QUIET, state)


def note_response(user: User | None, now: datetime, how: str = "message") -> str | None:
    """Any press or message: the silence ends, an absence ends (recorded). Returns the absence
    state the patient was in (None if none). Only writes when something changes, so the
    everyday press costs nothing extra."""
    if user is None:
        return None
    was = user.absence
    if user.silent_since is not None or user.silent_prompts:
        user.silent_since = None
        user.silent_prompts = 0
    if was is not None:
        user.absence = None
        user.absence_prompted_at = None
        session = object_session(user)
        if session is not None:
            session.add(HabitEvent(user_id=user.id, kind=RETURNED, detail=how, at=now))
    return was


def record_event(session: AsyncSession, user_id: int, kind: str, at: datetime, detail=None) -> None:
    session.add(HabitEvent(user_id=user_id, kind=kind, detail=detail, at=at))


@dataclass(frozen=True)
class Absence:
    """A stretch away: from the come-back offer to the return (None: still away)."""

    start: datetime
    end: datetime | None
    weekly: bool  # reminders dropped to once a week during it
    how: str | None  # how they came back (keep, fewer, later, pause, message)


def _absences(events: list[HabitEvent]) -> list[Absence]:
    out: list[Absence] = []
    start: datetime | None = None
    weekly = False
    for e in events:
        if e.kind == AWAY and start is None:
            start, weekly = e.at, False
        elif e.kind == WEEKLY:
            if start is None:
                start = e.at
            weekly = True
        elif e.kind == RETURNED and start is not None:
            out.append(Absence(start, e.at, weekly, e.detail))
            start = None
    if start is not None:
        out.append(Absence(start, None, weekly, None))
    return out


async def absences(
    session: AsyncSession, user_id: int, since: datetime | None = None
) -> list[Absence]:
    """The patient's absences, oldest first (those still open, or ended after ``since``)."""
    events = list(
        await session.scalars(
            select(HabitEvent).where(HabitEvent.user_id == user_id).order_by(HabitEvent.at)
        )
    )
    found = _absences(events)
    if since is not None:
        found = [a for a in found if a.end is None or a.end >= since]
    return found


async def absence_summary(
    session: AsyncSession, user_ids: list[int], since: datetime
) -> dict[int, list[Absence]]:
    """For the therapist digest: per patient, the absences open or ended since ``since``."""
    if not user_ids:
        return {}
    events = list(
        await session.scalars(
            select(HabitEvent)
            .where(HabitEvent.user_id.in_(user_ids))
            .order_by(HabitEvent.user_id, HabitEvent.at)
        )
    )
    per_user: dict[int, list[HabitEvent]] = {}
    for e in events:
        per_user.setdefault(e.user_id, []).append(e)
    out = {}
    for uid, evs in per_user.items():
        found = [a for a in _absences(evs) if a.end is None or a.end >= since]
        if found:
            out[uid] = found
    return out


# --------------------------------------------------------------------------- next morning


async def next_morning_at(session: AsyncSession, user: User, done_at: datetime) -> datetime:
    """When to ask about a session done at ``done_at``: the patient's first reminder time on
    the next local day (so the question comes with, or before, that day's prompt), or 09:00
    when no reminder falls on that day."""
    tz = ZoneInfo(user.timezone or "UTC")
    tomorrow = done_at.astimezone(tz).date() + timedelta(days=1)
    times = [
        s.local_time
        for s in await session.scalars(select(Schedule).where(Schedule.user_id == user.id))
        if s.days & (1 << tomorrow.weekday())
    ]
    at = NEXT_DAY_DEFAULT
    if times:
        hh, mm = min(times).split(":")
        at = time(int(hh), int(mm))
    return datetime.combine(tomorrow, at, tz)


async def only_latest_of_day(session: AsyncSession, checkin: CheckIn, user: User) -> None:
    """The next-morning question is about the latest session of a day: an earlier session of
    the same local day no longer waits for one."""
    tz = ZoneInfo(user.timezone or "UTC")
    day = checkin.completed_at.astimezone(tz).date()
    others = await session.scalars(
        select(CheckIn).where(
            CheckIn.user_id == user.id,
            CheckIn.id != checkin.id,
            CheckIn.next_day_due_at.is_not(None),
        )
    )
    for other in others:
        done = other.completed_at
        if done is not None and done.astimezone(tz).date() == day:
            other.next_day_due_at = None
