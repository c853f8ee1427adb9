"""Exercise programmes in the database: choose a starter, a therapist's edits, every change
recorded with who made it and why; the lines a reminder names (issue 17).

No Telegram here and no commits (the caller's transaction). A therapist reaches a patient's
programme only through an active link (``therapists.ACTIVE_LINK``): every function taking a
``therapist`` checks it and changes nothing without one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import (
    Programme,
    ProgrammeChange,
    ProgrammeExercise,
    Therapist,
    TherapistLink,
    User,
)
from bot.services import exercises, therapists
from bot.services.exercises import LIBRARY, STARTERS, Step
from bot.services.therapists import ACTIVE_LINK

REVIEW_EVERY = timedelta(days=7)
MAX_EXERCISES = 8  # a home programme longer than this is rarely done


class Status:
    APPLIED = "applied"
    PROPOSED = "proposed"
    DECLINED = "declined"
    SUPERSEDED = "superseded"


def as_step(row: ProgrammeExercise) -> Step:
    return Step(row.exercise, row.level, row.sets, row.amount)


def dose_of(step: Step) -> list[int]:
    return [step.level, step.sets, step.amount]


@dataclass(frozen=True)
class Current:
    """A programme and its exercises in order."""

    programme: Programme
    rows: list[ProgrammeExercise]

    @property
    def steps(self) -> list[Step]:
        return [as_step(r) for r in self.rows]

    def row(self, key: str) -> ProgrammeExercise | None:
        return next((r for r in self.rows if r.exercise == key), None)


async def current(session: AsyncSession, user_id: int, *, lock: bool = False) -> Current | None:
    query = select(Programme).where(Programme.user_id == user_id)
    if lock:
        query = query.with_for_update()
    programme = await session.scalar(query)
    if programme is None:
        return None
    rows = list(
        await session.scalars(
            select(ProgrammeExercise)
            .where(ProgrammeExercise.programme_id == programme.id)
            .order_by(ProgrammeExercise.position, ProgrammeExercise.id)
        )
    )
    return Current(programme, rows)


async def steps_for(session: AsyncSession, user_ids: Iterable[int]) -> dict[int, list[Step]]:
    """Each patient's programme as steps, in one query for a whole batch of prompts
    (the dispatcher claims up to 500 at a time: bar B1)."""
    ids = sorted(set(user_ids))
    found: dict[int, list[Step]] = {}
    if not ids:
        return found
    for start in range(0, len(ids), 1000):
        rows = await session.execute(
            select(ProgrammeExercise)
            .where(ProgrammeExercise.user_id.in_(ids[start : start + 1000]))
            .order_by(ProgrammeExercise.user_id, ProgrammeExercise.position, ProgrammeExercise.id)
        )
        for (row,) in rows:
            if row.exercise in LIBRARY:  # a key removed from the library is not named
                found.setdefault(row.user_id, []).append(as_step(row))
    return found


def record(
    session: AsyncSession,
    user_id: int,
    kind: str,
    now: datetime,
    *,
    by: str,
    by_name: str | None = None,
    detail: dict[str, Any] | None = None,
    reason: dict[str, Any] | None = None,
    status: str = Status.APPLIED,
) -> ProgrammeChange:
    change = ProgrammeChange(
        user_id=user_id,
        kind=kind,
        status=status,
        by=by,
        by_name=by_name,
        detail=detail,
        reason=reason,
        created_at=now,
        decided_at=now if status == Status.APPLIED else None,
        decided_by=by_name if status == Status.APPLIED else None,
    )
    session.add(change)
    return change


async def supersede_proposals(session: AsyncSession, user_id: int, now: datetime) -> None:
    """A programme changed by hand: an open proposal no longer applies."""
    await session.execute(
        update(ProgrammeChange)
        .where(ProgrammeChange.user_id == user_id, ProgrammeChange.status == Status.PROPOSED)
        .values(status=Status.SUPERSEDED, decided_at=now)
        .execution_options(synchronize_session=False)
    )


async def _ensure(session: AsyncSession, user_id: int, now: datetime, **values: Any) -> Current:
    found = await current(session, user_id, lock=True)
    if found is not None:
        return found
    programme = Programme(
        user_id=user_id, created_at=now, updated_at=now, next_review_at=now + REVIEW_EVERY, **values
    )
    session.add(programme)
    await session.flush()
    return Current(programme, [])


async def _replace_rows(session: AsyncSession, found: Current, steps: Sequence[Step]) -> None:
    for row in found.rows:
        await session.delete(row)
    await session.flush()
    found.rows.clear()
    for position, step in enumerate(steps):
        row = ProgrammeExercise(
            programme_id=found.programme.id,
            user_id=found.programme.user_id,
            position=position,
            exercise=step.key,
            level=step.level,
            sets=step.sets,
            amount=step.amount,
        )
        session.add(row)
        found.rows.append(row)
    await session.flush()


# ---------------------------------------------------------------------------------------------
# The patient's own choices
# ---------------------------------------------------------------------------------------------


async def choose_starter(session: AsyncSession, user: User, starter: str, now: datetime) -> Current:
    """Replace the patient's programme with a starter (every exercise at level 1)."""
    if starter not in STARTERS:
        raise ValueError("unknown starter")
    found = await _ensure(session, user.id, now, origin="starter")
    steps = exercises.starter_steps(starter)
    await _replace_rows(session, found, steps)
    programme = found.programme
    programme.origin, programme.starter, programme.set_by = "starter", starter, None
    programme.auto_progress = False
    programme.next_review_at = now + REVIEW_EVERY
    programme.updated_at = now
    await supersede_proposals(session, user.id, now)
    record(
        session,
        user.id,
        "starter",
        now,
        by="patient",
        detail={"starter": starter, "exercises": [[s.key, dose_of(s)] for s in steps]},
    )
    return found


async def drop_exercise(session: AsyncSession, user: User, key: str, now: datetime) -> bool:
    """The patient removes an exercise that does not suit them; False if it is not there."""
    found = await current(session, user.id, lock=True)
    row = found.row(key) if found else None
    if row is None:
        return False
    await session.delete(row)
    found.rows.remove(row)
    found.programme.updated_at = now
    await supersede_proposals(session, user.id, now)
    record(session, user.id, "removed", now, by="patient", detail={"exercise": key})
    await session.flush()
    return True


# ---------------------------------------------------------------------------------------------
# Therapists
# ---------------------------------------------------------------------------------------------


async def can_manage(session: AsyncSession, therapist: Therapist, patient_id: int) -> bool:
    """Only through a link the patient confirmed and has not revoked."""
    return await therapists.has_active_link(session, therapist.id, patient_id)


@dataclass(frozen=True)
class Patient:
    user_id: int
    name: str | None
    exercises: int


async def patients_with_plans(session: AsyncSession, therapist: Therapist) -> list[Patient]:
    """The therapist's actively linked patients with the size of their programmes."""
    rows = await session.execute(
        select(User.id, User.display_name)
        .join(TherapistLink, TherapistLink.patient_id == User.id)
        .where(TherapistLink.therapist_id == therapist.id, *ACTIVE_LINK)
        .order_by(TherapistLink.consented_at, TherapistLink.id)
    )
    people = list(rows)
    counts = {
        uid: len(steps) for uid, steps in (await steps_for(session, [p[0] for p in people])).items()
    }
    return [Patient(uid, name, counts.get(uid, 0)) for uid, name in people]


async def therapists_of(session: AsyncSession, patient_ids: Iterable[int]) -> dict[int, list[User]]:
    """Each patient's actively linked therapists (their user rows: chat id and language)."""
    ids = sorted(set(patient_ids))
    found: dict[int, list[User]] = {}
    if not ids:
        return found
    rows = await session.execute(
        select(TherapistLink.patient_id, User)
        .join(Therapist, Therapist.id == TherapistLink.therapist_id)
        .join(User, User.id == Therapist.user_id)
        .where(TherapistLink.patient_id.in_(ids), *ACTIVE_LINK)
        .order_by(TherapistLink.consented_at, TherapistLink.id)
    )
    for patient_id, user in rows:
        found.setdefault(patient_id, []).append(user)
    return found


def _as_therapist(found: Current, therapist: Therapist, now: datetime) -> None:
    programme = found.programme
    programme.origin, programme.starter = "therapist", None
    programme.set_by = therapist.display_name
    programme.updated_at = now


async def add_exercise(
    session: AsyncSession, therapist: Therapist, patient_id: int, key: str, now: datetime
) -> Step | None:
    """Add ``key`` at the start of level 1; None if not allowed, unknown, there or full."""
    if key not in LIBRARY or not await can_manage(session, therapist, patient_id):
        return None
    found = await _ensure(session, patient_id, now, origin="therapist")
    if found.row(key) is not None or len(found.rows) >= MAX_EXERCISES:
        return None
    step = exercises.start_of(key)
    position = max((r.position for r in found.rows), default=-1) + 1
    row = ProgrammeExercise(
        programme_id=found.programme.id,
        user_id=patient_id,
        position=position,
        exercise=key,
        level=step.level,
        sets=step.sets,
        amount=step.amount,
    )
    session.add(row)
    found.rows.append(row)
    _as_therapist(found, therapist, now)
    await supersede_proposals(session, patient_id, now)
    record(
        session,
        patient_id,
        "added",
        now,
        by="therapist",
        by_name=therapist.display_name,
        detail={"exercise": key, "to": dose_of(step)},
    )
    await session.flush()
    return step


async def remove_exercise(
    session: AsyncSession, therapist: Therapist, patient_id: int, key: str, now: datetime
) -> bool:
    if not await can_manage(session, therapist, patient_id):
        return False
    found = await current(session, patient_id, lock=True)
    row = found.row(key) if found else None
    if row is None:
        return False
    await session.delete(row)
    found.rows.remove(row)
    _as_therapist(found, therapist, now)
    await supersede_proposals(session, patient_id, now)
    record(
        session,
        patient_id,
        "removed",
        now,
        by="therapist",
        by_name=therapist.display_name,
        detail={"exercise": key},
    )
    await session.flush()
    return True


async def set_dose(
    session: AsyncSession,
    therapist: Therapist,
    patient_id: int,
    key: str,
    level: int,
    amount: int | None,
    now: datetime,
) -> tuple[Step, Step] | None:
    """Set an exercise's level and amount (the level's start when ``amount`` is None);
    the old and new step, or None when not allowed, not there or out of range."""
    if not await can_manage(session, therapist, patient_id):
        return None
    found = await current(session, patient_id, lock=True)
    row = found.row(key) if found else None
    if row is None or row.exercise not in LIBRARY:
        return None
    exercise = LIBRARY[key]
    if not 1 <= level <= len(exercise.levels):
        return None
    dose = exercise.dose(level)
    amount = dose.low if amount is None else amount
    if not (dose.low <= amount <= dose.high and (amount - dose.low) % dose.step == 0):
        return None
    before = as_step(row)
    after = Step(key, level, dose.sets, amount)
    if before == after:
        return None
    row.level, row.sets, row.amount = after.level, after.sets, after.amount
    _as_therapist(found, therapist, now)
    await supersede_proposals(session, patient_id, now)
    record(
        session,
        patient_id,
        "dose",
        now,
        by="therapist",
        by_name=therapist.display_name,
        detail={"steps": [[key, dose_of(before), dose_of(after)]]},
    )
    await session.flush()
    return before, after


async def set_auto(
    session: AsyncSession, therapist: Therapist, patient_id: int, allowed: bool, now: datetime
) -> bool:
    """Allow (or stop) automatic weekly steps; False when not allowed or nothing to change."""
    if not await can_manage(session, therapist, patient_id):
        return False
    found = await current(session, patient_id, lock=True)
    if found is None or found.programme.auto_progress == allowed:
        return False
    found.programme.auto_progress = allowed
    found.programme.updated_at = now
    record(
        session,
        patient_id,
        "auto_on" if allowed else "auto_off",
        now,
        by="therapist",
        by_name=therapist.display_name,
    )
    return True


# ---------------------------------------------------------------------------------------------
# History
# ---------------------------------------------------------------------------------------------


async def changes(
    session: AsyncSession, user_id: int, *, limit: int | None = None
) -> list[ProgrammeChange]:
    """The patient's programme changes and proposals, newest first."""
    query = (
        select(ProgrammeChange)
        .where(ProgrammeChange.user_id == user_id)
        .order_by(ProgrammeChange.created_at.desc(), ProgrammeChange.id.desc())
    )
    if limit:
        query = query.limit(limit)
    return list(await session.scalars(query))


async def open_proposals(session: AsyncSession, user_ids: Sequence[int]) -> dict[int, str]:
    """For the digest and the patient page: per patient with an open proposal, its direction
    ("up" or "down"; the newest when there are several). One query for all of them."""
    if not user_ids:
        return {}
    rows = await session.execute(
        select(ProgrammeChange.user_id, ProgrammeChange.kind)
        .where(ProgrammeChange.user_id.in_(user_ids), ProgrammeChange.status == Status.PROPOSED)
        .order_by(ProgrammeChange.id)
    )
    return {uid: "up" if kind == "step_up" else "down" for uid, kind in rows}


async def open_proposal(session: AsyncSession, user_id: int) -> ProgrammeChange | None:
    return await session.scalar(
        select(ProgrammeChange)
        .where(ProgrammeChange.user_id == user_id, ProgrammeChange.status == Status.PROPOSED)
        .order_by(ProgrammeChange.id.desc())
        .limit(1)
    )
