"""The check-in conversation as rules: each answer is a guarded step of ``CheckIn.status``.

Every step names the statuses it may start from, so a stale, repeated or forged button can
never write a second record: it gets an ``Outcome`` the handler turns into a polite answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import CheckIn, PainScore, User
from bot.services import patients
from bot.services.education import Situation
from bot.services.reminders import OPEN_STATUSES, Status

EFFORTS = ("easy", "moderate", "hard")
BARRIERS = ("pain", "time", "fear", "tired", "other")
NEXT_DAY_ANSWERS = ("better", "same", "worse")
SNOOZE_MINUTES = (15, 60)
# The next-morning question goes out at this local time on the day after the session.
NEXT_DAY_ASK_AT = time(9, 0)
# Once started, a check-in stays open at least this long, even if it was prompted late.
SESSION_WINDOW = timedelta(hours=3)
# A rise of this many points, or pain after at or above FLAG_AFTER, is flagged for the therapist.
FLAG_RISE = 3
FLAG_AFTER = 8

BARRIER_SITUATION = {
    "pain": Situation.BARRIER_PAIN,
    "time": Situation.BARRIER_TIME,
    "fear": Situation.BARRIER_FEAR,
    "tired": Situation.BARRIER_TIRED,
    "other": Situation.BARRIER_OTHER,
}


class Outcome(StrEnum):
    OK = "ok"
    CLOSED = "closed"  # finished, skipped, missed or expired: nothing changes any more
    WRONG_STEP = "wrong_step"  # open, but this button belongs to another step
    DUPLICATE = "duplicate"  # the same answer again (a double tap): recorded once


@dataclass(frozen=True)
class Loaded:
    checkin: CheckIn | None
    outcome: Outcome


async def load_pressed(
    session: AsyncSession, checkin_id: int, telegram_id: int, now: datetime
) -> tuple[User | None, Loaded]:
    """The presser and their check-in in one query (a button press is the hot path, bar B4).

    Someone else's or a forged check-in id gives (the presser or None, CLOSED), like any other
    closed check-in, so a guess learns nothing.
    """
    row = (
        await session.execute(
            select(CheckIn, User)
            .join(User, User.id == CheckIn.user_id)
            .where(CheckIn.id == checkin_id, User.telegram_id == telegram_id)
            .with_for_update(of=CheckIn)
        )
    ).first()
    if row is None:
        user = await session.scalar(select(User).where(User.telegram_id == telegram_id))
        return user, Loaded(None, Outcome.CLOSED)
    checkin, user = row
    return user, _loaded(checkin, now)


def _loaded(checkin: CheckIn | None, now: datetime) -> Loaded:
    if checkin is None:  # someone else's id, or a forged one: the same answer as closed
        return Loaded(None, Outcome.CLOSED)
    if checkin.status in OPEN_STATUSES and checkin.expires_at and checkin.expires_at <= now:
        # Only the optional effort question left: the session happened and counts.
        if checkin.status == Status.EFFORT:
            checkin.status, checkin.completed_at = Status.COMPLETED, now
        else:
            checkin.status = Status.MISSED
    if checkin.status not in OPEN_STATUSES:
        return Loaded(checkin, Outcome.CLOSED)
    return Loaded(checkin, Outcome.OK)


def _step(checkin: CheckIn, allowed: tuple[str, ...], done_if: bool = False) -> Outcome:
    if checkin.status in allowed:
        return Outcome.OK
    return Outcome.DUPLICATE if done_if else Outcome.WRONG_STEP


def start(checkin: CheckIn, now: datetime) -> Outcome:
    """Start pressed on the prompt: ask the pain before."""
    # pending too: a patient can press before the sender has recorded the delivery.
    outcome = _step(
        checkin,
        (Status.PENDING, Status.PROMPTED, Status.SNOOZED),
        done_if=checkin.status == Status.STARTED,
    )
    if outcome is Outcome.OK:
        checkin.status = Status.STARTED
        checkin.started_at = now
        # Starting near the end of the expiry window must not cut the session short.
        checkin.expires_at = max(checkin.expires_at or now, now + SESSION_WINDOW)
        checkin.snooze_until = None
        checkin.lease_until = None
    return outcome


def record_before(checkin: CheckIn, score: int) -> Outcome:
    outcome = _step(checkin, (Status.STARTED,), done_if=checkin.pain_before == score)
    if outcome is Outcome.OK:
        checkin.pain_before = score
        checkin.status = Status.EXERCISING
    return outcome


def done(checkin: CheckIn, now: datetime) -> Outcome:
    outcome = _step(checkin, (Status.EXERCISING,), done_if=checkin.status == Status.RATING)
    if outcome is Outcome.OK:
        checkin.done_at = now
        checkin.status = Status.RATING
    return outcome


def record_after(checkin: CheckIn, score: int) -> Outcome:
    outcome = _step(checkin, (Status.RATING,), done_if=checkin.pain_after == score)
    if outcome is Outcome.OK:
        checkin.pain_after = score
        checkin.flagged = should_flag(checkin.pain_before, score)
        checkin.status = Status.EFFORT
    return outcome


def should_flag(before: int | None, after: int) -> bool:
    """A rise of 3 or more points, or pain after at 8 or more: worth the therapist's eye."""
    return after >= FLAG_AFTER or (before is not None and after - before >= FLAG_RISE)


def complete(checkin: CheckIn, effort: str | None, user: User, now: datetime) -> Outcome:
    """The optional effort answered (or skipped): the session is recorded as completed."""
    outcome = _step(checkin, (Status.EFFORT,))
    if outcome is Outcome.OK:
        checkin.effort = effort if effort in EFFORTS else None
        checkin.status = Status.COMPLETED
        checkin.completed_at = now
        checkin.next_day_due_at = next_morning(now, user.timezone or "UTC")
    return outcome


def next_morning(now: datetime, tz: str) -> datetime:
    """09:00 local on the day after ``now`` (the 24-hour response matters most)."""
    zone = ZoneInfo(tz)
    tomorrow = now.astimezone(zone).date() + timedelta(days=1)
    return datetime.combine(tomorrow, NEXT_DAY_ASK_AT, zone)


def skip(checkin: CheckIn, now: datetime) -> Outcome:
    """Skip today (from the prompt) or "could not do it" (during the session)."""
    outcome = _step(
        checkin,
        (Status.PENDING, Status.PROMPTED, Status.SNOOZED, Status.STARTED, Status.EXERCISING),
    )
    if outcome is Outcome.OK:
        checkin.status = Status.SKIPPED
        checkin.lease_until = None
        checkin.snooze_until = None
    return outcome


def record_barrier(checkin: CheckIn, barrier: str) -> Outcome:
    """Why the session did not happen; answered once, after a skip."""
    if barrier not in BARRIERS:
        return Outcome.WRONG_STEP
    if checkin.status != Status.SKIPPED:
        return Outcome.WRONG_STEP
    if checkin.barrier is not None:
        return Outcome.DUPLICATE
    checkin.barrier = barrier
    return Outcome.OK


def snooze(checkin: CheckIn, minutes: int, now: datetime) -> Outcome:
    if minutes not in SNOOZE_MINUTES:
        return Outcome.WRONG_STEP
    until = now + timedelta(minutes=minutes)
    outcome = _step(checkin, (Status.PENDING, Status.PROMPTED, Status.SNOOZED))
    if outcome is Outcome.OK and checkin.expires_at is not None and checkin.expires_at <= until:
        return Outcome.CLOSED  # it would expire before coming back
    if outcome is Outcome.OK:
        checkin.status = Status.SNOOZED
        checkin.snooze_until = until
        checkin.lease_until = None
    return outcome


async def record_next_day(
    session: AsyncSession, checkin_id: int, user: User, answer: str
) -> Outcome:
    """better / same / worse, the morning after: once per completed check-in."""
    checkin = await session.scalar(
        select(CheckIn).where(CheckIn.id == checkin_id, CheckIn.user_id == user.id)
    )
    if checkin is None or checkin.status != Status.COMPLETED or answer not in NEXT_DAY_ANSWERS:
        return Outcome.CLOSED
    if checkin.next_day_asked_at is None:
        return Outcome.WRONG_STEP
    if checkin.next_day_response is not None:
        return Outcome.DUPLICATE
    checkin.next_day_response = answer
    return Outcome.OK


async def begin_log(session: AsyncSession, user: User, now: datetime, expiry: timedelta) -> CheckIn:
    """/log: a session done without a prompt, with the same before/after questions."""
    checkin = CheckIn(
        user_id=user.id,
        kind="log",
        status=Status.STARTED,
        started_at=now,
        expires_at=now + expiry,
        created_at=now,
    )
    session.add(checkin)
    await session.flush()
    return checkin


async def waiting_for_score(session: AsyncSession, user: User, now: datetime) -> CheckIn | None:
    """The patient's open check-in that waits for a typed pain score, if any (newest first)."""
    return await session.scalar(
        select(CheckIn)
        .where(
            CheckIn.user_id == user.id,
            CheckIn.status.in_((Status.STARTED, Status.RATING)),
            (CheckIn.expires_at.is_(None)) | (CheckIn.expires_at > now),
        )
        .order_by(CheckIn.id.desc())
        .limit(1)
        .with_for_update()
    )


async def record_pain(session: AsyncSession, user: User, score: int, now: datetime) -> PainScore:
    """/pain: a standalone score."""
    row = PainScore(user_id=user.id, score=score, recorded_at=now)
    session.add(row)
    await session.flush()
    return row


async def completed_count(session: AsyncSession, user: User) -> int:
    return await session.scalar(
        select(func.count())
        .select_from(CheckIn)
        .where(CheckIn.user_id == user.id, CheckIn.status == Status.COMPLETED)
    )


@dataclass(frozen=True)
class NextDayQuestion:
    checkin_id: int
    telegram_id: int
    language: str


async def claim_next_day(
    session: AsyncSession, now: datetime, *, limit: int = 500, late: timedelta = timedelta(hours=12)
) -> list[NextDayQuestion]:
    """Completed check-ins whose next-morning question is due; each is claimed exactly once.

    A question more than ``late`` overdue (the bot was down) is dropped: asking about
    "yesterday" days later would mislead. Blocked or paused patients are not asked.
    """
    rows = (
        await session.execute(
            select(CheckIn, User)
            .join(User, User.id == CheckIn.user_id)
            .where(CheckIn.next_day_due_at <= now)
            .order_by(CheckIn.next_day_due_at)
            .limit(limit)
            .with_for_update(skip_locked=True, of=CheckIn)
        )
    ).all()
    questions = []
    for checkin, user in rows:
        due = checkin.next_day_due_at
        checkin.next_day_due_at = None
        if now - due > late or not user.active or patients.is_paused(user, now):
            continue
        checkin.next_day_asked_at = now
        questions.append(NextDayQuestion(checkin.id, user.telegram_id, user.language))
    await session.flush()
    return questions
