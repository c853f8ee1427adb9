"""A patient's data to take away (a CSV of everything; the PDF is the clinic report of
``bot/report.py``) and erasure.

No Telegram here and no commits.
Erasure is one DELETE of the ``users`` row: every other row about a patient hangs off
``users.id`` with ON DELETE CASCADE (``bot/db/models.py``; SQLite needs
``PRAGMA foreign_keys=ON``, set on every connection by ``bot.db.session.create_engine``).
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import delete, inspect, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot import l10n
from bot.db.models import (
    CheckIn,
    HabitEvent,
    PainScore,
    Programme,
    ProgrammeChange,
    ProgrammeExercise,
    Schedule,
    Therapist,
    TherapistLink,
    TherapistNote,
    TipShown,
    User,
)
from bot.i18n import has, t
from bot.services.progress import Progress, compute_progress
from bot.services.schedule_rules import mask_days, zone

# The columns, by internal name; the header row names them in the patient's language
# (``export.column.*``). Each time is given twice: as the patient reads it (their date and
# clock) and as ISO 8601 in their own zone, which any program can read back (the right to
# data portability asks for a "structured, commonly used and machine-readable format",
# GDPR art. 20).
CSV_COLUMNS = (
    "record",
    "date",
    "time",
    "local_datetime",
    "kind",
    "status",
    "pain_before",
    "pain_after",
    "pain_score",
    "effort",
    "barrier",
    "flagged",
    "next_day_response",
    "completed",
    "completed_local_datetime",
    "detail",
)
# Columns of the users row that are the bot's own bookkeeping, not facts about the patient.
INTERNAL_FIELDS = frozenset({"id", "conv_state", "conv_data"})
DELETE_STATE = "delete"


@dataclass(frozen=True)
class Export:
    """What /export sends: the CSV bytes, and the progress the PDF summarises."""

    csv: bytes
    progress: Progress
    timezone: str


# ---------------------------------------------------------------------------------------------
# CSV
# ---------------------------------------------------------------------------------------------


def _local(when: datetime | None, tz: str) -> str:
    return when.astimezone(zone(tz)).isoformat(timespec="seconds") if when else ""


def _value(group: str, code: object, loc: str) -> str:
    """A stored code in the patient's words ('completed' -> 'gennemført'); the code itself
    when it has no translation (a value added later stays readable)."""
    if code is None or code == "":
        return ""
    key = f"export.{group}.{code}"
    return t(key, loc) if has(key, loc) else str(code)


def _yes_no(value: bool, loc: str) -> str:
    return t("export.answer_yes" if value else "export.answer_no", loc)


def _text(value: object, loc: str) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return _yes_no(value, loc)
    if isinstance(value, date):
        return l10n.format_numeric_date(value, loc)
    return str(value)


class _Rows:
    """Builds rows for one patient: their zone and language."""

    def __init__(self, tz: str, loc: str) -> None:
        self.tz, self.loc = tz, loc

    def row(self, record: str, when: datetime | None, **values: object) -> dict[str, str]:
        row = dict.fromkeys(CSV_COLUMNS, "")
        row["record"] = _value("record", record, self.loc)
        if when is not None:
            local = when.astimezone(zone(self.tz))
            row["date"] = l10n.format_numeric_date(local.date(), self.loc)
            row["time"] = l10n.format_clock(local, self.loc)
            row["local_datetime"] = _local(when, self.tz)
        row.update({k: v if isinstance(v, str) else _text(v, self.loc) for k, v in values.items()})
        return row

    def profile(self, user: User, field: str) -> dict[str, str] | None:
        """One column of the patient's ``users`` row (every column but the bot's bookkeeping,
        so a new one is never missed)."""
        if field in INTERNAL_FIELDS:
            return None
        label = _value("field", field, self.loc)
        value = getattr(user, field)
        if isinstance(value, datetime):
            return self.row("profile", value, kind=label)
        if field == "language" and value:
            value = t(f"common.language_name.{value}", value)
        elif field == "timezone" and value:
            value = f"{l10n.zone_name(value, self.loc)} ({value})"
        elif isinstance(value, dict):
            value = json.dumps(value, ensure_ascii=False, sort_keys=True)
        return self.row("profile", None, kind=label, detail=_text(value, self.loc))


def _tip_text(key: str, loc: str) -> str:
    """The tip as the patient read it (numbers it quoted are not stored: shown as '…')."""
    from bot.services.education import TIPS_BY_KEY

    tip = TIPS_BY_KEY.get(key)
    if tip is None:
        return key  # a tip since removed from the library
    return html.unescape(
        re.sub(r"<[^>]+>", "", t(f"tips.{key}", loc, **dict.fromkeys(tip.placeholders, "…")))
    )


async def export_rows(session: AsyncSession, user: User) -> list[dict[str, str]]:
    """Every stored fact about the patient, one dict per CSV row (CSV_COLUMNS as keys), in
    the patient's language."""
    tz, loc = user.timezone or "UTC", user.language
    out = _Rows(tz, loc)
    rows = [out.profile(user, attr.key) for attr in inspect(User).column_attrs]
    rows = [row for row in rows if row is not None]
    for s in await session.scalars(
        select(Schedule).where(Schedule.user_id == user.id).order_by(Schedule.local_time)
    ):
        days = ", ".join(l10n.weekday_name(d, loc, "abbreviated") for d in mask_days(s.days))
        rows.append(
            out.row(
                "schedule",
                s.next_due_at,
                kind=_value("kind", "reminder", loc),
                detail=f"{l10n.format_hhmm(s.local_time, loc)}: {days}",
            )
        )

    # Check-ins and standalone scores interleaved in time order: one timeline to read.
    timeline: list[tuple[datetime, dict[str, str]]] = []
    for c in await session.scalars(select(CheckIn).where(CheckIn.user_id == user.id)):
        when = c.due_at or c.created_at
        completed = ""
        if c.completed_at:
            completed = l10n.format_numeric_datetime(c.completed_at, tz, loc)
        row = out.row(
            "checkin",
            when,
            kind=_value("kind", c.kind, loc),
            status=_value("status", c.status, loc),
            pain_before=c.pain_before,
            pain_after=c.pain_after,
            effort=_value("effort", c.effort, loc),
            barrier=_value("barrier", c.barrier, loc),
            flagged=_yes_no(bool(c.flagged), loc),
            next_day_response=_value("next_day", c.next_day_response, loc),
            completed=completed,
            completed_local_datetime=_local(c.completed_at, tz),
        )
        timeline.append((when, row))
    for p in await session.scalars(select(PainScore).where(PainScore.user_id == user.id)):
        timeline.append((p.recorded_at, out.row("pain_score", p.recorded_at, pain_score=p.score)))
    rows += [row for _, row in sorted(timeline, key=lambda item: item[0])]

    for tip in await session.scalars(
        select(TipShown).where(TipShown.user_id == user.id).order_by(TipShown.shown_at)
    ):
        rows.append(out.row("tip_shown", tip.shown_at, detail=_tip_text(tip.tip_key, loc)))
    links = await session.execute(
        select(TherapistLink, Therapist.display_name)
        .join(Therapist, Therapist.id == TherapistLink.therapist_id)
        .where(TherapistLink.patient_id == user.id)
        .order_by(TherapistLink.requested_at)
    )
    for link, name in links:
        status = "revoked" if link.revoked_at else "active" if link.consented_at else "requested"
        when = link.revoked_at or link.consented_at or link.requested_at
        rows.append(
            out.row("therapist_link", when, status=_value("link", status, loc), detail=name or "")
        )
    rows += await _programme_rows(session, user, out)
    # Times away and returns (issue 14): the come-back offer, weekly reminders, how they came back.
    for event in await session.scalars(
        select(HabitEvent).where(HabitEvent.user_id == user.id).order_by(HabitEvent.at)
    ):
        rows.append(
            out.row(
                "habit_event",
                event.at,
                kind=_value("habit_kind", event.kind, loc),
                detail=_value("habit_detail", event.detail, loc),
            )
        )
    role = await session.scalar(select(Therapist).where(Therapist.user_id == user.id))
    if role is not None:
        rows.append(out.row("therapist_role", role.granted_at, detail=role.display_name or ""))
    # Notes with therapists, both ways (as a patient, and as a therapist if they are one).
    mine = TherapistNote.patient_id == user.id
    if role is not None:
        mine = mine | (TherapistNote.therapist_id == role.id)
    for note in await session.scalars(
        select(TherapistNote).where(mine).order_by(TherapistNote.created_at, TherapistNote.id)
    ):
        author = _value("author", note.author, loc)
        rows.append(out.row("note", note.created_at, kind=author, detail=note.text))
    return rows


async def _programme_rows(session: AsyncSession, user: User, out: _Rows) -> list[dict[str, str]]:
    """The exercise programme (issue 17): each exercise with its dose, and every change with
    who made it and the numbers that led to it (as JSON: they are for reading back)."""
    loc = out.loc
    rows = []
    programme = await session.scalar(select(Programme).where(Programme.user_id == user.id))
    if programme is not None:
        detail = {
            "origin": programme.origin,
            "starter": programme.starter,
            "set_by": programme.set_by,
            "auto_progress": programme.auto_progress,
        }
        rows.append(
            out.row(
                "programme",
                programme.updated_at,
                kind=_value("programme_origin", programme.origin, loc),
                detail=json.dumps(detail, ensure_ascii=False, sort_keys=True),
            )
        )
        for e in await session.scalars(
            select(ProgrammeExercise)
            .where(ProgrammeExercise.programme_id == programme.id)
            .order_by(ProgrammeExercise.position, ProgrammeExercise.id)
        ):
            name_key = f"exercises.{e.exercise}.name"
            name = t(name_key, loc) if has(name_key, loc) else e.exercise
            dose = f"{t('plan.level', loc, level=e.level)}; {e.sets} × {e.amount}"
            rows.append(out.row("programme_exercise", None, kind=name, detail=dose))
    for c in await session.scalars(
        select(ProgrammeChange)
        .where(ProgrammeChange.user_id == user.id)
        .order_by(ProgrammeChange.created_at, ProgrammeChange.id)
    ):
        detail = {"by": c.by, "by_name": c.by_name, "change": c.detail, "reason": c.reason}
        rows.append(
            out.row(
                "programme_change",
                c.created_at,
                kind=c.kind,
                status=c.status,
                detail=json.dumps(detail, ensure_ascii=False, sort_keys=True),
            )
        )
    return rows


def csv_delimiter(loc: str) -> str:
    """';' where the language writes a decimal comma (Danish, Spanish: Excel there expects
    it), ',' elsewhere."""
    return ";" if l10n.decimal_symbol(loc) == "," else ","


def build_csv(rows: Sequence[dict[str, str]], loc: str = "en") -> bytes:
    """RFC 4180 CSV with a header row in the patient's language, UTF-8 with a byte-order mark,
    separated as the patient's spreadsheet program expects."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=csv_delimiter(loc), lineterminator="\r\n")
    writer.writerow([t(f"export.column.{c}", loc) for c in CSV_COLUMNS])
    writer.writerows([row[c] for c in CSV_COLUMNS] for row in rows)
    # The BOM makes spreadsheet programs (Excel) read æøå/ñ as UTF-8 instead of a code page.
    return buffer.getvalue().encode("utf-8-sig")


async def collect(session: AsyncSession, user: User, now: datetime) -> Export:
    """Everything /export sends, read in one go: the CSV, and the progress for the PDF."""
    rows = await export_rows(session, user)
    progress = await compute_progress(session, user, now)
    return Export(build_csv(rows, user.language), progress, user.timezone or "UTC")


# ---------------------------------------------------------------------------------------------
# PDF
# ---------------------------------------------------------------------------------------------

# ---------------------------------------------------------------------------------------------
# Erasure, behind a confirmation
# ---------------------------------------------------------------------------------------------


def await_delete_confirmation(user: User, message_id: int) -> None:
    """Remember which /delete question may be confirmed; whatever the patient was doing is
    kept aside so Cancel can put it back (a half-done setup, say).
    """
    if user.conv_state == DELETE_STATE:  # asked again: keep what the first ask set aside
        resume = (user.conv_data or {}).get("resume", [None, None])
    else:
        resume = [user.conv_state, user.conv_data]
    user.conv_state = DELETE_STATE
    user.conv_data = {"message_id": message_id, "resume": resume}


def delete_pending(user: User, message_id: int | None) -> bool:
    """Whether this button's message is the /delete question still waiting for an answer."""
    return (
        user.conv_state == DELETE_STATE
        and message_id is not None
        and (user.conv_data or {}).get("message_id") == message_id
    )


def cancel_delete(user: User) -> None:
    state, data = (user.conv_data or {}).get("resume", [None, None])
    user.conv_state, user.conv_data = state, data


async def erase_patient(session: AsyncSession, user_id: int) -> None:
    """Erase every row about the patient and with them every reminder (the cascade does it).

    A therapist's links go with them; so do the first names their patients shared only with
    them (``users.display_name`` is kept only while some therapist may see it).
    """
    from bot.services.therapists import forget_names, linked_patient_ids

    patients = await linked_patient_ids(session, user_id)
    await session.execute(
        delete(User).where(User.id == user_id).execution_options(synchronize_session="fetch")
    )
    await forget_names(session, patients)
