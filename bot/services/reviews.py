"""The weekly programme review in the database: claim, decide, record; and the answers to a
proposal (issue 17). No Telegram here and no commits.

Dispatcher-style (ARCHITECTURE.md: the row is the truth): ``programmes.next_review_at`` says
when a patient's programme is reviewed next. ``claim_due`` takes due programmes with
``FOR UPDATE SKIP LOCKED`` (PostgreSQL; SQLite's single writer serialises claimers), moves
``next_review_at`` a week on in the same transaction, and records the outcome: so each
programme is reviewed once per week whatever the number of replicas, and a crash before the
commit just leaves it due. No per-patient scheduler job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import CheckIn, PainScore, Programme, ProgrammeChange, Therapist, User
from bot.services import feedback, programmes, progression
from bot.services.programmes import REVIEW_EVERY, Status, dose_of
from bot.services.progression import Direction, SessionRecord
from bot.services.reminders import Status as CheckInStatus

BATCH = 200


@dataclass
class Review:
    """One programme's weekly outcome, for the messages sent after the commit."""

    user: User
    direction: Direction
    reason: dict[str, Any]
    steps: list[list[Any]]  # [[key, [level, sets, amount] before, ... after], ...]
    mode: str  # keep | patient | therapist | auto
    change_id: int | None = None
    set_by: str | None = None
    therapists: list[User] = field(default_factory=list)


def _advance(when: datetime, now: datetime) -> datetime:
    while when <= now:
        when += REVIEW_EVERY
    return when


async def _records(
    session: AsyncSession, user_ids: list[int], now: datetime
) -> tuple[dict[int, list[SessionRecord]], dict[int, float | None]]:
    """The week's completed sessions and the usual level of every patient, in two queries."""
    week_start = now - timedelta(days=progression.WINDOW_DAYS)
    usual_start = now - timedelta(days=feedback.USUAL_WINDOW_DAYS)
    records: dict[int, list[SessionRecord]] = {}
    resting: dict[int, list[int]] = {}
    rows = await session.execute(
        select(
            CheckIn.user_id,
            CheckIn.status,
            CheckIn.pain_before,
            CheckIn.pain_after,
            CheckIn.next_day_response,
            CheckIn.completed_at,
            CheckIn.created_at,
        ).where(
            CheckIn.user_id.in_(user_ids),
            CheckIn.created_at >= usual_start - timedelta(days=1),
            CheckIn.pain_before.is_not(None),
        )
    )
    for uid, status, before, after, morning, completed_at, created_at in rows:
        if created_at >= usual_start:
            resting.setdefault(uid, []).append(before)
        if (
            status == CheckInStatus.COMPLETED
            and completed_at is not None
            and week_start <= completed_at <= now
        ):
            records.setdefault(uid, []).append(SessionRecord(before, after, morning))
    scores = await session.execute(
        select(PainScore.user_id, PainScore.score).where(
            PainScore.user_id.in_(user_ids), PainScore.recorded_at >= usual_start
        )
    )
    for uid, score in scores:
        resting.setdefault(uid, []).append(score)
    usual = {uid: feedback.usual_level(resting.get(uid, [])) for uid in user_ids}
    return records, usual


async def claim_due(
    session: AsyncSession, now: datetime, *, limit: int = BATCH
) -> tuple[int, list[Review]]:
    """Review every due programme (at most ``limit``): record the outcome, apply automatic
    steps; returns how many were claimed, and what to tell whom."""
    due = list(
        await session.scalars(
            select(Programme)
            .where(Programme.next_review_at <= now)
            .order_by(Programme.next_review_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    if not due:
        return 0, []
    ids = [p.user_id for p in due]
    users = {u.id: u for u in await session.scalars(select(User).where(User.id.in_(ids)))}
    records, usual = await _records(session, ids, now)
    linked = await programmes.therapists_of(session, ids)
    steps = await programmes.steps_for(session, ids)  # one query for the batch
    reviews: list[Review] = []
    for programme in due:
        programme.next_review_at = _advance(programme.next_review_at, now)
        uid = programme.user_id
        user = users[uid]
        week = records.get(uid, [])
        if not user.consented or not week:
            continue  # nothing to go on this week: nothing recorded, nothing said
        decision = progression.weekly_decision(week, usual[uid])
        pairs = progression.apply(steps.get(uid, []), decision.direction)
        reason = decision.reason.as_dict()
        moves = [[b.key, dose_of(b), dose_of(a)] for b, a in pairs]
        therapists_ = linked.get(uid, [])
        await programmes.supersede_proposals(session, uid, now)  # last week's, unanswered
        if not pairs:
            programmes.record(session, uid, "keep", now, by="review", reason=reason)
            continue
        kind = f"step_{decision.direction}"
        if therapists_ and programme.auto_progress:
            _apply_steps(await programmes.current(session, uid), moves)
            programme.updated_at = now
            change = programmes.record(
                session,
                uid,
                kind,
                now,
                by="review",
                by_name=programme.set_by,
                detail={"steps": moves, "decider": "auto"},
                reason=reason,
            )
            mode = "auto"
        else:
            mode = "therapist" if therapists_ else "patient"
            change = programmes.record(
                session,
                uid,
                kind,
                now,
                by="review",
                detail={"steps": moves, "decider": mode},
                reason=reason,
                status=Status.PROPOSED,
            )
        await session.flush()
        reviews.append(
            Review(
                user,
                decision.direction,
                reason,
                moves,
                mode,
                change.id,
                programme.set_by,
                therapists_,
            )
        )
    return len(due), reviews


def _apply_steps(found: programmes.Current, steps: list[list[Any]]) -> list[list[Any]]:
    """Set each exercise still at its ``before`` dose to its ``after``; those applied."""
    applied = []
    for key, before, after in steps:
        row = found.row(key)
        if row is not None and [row.level, row.sets, row.amount] == list(before):
            row.level, row.sets, row.amount = after
            applied.append([key, before, after])
    return applied


@dataclass(frozen=True)
class Decided:
    direction: str
    steps: list[list[Any]]


async def decide(
    session: AsyncSession,
    change_id: int,
    *,
    accept: bool,
    now: datetime,
    patient: User | None = None,
    therapist: Therapist | None = None,
    patient_id: int | None = None,
) -> Decided | None:
    """The patient's or the therapist's answer to a proposal; None when it is not theirs to
    answer, already answered, or no longer fits the programme."""
    change = await session.scalar(
        select(ProgrammeChange).where(ProgrammeChange.id == change_id).with_for_update()
    )
    if change is None or change.status != Status.PROPOSED:
        return None
    decider = (change.detail or {}).get("decider")
    if patient is not None:
        if change.user_id != patient.id or decider != "patient":
            return None
        by = "patient"
    elif therapist is not None:
        if decider != "therapist" or (patient_id is not None and change.user_id != patient_id):
            return None
        if not await programmes.can_manage(session, therapist, change.user_id):
            return None
        by = therapist.display_name or "therapist"
    else:
        return None
    direction = change.kind.removeprefix("step_")
    change.decided_at, change.decided_by = now, by
    if not accept:
        change.status = Status.DECLINED
        return Decided(direction, [])
    found = await programmes.current(session, change.user_id, lock=True)
    applied = _apply_steps(found, (change.detail or {}).get("steps", [])) if found else []
    if not applied:
        change.status = Status.SUPERSEDED
        return None
    change.status = Status.APPLIED
    found.programme.updated_at = now
    return Decided(direction, applied)
