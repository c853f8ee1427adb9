"""What a patient sees in /progress: sessions done against planned per week, streaks, the
weekly pain trend and their own before/after effect.

Pure statistics on plain records (``CheckInRecord``, ``ScoreRecord``), plus one loader,
``compute_progress``, that reads them from the database. No Telegram, no commits.

How the data is read (only eligible slots get a ``CheckIn`` row: the dispatcher writes no
row for a paused or not-consented patient):

- A local date with a completed check-in (a prompt or a /log session) is a *done* day.
- A date whose prompt check-ins all ended missed, skipped or undeliverable *breaks* a streak.
- A date with no prompt rows (not a reminder day, paused) is neutral, and so is a date whose
  prompt is still open (today, before the patient answered).
- Planned for a week = its prompt rows; the current week adds the reminder slots still to
  come (none while paused). Done = completed check-ins of any kind.
- Dates and ISO weeks (Monday first) are the patient's own, in ``user.timezone``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from statistics import fmean
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import CheckIn, PainScore, Schedule, User
from bot.services import feedback
from bot.services.patients import is_paused
from bot.services.reminders import OPEN_STATUSES, Status, is_eligible
from bot.services.schedule_rules import next_occurrence, zone

# The pain trend, the weekly average and when the before/after effect is shown are the
# clinical rules' (bot/services/feedback.py: trend, weekly_average, effect_is_shown), shared
# with the therapist's digest.
# "Struggling": fewer than half of the slots due in the last week and this week were done.
STRUGGLING_SHARE = 0.5
STRUGGLING_MIN_DUE = 3
STREAK_WORTH_NAMING = 3


class DayState(StrEnum):
    DONE = "done"
    BROKEN = "broken"
    OPEN = "open"  # a prompt still waiting for an answer: neither counts nor breaks


Trend = feedback.Trend  # falling, rising, steady, unknown (fewer than two weeks to compare)


class Cheer(StrEnum):
    """Which short encouraging line fits; honest when things go badly."""

    FIRST_STEPS = "first_steps"  # reminders came, no session done yet
    PAIN_RISING = "pain_rising"
    PAUSED = "paused"
    STRUGGLING = "struggling"
    PAIN_FALLING = "pain_falling"
    STREAK = "streak"
    STEADY = "steady"


@dataclass(frozen=True, slots=True)
class CheckInRecord:
    """One check-in as statistics need it; ``at`` is local (the prompt's due time, else start)."""

    at: datetime
    kind: str
    status: str
    before: int | None = None
    after: int | None = None

    @property
    def day(self) -> date:
        return self.at.date()


@dataclass(frozen=True, slots=True)
class ScoreRecord:
    """A standalone pain score (/pain) at a local time."""

    at: datetime
    score: int


@dataclass(frozen=True, slots=True)
class WeekStats:
    start: date  # the Monday
    planned: int
    done: int
    pain_mean: float | None
    pain_count: int
    remaining: int = 0  # slots still to come (current week only), included in ``planned``


@dataclass(frozen=True, slots=True)
class Effect:
    """The patient's own before/after change over completed sessions with both scores."""

    sessions: int
    mean_change: float | None  # mean(after - before): negative means pain fell
    fell: int  # sessions with after < before

    @property
    def share_fell(self) -> float | None:
        return self.fell / self.sessions if self.sessions else None


@dataclass(frozen=True, slots=True)
class SessionPoint:
    """A completed session with both scores, for the chart."""

    at: datetime  # local
    before: int
    after: int


@dataclass(frozen=True, slots=True)
class Progress:
    today: date
    weeks: tuple[WeekStats, ...]  # oldest first; the last one is the current week
    current_streak: int
    best_streak: int
    trend: Trend
    effect: Effect  # over the whole history
    sessions: tuple[SessionPoint, ...]  # within the weeks shown, oldest first
    completed_total: int
    paused: bool
    cheer: Cheer

    @property
    def has_data(self) -> bool:
        """Anything recorded to show: a check-in or pain score in these weeks, or any session."""
        return self.completed_total > 0 or any(
            w.planned > w.remaining or w.done or w.pain_count for w in self.weeks
        )


# ---------------------------------------------------------------------------------------------
# Pure statistics
# ---------------------------------------------------------------------------------------------


def week_start(day: date) -> date:
    """The Monday of ``day``'s ISO week."""
    return day - timedelta(days=day.weekday())


def day_states(checkins: Iterable[CheckInRecord]) -> dict[date, DayState]:
    """Each local date that has a say in a streak: done, broken, or open (waiting)."""
    done: set[date] = set()
    waiting: set[date] = set()
    closed: set[date] = set()
    for c in checkins:
        if c.status == Status.COMPLETED:
            done.add(c.day)
        elif c.kind == "prompt":
            (waiting if c.status in OPEN_STATUSES else closed).add(c.day)
    # A done session wins the day; an open prompt keeps a day from breaking the streak.
    states = dict.fromkeys(closed, DayState.BROKEN)
    states.update(dict.fromkeys(waiting, DayState.OPEN))
    states.update(dict.fromkeys(done, DayState.DONE))
    return states


def streaks(states: Mapping[date, DayState]) -> tuple[int, int]:
    """(current, best) runs of done days; neutral and open days neither count nor break."""
    run = best = 0
    for day in sorted(states):
        if states[day] is DayState.DONE:
            run += 1
            best = max(best, run)
        elif states[day] is DayState.BROKEN:
            run = 0
    return run, best


def pain_values_by_week(
    checkins: Iterable[CheckInRecord], scores: Iterable[ScoreRecord]
) -> dict[date, list[int]]:
    """Every resting pain score (before a session, standalone /pain) grouped by the Monday of
    its week. The score after a session is its effect, shown on its own; the digest averages
    the same scores."""
    weeks: dict[date, list[int]] = {}
    for c in checkins:
        if c.before is not None:
            weeks.setdefault(week_start(c.day), []).append(c.before)
    for s in scores:
        weeks.setdefault(week_start(s.at.date()), []).append(s.score)
    return weeks


def weekly_stats(
    checkins: Sequence[CheckInRecord],
    scores: Sequence[ScoreRecord],
    mondays: Sequence[date],
    remaining: Mapping[date, int] | None = None,
) -> list[WeekStats]:
    """Planned, done and mean pain for each week in ``mondays`` (``remaining`` adds slots)."""
    remaining = remaining or {}
    planned: dict[date, int] = {}
    done: dict[date, int] = {}
    for c in checkins:
        monday = week_start(c.day)
        if c.kind == "prompt":
            planned[monday] = planned.get(monday, 0) + 1
        if c.status == Status.COMPLETED:
            done[monday] = done.get(monday, 0) + 1
    pain = pain_values_by_week(checkins, scores)
    return [
        WeekStats(
            start=monday,
            planned=planned.get(monday, 0) + remaining.get(monday, 0),
            done=done.get(monday, 0),
            pain_mean=feedback.weekly_average(pain.get(monday, ())),
            pain_count=len(pain.get(monday, ())),
            remaining=remaining.get(monday, 0),
        )
        for monday in mondays
    ]


def before_after_effect(checkins: Iterable[CheckInRecord]) -> Effect:
    """Mean change and how often pain fell, over completed sessions with both scores."""
    changes = [
        c.after - c.before
        for c in checkins
        if c.status == Status.COMPLETED and c.before is not None and c.after is not None
    ]
    if not changes:
        return Effect(0, None, 0)
    return Effect(len(changes), fmean(changes), sum(1 for d in changes if d < 0))


def pain_trend(means: Sequence[float | None]) -> Trend:
    """Falling, rising or steady (feedback.trend): only a change that matters to patients,
    2 points or 30 %, is called a trend."""
    return feedback.trend(means)


def encouragement(
    weeks: Sequence[WeekStats], trend: Trend, current_streak: int, paused: bool, completed: int
) -> Cheer:
    """The line that fits best; bad news (rising pain, missed weeks) is named, kindly."""
    if completed == 0:
        return Cheer.FIRST_STEPS
    if trend is Trend.RISING:
        return Cheer.PAIN_RISING
    if paused:
        return Cheer.PAUSED
    recent = weeks[-2:]
    due = sum(w.planned - w.remaining for w in recent)
    done = sum(w.done for w in recent)
    if due >= STRUGGLING_MIN_DUE and done < due * STRUGGLING_SHARE:
        return Cheer.STRUGGLING
    if trend is Trend.FALLING:
        return Cheer.PAIN_FALLING
    if current_streak >= STREAK_WORTH_NAMING:
        return Cheer.STREAK
    return Cheer.STEADY


def remaining_slots(
    schedules: Iterable[tuple[str, int, datetime | None]],
    tz: str,
    start: datetime,
    end: datetime,
    counts_on: Callable[[date], bool],
) -> int:
    """Reminder slots in [start, end) not yet claimed by the dispatcher, on days that count.

    Each schedule is (local_time, days mask, next_due_at). Slots before ``next_due_at`` are
    claimed already (a row exists, or none ever will), so counting starts there.
    """
    zi = zone(tz)
    count = 0
    for local_time, days, next_due_at in schedules:
        if next_due_at is None:
            continue
        slot: datetime | None = next_due_at
        if slot < start:
            slot = next_occurrence(local_time, days, tz, start - timedelta(microseconds=1))
        while slot is not None and slot < end:
            if counts_on(slot.astimezone(zi).date()):
                count += 1
            slot = next_occurrence(local_time, days, tz, slot)
    return count


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


def started_on(user: User, zi: ZoneInfo, record_days: Iterable[date]) -> date | None:
    """The patient's first local day with the bot: setup done (or consent), or an older
    record."""
    days = list(record_days)
    began = user.setup_done_at or user.consent_at
    if began is not None:
        days.append(began.astimezone(zi).date())
    return min(days) if days else None


def _midnight(day: date, zi: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zi)


async def compute_progress(
    session: AsyncSession, user: User, now: datetime, weeks: int = 5
) -> Progress:
    """The patient's progress for the current week and the ``weeks - 1`` before it."""
    tz = user.timezone or "UTC"
    zi = zone(tz)
    today = now.astimezone(zi).date()
    this_monday = week_start(today)
    mondays = [this_monday - timedelta(weeks=n) for n in range(weeks - 1, -1, -1)]
    window_start = _midnight(mondays[0], zi)
    week_end = _midnight(this_monday + timedelta(days=7), zi)

    # The whole history: the best streak and the before/after effect look at all of it.
    rows = await session.execute(
        select(
            CheckIn.kind,
            CheckIn.status,
            CheckIn.due_at,
            CheckIn.created_at,
            CheckIn.pain_before,
            CheckIn.pain_after,
        ).where(CheckIn.user_id == user.id)
    )
    checkins = [
        CheckInRecord(
            (r.due_at or r.created_at).astimezone(zi), r.kind, r.status, r.pain_before, r.pain_after
        )
        for r in rows
    ]
    scores = [
        ScoreRecord(at.astimezone(zi), score)
        for at, score in await session.execute(
            select(PainScore.recorded_at, PainScore.score).where(
                PainScore.user_id == user.id, PainScore.recorded_at >= window_start
            )
        )
    ]
    schedules = (
        await session.execute(
            select(Schedule.local_time, Schedule.days, Schedule.next_due_at).where(
                Schedule.user_id == user.id
            )
        )
    ).all()

    # Never weeks before the patient started ("0 of 0"): from the week of their setup (or
    # their first record, if older, e.g. data brought over), in text, chart and PDF alike.
    first_day = started_on(user, zi, [c.day for c in checkins] + [sc.at.date() for sc in scores])
    if first_day is not None:
        mondays = [m for m in mondays if m >= week_start(first_day)] or [this_monday]
        window_start = _midnight(mondays[0], zi)
    left = remaining_slots(
        schedules, tz, _midnight(this_monday, zi), week_end, lambda d: is_eligible(user, d)
    )
    in_window = [c for c in checkins if c.day >= mondays[0]]
    week_list = weekly_stats(in_window, scores, mondays, {this_monday: left})
    current, best = streaks(day_states(checkins))
    trend = pain_trend([w.pain_mean for w in week_list])
    effect = before_after_effect(checkins)
    completed = sum(1 for c in checkins if c.status == Status.COMPLETED)
    paused = is_paused(user, now)
    sessions = sorted(
        (
            SessionPoint(c.at, c.before, c.after)
            for c in in_window
            if c.status == Status.COMPLETED and c.before is not None and c.after is not None
        ),
        key=lambda p: p.at,
    )
    return Progress(
        today=today,
        weeks=tuple(week_list),
        current_streak=current,
        best_streak=best,
        trend=trend,
        effect=effect,
        sessions=tuple(sessions),
        completed_total=completed,
        paused=paused,
        cheer=encouragement(week_list, trend, current, paused, completed),
    )
