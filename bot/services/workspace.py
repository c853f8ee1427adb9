"""The therapist's workspace (issue 16): their own settings, a page per patient, notes.

No Telegram, no commits, no text: views render. Every read about a patient starts from an
ACTIVE link of the asking therapist (``therapists.ACTIVE_LINK``: confirmed, not revoked), so a
second therapist, a revoked link or a forged id gets ``None`` and sees nothing. Weekly figures
and flags are the digest's own (``bot.services.digest``), never computed a second way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import CheckIn, Therapist, TherapistLink, TherapistNote, User
from bot.services import digest, feedback, reminders, therapists
from bot.services.digest import PatientWeek, Period
from bot.services.progress import Progress, compute_progress
from bot.services.schedule_rules import wall_clock_instant, zone
from bot.services.therapists import ACTIVE_LINK

PAGE_WEEKS = 4
NOTE_MAX = 1000  # characters of a note, either way
NOTES_ON_PAGE = 5
# The flags on the list and the page are those of the last seven days (a rolling digest week).
FLAG_WINDOW = timedelta(days=7)


# ---------------------------------------------------------------------------------------------
# The therapist's own settings
# ---------------------------------------------------------------------------------------------


def reschedule_digest(therapist: Therapist, tz: str | None, now: datetime) -> None:
    """The next digest instant from the day, time and zone the therapist has now."""
    therapist.next_digest_at = digest.next_slot(
        therapist.digest_weekday, therapist.digest_time, digest.valid_zone(tz), now
    )


async def set_zone(
    session: AsyncSession, user: User, therapist: Therapist, tz: str, now: datetime
) -> None:
    """The zone serves both roles: the digest's and, if they are a patient, the reminders'."""
    user.timezone = tz
    reschedule_digest(therapist, tz, now)
    if user.setup_done_at is not None:
        await reminders.reschedule_user(session, user, now)


def set_digest_day(user: User, therapist: Therapist, weekday: int, now: datetime) -> None:
    if not 0 <= weekday <= 6:
        raise ValueError(weekday)
    therapist.digest_weekday = weekday
    reschedule_digest(therapist, user.timezone, now)


def set_digest_time(user: User, therapist: Therapist, hhmm: str, now: datetime) -> None:
    therapist.digest_time = hhmm
    reschedule_digest(therapist, user.timezone, now)


async def therapists_with_stale_menu(
    session: AsyncSession, limit: int = 1000
) -> list[tuple[User, int]]:
    """Therapists whose chat menu is unset or in another language than theirs now."""
    rows = await session.execute(
        select(User, Therapist.id)
        .join(Therapist, Therapist.user_id == User.id)
        .where((Therapist.menu_language.is_(None)) | (Therapist.menu_language != User.language))
        .limit(limit)
    )
    return [(user, therapist_id) for user, therapist_id in rows]


# ---------------------------------------------------------------------------------------------
# The list and the page
# ---------------------------------------------------------------------------------------------


def rolling_week(now: datetime) -> Period:
    """The seven days up to now (and the seven before, for the average's change)."""
    return Period(now - 2 * FLAG_WINDOW, now - FLAG_WINDOW, now, digest.week_key(now.date()), now)


@dataclass(frozen=True)
class ListedPatient:
    link_id: int
    name: str | None
    flags: int
    since: datetime


async def patient_list(
    session: AsyncSession, therapist: Therapist, now: datetime
) -> list[ListedPatient]:
    """Every patient sharing now, flagged first (most flags first), then by name."""
    result = (await digest.compute(session, [therapist.id], rolling_week(now)))[therapist.id]
    since = {p.link_id: p.since for p in await therapists.patients_of(session, therapist)}
    listed = [
        ListedPatient(p.link_id, p.name, len(p.flag_details), since.get(p.link_id, now))
        for p in result.patients
    ]
    return sorted(listed, key=lambda p: (-p.flags, (p.name or "").casefold(), p.link_id))


@dataclass(frozen=True)
class Linked:
    link_id: int
    since: datetime
    patient: User


async def active_link(session: AsyncSession, therapist_id: int, link_id: int) -> Linked | None:
    """The patient behind one of this therapist's active links; None for anything else."""
    row = (
        await session.execute(
            select(TherapistLink.id, TherapistLink.consented_at, User)
            .join(User, User.id == TherapistLink.patient_id)
            .where(
                TherapistLink.id == link_id,
                TherapistLink.therapist_id == therapist_id,
                *ACTIVE_LINK,
            )
        )
    ).first()
    return Linked(*row) if row else None


@dataclass(frozen=True)
class SessionRow:
    """One check-in of the period as the page and the report list it (local date)."""

    day: date
    kind: str  # prompt | log
    status: str
    before: int | None
    after: int | None
    effort: str | None
    next_morning: str | None
    flagged: bool
    barrier: str | None
    at: datetime | None = None  # the slot (or, for /log, when it was recorded), UTC


@dataclass(frozen=True)
class NoteView:
    author: str
    text: str
    at: datetime


@dataclass(frozen=True)
class PatientPage:
    link_id: int
    name: str | None
    since: datetime
    weeks: list[tuple[Period, PatientWeek]]  # newest first, none before the patient joined
    flags: list[feedback.Flag]  # the last 7 days, by the digest's rules (issue 13)
    notes: list[NoteView]  # oldest first
    progress: Progress  # the chart's data (the patient's own weeks)
    current: PatientWeek  # the last seven days (the flags' numbers refer to it)


def page_periods(now: datetime, tz: str, weeks: int = PAGE_WEEKS) -> list[Period]:
    """This week so far and the full weeks before it (Monday to Monday in ``tz``), newest first."""
    current = digest.current_week(now, tz)
    monday = current.start.astimezone(zone(tz)).date()
    periods = [current]
    for n in range(1, weeks):
        first = monday - timedelta(days=7 * n)
        start = wall_clock_instant(first, time(0), tz)
        end = wall_clock_instant(first + timedelta(days=7), time(0), tz)
        prev = wall_clock_instant(first - timedelta(days=7), time(0), tz)
        periods.append(Period(prev, start, end, digest.week_key(first), end))
    return periods


async def _rows(
    session: AsyncSession, patient: User, start: datetime, end: datetime
) -> list[SessionRow]:
    tz = zone(digest.valid_zone(patient.timezone))
    found = await session.scalars(
        select(CheckIn)
        .where(CheckIn.user_id == patient.id, CheckIn.created_at >= start - timedelta(days=1))
        .order_by(CheckIn.created_at)
    )
    rows = []
    for c in found:
        at = c.due_at or c.created_at
        if not start <= at < end:
            continue
        rows.append(
            SessionRow(
                at.astimezone(tz).date(),
                c.kind,
                c.status,
                c.pain_before,
                c.pain_after,
                c.effort,
                c.next_day_response,
                c.flagged,
                c.barrier,
                at,
            )
        )
    return sorted(rows, key=lambda r: r.day)


async def notes_between(
    session: AsyncSession, therapist_id: int, patient_id: int, limit: int = NOTES_ON_PAGE
) -> list[NoteView]:
    found = await session.scalars(
        select(TherapistNote)
        .where(TherapistNote.therapist_id == therapist_id, TherapistNote.patient_id == patient_id)
        .order_by(TherapistNote.created_at.desc(), TherapistNote.id.desc())
        .limit(limit)
    )
    return [NoteView(n.author, n.text, n.created_at) for n in reversed(list(found))]


async def patient_page(
    session: AsyncSession, therapist: Therapist, link_id: int, now: datetime, tz: str
) -> PatientPage | None:
    """One patient's last four weeks for their therapist; None unless the link is active."""
    linked = await active_link(session, therapist.id, link_id)
    if linked is None:
        return None
    patient = linked.patient
    weeks: list[tuple[Period, PatientWeek]] = []
    for period in page_periods(now, tz):
        if patient.consent_at is not None and period.end <= patient.consent_at:
            break  # weeks before the patient joined are not theirs to show
        result = await digest.compute(session, [therapist.id], period, link_ids=[link_id])
        [week] = result[therapist.id].patients or [None]
        if week is None:  # the link ended meanwhile
            return None
        weeks.append((period, week))
    recent = rolling_week(now)
    [current] = (await digest.compute(session, [therapist.id], recent, link_ids=[link_id]))[
        therapist.id
    ].patients
    return PatientPage(
        link_id=link_id,
        name=patient.display_name,
        since=linked.since,
        weeks=weeks,
        flags=current.flag_details,
        current=current,
        notes=await notes_between(session, therapist.id, patient.id),
        progress=await compute_progress(session, patient, now, weeks=PAGE_WEEKS),
    )


# ---------------------------------------------------------------------------------------------
# Notes
# ---------------------------------------------------------------------------------------------


def check_note(text: str) -> str:
    """The note as it will be stored; ValueError("empty" | "too_long")."""
    text = (text or "").strip()
    if not text:
        raise ValueError("empty")
    if len(text) > NOTE_MAX:
        raise ValueError("too_long")
    return text


@dataclass(frozen=True)
class Delivery:
    """Who gets a note, in which language, under which name, and how they answer it."""

    note_id: int
    link_id: int
    to_telegram_id: int
    to_language: str
    from_name: str | None
    to_name: str | None = None  # the recipient as the writer knows them


async def note_to_patient(
    session: AsyncSession, therapist: Therapist, link_id: int, text: str, now: datetime
) -> Delivery | None:
    """Store the therapist's note for a patient who shares now; None if the link is not active."""
    linked = await active_link(session, therapist.id, link_id)
    if linked is None:
        return None
    note = TherapistNote(
        therapist_id=therapist.id,
        patient_id=linked.patient.id,
        author="therapist",
        text=check_note(text),
        created_at=now,
    )
    session.add(note)
    await session.flush()
    return Delivery(
        note.id,
        link_id,
        linked.patient.telegram_id,
        linked.patient.language,
        therapist.display_name,
        linked.patient.display_name,
    )


async def reply_target(session: AsyncSession, patient: User, note_id: int) -> Delivery | None:
    """The therapist a patient answers (through the note they got), if still shared with."""
    row = (
        await session.execute(
            select(TherapistNote, TherapistLink.id, Therapist.display_name, User)
            .join(Therapist, Therapist.id == TherapistNote.therapist_id)
            .join(User, User.id == Therapist.user_id)
            .join(
                TherapistLink,
                (TherapistLink.therapist_id == Therapist.id)
                & (TherapistLink.patient_id == patient.id),
            )
            .where(
                TherapistNote.id == note_id, TherapistNote.patient_id == patient.id, *ACTIVE_LINK
            )
        )
    ).first()
    if row is None:
        return None
    note, link_id, therapist_name, therapist_user = row
    return Delivery(
        note.id, link_id, therapist_user.telegram_id, therapist_user.language, therapist_name
    )


async def note_to_therapist(
    session: AsyncSession, patient: User, note_id: int, text: str, now: datetime
) -> Delivery | None:
    """Store the patient's answer; the delivery names the patient (their shared first name)."""
    target = await reply_target(session, patient, note_id)
    if target is None:
        return None
    first = await session.get(TherapistNote, note_id)
    reply = TherapistNote(
        therapist_id=first.therapist_id,
        patient_id=patient.id,
        author="patient",
        text=check_note(text),
        created_at=now,
    )
    session.add(reply)
    await session.flush()
    return Delivery(
        reply.id,
        target.link_id,
        target.to_telegram_id,
        target.to_language,
        patient.display_name,
        target.from_name,
    )


# ---------------------------------------------------------------------------------------------
# The clinic report's data (the therapist's [Report] and the patient's own /export)
# ---------------------------------------------------------------------------------------------


REPORT_PROGRAMME_CHANGES = 8  # the report's page two has room for a few lines


@dataclass(frozen=True)
class ReportData:
    first_name: str | None
    start: date  # first local day covered
    end: date  # last local day covered (today)
    timezone: str
    sessions: list[SessionRow]  # every check-in of the period, oldest first
    progress: Progress
    # The exercise programme's changes and proposals in the period, newest first (issue 17).
    programme_changes: list = field(default_factory=list)


async def report_data(
    session: AsyncSession, patient: User, first_name: str | None, now: datetime
) -> ReportData:
    """The patient's last four weeks (their own zone): the chart's data and every check-in."""
    progress = await compute_progress(session, patient, now, weeks=PAGE_WEEKS)
    tz = digest.valid_zone(patient.timezone)
    start = progress.weeks[0].start
    if patient.consent_at is not None:  # no days before the patient joined
        start = max(start, patient.consent_at.astimezone(zone(tz)).date())
    start_at = wall_clock_instant(start, time(0), tz)
    rows = await _rows(session, patient, start_at, now + timedelta(seconds=1))
    from bot.services import programmes  # programmes imports therapists, as this module does

    changes = [
        c
        for c in await programmes.changes(session, patient.id, limit=REPORT_PROGRAMME_CHANGES)
        if c.created_at >= start_at
    ]
    return ReportData(first_name, start, progress.today, tz, rows, progress, changes)


async def report_for_therapist(
    session: AsyncSession, therapist: Therapist, link_id: int, now: datetime
) -> ReportData | None:
    linked = await active_link(session, therapist.id, link_id)
    if linked is None:
        return None
    return await report_data(session, linked.patient, linked.patient.display_name, now)
