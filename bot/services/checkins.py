"""The check-in conversation as rules: each answer is a guarded step of ``CheckIn.status``.

Every step names the statuses it may start from, so a stale, repeated or forged button can
never write a second record: it gets an ``Outcome`` the handler turns into a polite answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, case, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from bot.db.models import CheckIn, PainScore, TherapistLink, User, UTCDateTime
from bot.services import feedback, habit, patients
from bot.services.education import Situation
from bot.services.reminders import OPEN_STATUSES, Status
from bot.services.therapists import ACTIVE_LINK

EFFORTS = ("easy", "moderate", "hard")
BARRIERS = ("pain", "time", "fear", "tired", "other")
NEXT_DAY_ANSWERS = feedback.NEXT_MORNING_ANSWERS
SNOOZE_MINUTES = (15, 60)
# The next-morning question goes out at this local time on the day after the session.
NEXT_DAY_ASK_AT = time(9, 0)
# Once started, a check-in stays open at least this long, even if it was prompted late.
SESSION_WINDOW = timedelta(hours=3)
# Which sessions are flagged for the therapist: bot/services/feedback.py (the clinical rules).

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


# A prompt out and not yet answered: its keypad asks the pain before.
PROMPT_STATUSES = (Status.PENDING, Status.PROMPTED, Status.SNOOZED)
# The prompt carries the pain-before keypad: a score pressed there starts the session too.
BEFORE_FROM = (Status.PENDING, Status.PROMPTED, Status.SNOOZED, Status.STARTED)


def record_before(
    checkin: CheckIn,
    score: int,
    now: datetime | None = None,
    nudge_after: timedelta | None = None,
) -> Outcome:
    """Pain before: from the prompt (starting the session) or after Start / /log. With
    ``nudge_after``, "Finished? Tap Done" is due that long after."""
    outcome = _step(checkin, BEFORE_FROM, done_if=checkin.pain_before == score)
    if outcome is Outcome.OK:
        if checkin.status != Status.STARTED and now is not None:
            start(checkin, now)
        checkin.pain_before = score
        checkin.status = Status.EXERCISING
        if now is not None and nudge_after is not None:
            checkin.nudge_due_at = now + nudge_after
    return outcome


@dataclass(frozen=True)
class QuickBefore:
    """A pain score before recorded by ``record_before_quick``: what the reply needs."""

    checkin_id: int
    score: int
    language: str
    timezone: str
    lighter_next: bool


def _quick_before_statement():
    """Built once (bind parameters only): building and cache-keying this statement per press
    cost as much as running it."""
    c, u = CheckIn.__table__.c, User.__table__.c
    owner = (
        select(u.id)
        .where(
            u.telegram_id == bindparam("telegram_id"),
            u.consent_at.is_not(None),
            u.silent_since.is_(None),
            u.silent_prompts == 0,
            u.absence.is_(None),
            u.conv_state.is_(None),
        )
        .scalar_subquery()
    )
    now = bindparam("now", type_=UTCDateTime())
    window_end = bindparam("window_end", type_=UTCDateTime())
    started = c.status == Status.STARTED
    of_user = User.__table__.alias("presser")  # RETURNING names its columns unqualified

    def presser(column: str):
        return select(of_user.c[column]).where(of_user.c.id == c.user_id).scalar_subquery()

    return (
        update(CheckIn.__table__)
        .where(
            c.id == bindparam("checkin_id"),
            c.user_id == owner,
            c.status.in_(BEFORE_FROM),
            c.pain_before.is_(None),
            or_(c.expires_at.is_(None), c.expires_at > now),
        )
        .values(
            pain_before=bindparam("score"),
            status=Status.EXERCISING,
            # start(), for a press on the prompt's keypad (the 3-tap check-in)
            started_at=case((started, c.started_at), else_=now),
            expires_at=case(
                (or_(started, c.expires_at > window_end), c.expires_at), else_=window_end
            ),
            snooze_until=None,
            lease_until=None,
            nudge_due_at=func.coalesce(
                bindparam("nudge_due_at", type_=UTCDateTime()), c.nudge_due_at
            ),
        )  # updated_at: the column's onupdate, as the ORM's flush sets it
        .returning(c.id, presser("language"), presser("timezone"), presser("lighter_next"))
    )


_QUICK_BEFORE = _quick_before_statement()


async def record_before_quick(
    db: AsyncConnection | AsyncSession,
    checkin_id: int,
    telegram_id: int,
    score: int,
    now: datetime,
    nudge_after: timedelta | None = None,
) -> QuickBefore | None:
    """``record_before`` for the everyday press, in one guarded ``UPDATE ... RETURNING``: the
    check-in waits for its pain before (``BEFORE_FROM``, not expired, no score yet), belongs
    to the presser, who has consented, is not silent or away, and has no open question
    (so ``load_pressed``, ``habit.note_response`` and ``drop_open_question`` would change
    nothing). The values written are ``start``'s then ``record_before``'s (a test compares
    the two paths row by row). None: not that case; nothing was written, and the caller
    takes the general path. A button press is the hot path (bar B4)."""
    params = {
        "checkin_id": checkin_id,
        "telegram_id": telegram_id,
        "score": score,
        "now": now,
        "window_end": now + SESSION_WINDOW,
        "nudge_due_at": now + nudge_after if nudge_after is not None else None,
    }
    row = (await db.execute(_QUICK_BEFORE, params)).first()
    if row is None:
        return None
    return QuickBefore(row[0], score, row[1], row[2], bool(row[3]))


def done(checkin: CheckIn, now: datetime) -> Outcome:
    outcome = _step(checkin, (Status.EXERCISING,), done_if=checkin.status == Status.RATING)
    if outcome is Outcome.OK:
        checkin.done_at = now
        checkin.status = Status.RATING
        checkin.nudge_due_at = None
    return outcome


def record_after(
    checkin: CheckIn, score: int, now: datetime | None = None, *, usual: float | None = None
) -> Outcome:
    """Pain after: the session is recorded as completed at once (the effort question that
    follows is optional and never blocks). Call ``after_completed`` next (next morning).
    ``usual`` is the patient's usual level (``usual_level``), which the clinical rules need
    to tell an acceptable rise from too much."""
    outcome = _step(checkin, (Status.RATING,), done_if=checkin.pain_after == score)
    if outcome is Outcome.OK:
        checkin.pain_after = score
        checkin.flagged = (
            assessment(checkin, usual).flag if checkin.pain_before is not None else False
        )
        checkin.status = Status.COMPLETED
        checkin.completed_at = now or checkin.done_at
        checkin.nudge_due_at = None
    return outcome


async def after_completed(session: AsyncSession, checkin: CheckIn, user: User) -> None:
    """A session was just completed: its next-morning question is due at the patient's
    first reminder of the next day (or 09:00), and only the day's latest session is asked
    about; a "go lighter" suggestion has been used."""
    if checkin.completed_at is None:
        return
    checkin.next_day_due_at = await habit.next_morning_at(session, user, checkin.completed_at)
    await habit.only_latest_of_day(session, checkin, user)
    user.lighter_next = False


def record_effort(checkin: CheckIn, effort: str, now: datetime) -> Outcome:
    """The optional effort, answered once after the pain after (or skipped with "none")."""
    if effort not in (*EFFORTS, "none"):
        return Outcome.WRONG_STEP
    if checkin.status == Status.EFFORT:  # a check-in from before the effort became optional
        checkin.status, checkin.completed_at = Status.COMPLETED, now
    elif checkin.status != Status.COMPLETED or checkin.pain_after is None:
        return Outcome.CLOSED
    elif checkin.effort is not None:
        return Outcome.DUPLICATE
    checkin.effort = effort if effort in EFFORTS else None
    return Outcome.OK


def confirm_done(checkin: CheckIn, did: bool, now: datetime) -> Outcome:
    """The answer to "Did you do it?" (asked once when a started session expired): yes
    records it as completed (it counts for the streak); no leaves it missed."""
    if checkin.done_asked_at is None:
        return Outcome.CLOSED
    if checkin.status == Status.COMPLETED:
        return Outcome.DUPLICATE
    if checkin.status != Status.MISSED:
        return Outcome.CLOSED
    if did:
        checkin.status = Status.COMPLETED
        checkin.completed_at = now
    else:
        checkin.done_asked_at = None  # answered: the buttons mean nothing any more
    return Outcome.OK


def assessment(checkin: CheckIn, usual: float | None) -> feedback.Assessment:
    """What the clinical rules say about this session's before/after scores."""
    return feedback.assess(checkin.pain_before, checkin.pain_after, usual=usual)


async def usual_level(
    session: AsyncSession, user: User, now: datetime, *, exclude_checkin: int | None = None
) -> float | None:
    """The patient's usual pain (feedback.usual_level) from their resting scores of the last
    four weeks: pain before sessions and /pain scores (``exclude_checkin``: not this one's)."""
    since = now - timedelta(days=feedback.USUAL_WINDOW_DAYS)
    befores = select(CheckIn.pain_before).where(
        CheckIn.user_id == user.id,
        CheckIn.pain_before.is_not(None),
        CheckIn.created_at >= since,
    )
    if exclude_checkin is not None:
        befores = befores.where(CheckIn.id != exclude_checkin)
    scores = list(await session.scalars(befores))
    scores += list(
        await session.scalars(
            select(PainScore.score).where(
                PainScore.user_id == user.id, PainScore.recorded_at >= since
            )
        )
    )
    return feedback.usual_level(scores)


def gentle(checkin: CheckIn) -> Outcome:
    """[Gentle version] after a high pain score before the session: nothing changes but the
    advice (the session goes on; Done and "I couldn't do it" stay possible)."""
    return _step(checkin, (Status.EXERCISING,))


def morning_verdict(checkin: CheckIn, answer: str) -> feedback.NextMorningVerdict:
    rise = None
    if checkin.pain_before is not None and checkin.pain_after is not None:
        rise = checkin.pain_after - checkin.pain_before
    return feedback.next_morning_verdict(answer, session_flagged=bool(checkin.flagged), rise=rise)


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


# A session in one of these is under way: no next-morning question in the middle of it.
UNDER_WAY = (Status.STARTED, Status.EXERCISING, Status.RATING)
# Asked about yesterday: a question put off by a session under way waits this long at a time.
NEXT_DAY_RETRY = timedelta(minutes=30)


async def record_next_day(
    session: AsyncSession, checkin_id: int, user: User, answer: str
) -> tuple[Outcome, object | None]:
    """better / same / worse, the morning after: once per completed check-in. The answer's
    verdict (``feedback.next_morning_verdict``) flags the session for the therapist and makes
    the next check-in suggest a lighter version when that is what it says."""
    checkin = await session.scalar(
        select(CheckIn).where(CheckIn.id == checkin_id, CheckIn.user_id == user.id)
    )
    if checkin is None or checkin.status != Status.COMPLETED or answer not in NEXT_DAY_ANSWERS:
        return Outcome.CLOSED, None
    if checkin.next_day_asked_at is None:
        return Outcome.WRONG_STEP, None
    if checkin.next_day_response is not None:
        return Outcome.DUPLICATE, None
    checkin.next_day_response = answer
    verdict = morning_verdict(checkin, answer)
    if verdict.flag:  # e.g. a rise of 3+ and a worse morning
        checkin.flagged = True
    user.lighter_next = bool(verdict.lighter_next_time)
    return Outcome.OK, verdict


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
    """The patient's open check-in that waits for a typed pain score, if any (newest first):
    a question for the pain before or after, or a prompt (its keypad asks the pain before)."""
    return await session.scalar(
        select(CheckIn)
        .where(
            CheckIn.user_id == user.id,
            CheckIn.status.in_((Status.STARTED, Status.RATING, *PROMPT_STATUSES)),
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
    user_id: int = 0


async def claim_next_day(
    session: AsyncSession, now: datetime, *, limit: int = 500, late: timedelta = timedelta(hours=12)
) -> list[NextDayQuestion]:
    """Completed check-ins whose next-morning question is due; each is claimed exactly once.

    A question more than ``late`` overdue (the bot was down) is dropped: asking about
    "yesterday" days later would mislead. Blocked or paused patients are not asked. Never
    while a session is under way: the question waits ``NEXT_DAY_RETRY`` (the same local day
    only). The dispatcher merges a question into a prompt claimed in the same tick.
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
    busy: set[int] = set()
    if rows:
        busy = set(
            await session.scalars(
                select(CheckIn.user_id).where(
                    CheckIn.user_id.in_({u.id for _, u in rows}),
                    CheckIn.status.in_(UNDER_WAY),
                    (CheckIn.expires_at.is_(None)) | (CheckIn.expires_at > now),
                )
            )
        )
    questions = []
    for checkin, user in rows:
        due = checkin.next_day_due_at
        checkin.next_day_due_at = None
        if now - due > late or not user.active or patients.is_paused(user, now):
            continue
        if user.id in busy:
            later = now + NEXT_DAY_RETRY
            if patients.local_today(user, later) == patients.local_today(user, due):
                checkin.next_day_due_at = later
            continue
        checkin.next_day_asked_at = now
        questions.append(NextDayQuestion(checkin.id, user.telegram_id, user.language, user.id))
    await session.flush()
    return questions


async def shares_with_therapist(session: AsyncSession, user: User) -> bool:
    """Whether a physiotherapist sees this patient's weekly summary (an active link)."""
    found = await session.scalar(
        select(TherapistLink.id).where(TherapistLink.patient_id == user.id, *ACTIVE_LINK).limit(1)
    )
    return found is not None


async def open_prompt(session: AsyncSession, user: User, now: datetime) -> CheckIn | None:
    """Today's prompt if it can still be skipped (sent or snoozed, not started, not expired)."""
    return await session.scalar(
        select(CheckIn)
        .where(
            CheckIn.user_id == user.id,
            CheckIn.kind == "prompt",
            CheckIn.status.in_((Status.PENDING, Status.PROMPTED, Status.SNOOZED)),
            (CheckIn.expires_at.is_(None)) | (CheckIn.expires_at > now),
        )
        .order_by(CheckIn.id.desc())
        .limit(1)
    )


async def current_open(session: AsyncSession, user: User, now: datetime) -> CheckIn | None:
    """The patient's newest open check-in that is not expired (what an old prompt's press is
    answered with), or None."""
    return await session.scalar(
        select(CheckIn)
        .where(
            CheckIn.user_id == user.id,
            CheckIn.status.in_(OPEN_STATUSES - {Status.EFFORT}),
            (CheckIn.expires_at.is_(None)) | (CheckIn.expires_at > now),
        )
        .order_by(CheckIn.id.desc())
        .limit(1)
    )
