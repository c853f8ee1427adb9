"""A patient's data to take away (a CSV of everything, a one-page PDF summary) and erasure.

No Telegram here and no commits. The PDF is given finished, localized text by the caller.
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
from pathlib import Path

import matplotlib
from fpdf import FPDF
from fpdf.enums import XPos, YPos
from sqlalchemy import delete, inspect, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import (
    CheckIn,
    PainScore,
    Programme,
    ProgrammeChange,
    ProgrammeExercise,
    Schedule,
    Therapist,
    TherapistLink,
    TipShown,
    User,
)
from bot.services.progress import Progress, compute_progress
from bot.services.schedule_rules import mask_days, zone

# Stable, machine-readable column names (the right to data portability asks for a
# "structured, commonly used and machine-readable format", GDPR art. 20); values are ISO 8601
# times in the patient's own zone, numbers, and the codes the bot stores.
CSV_COLUMNS = (
    "record",
    "local_datetime",
    "local_date",
    "kind",
    "status",
    "pain_before",
    "pain_after",
    "pain_score",
    "effort",
    "barrier",
    "flagged",
    "next_day_response",
    "completed_local_datetime",
    "detail",
)
WEEKDAY_CODES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DELETE_STATE = "delete"

# DejaVu Sans ships with matplotlib and covers æøå, ñ, á, and the arrows and dashes we print.
_FONTS = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
_FONT_FILES = {"": "DejaVuSans.ttf", "B": "DejaVuSans-Bold.ttf", "I": "DejaVuSans-Oblique.ttf"}


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


def _local_date(when: datetime | None, tz: str) -> str:
    return when.astimezone(zone(tz)).date().isoformat() if when else ""


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _profile_row(user: User, field: str, tz: str) -> dict[str, str] | None:
    """One column of the patient's ``users`` row (every column, so a new one is never missed)."""
    if field == "id":  # our internal key: means nothing outside this database
        return None
    value = getattr(user, field)
    if isinstance(value, datetime):
        return _row("profile", value, tz, kind=field)
    if isinstance(value, dict):
        value = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return _row("profile", None, tz, kind=field, detail=value)


def _row(record: str, when: datetime | None, tz: str, **values: object) -> dict[str, str]:
    row = dict.fromkeys(CSV_COLUMNS, "")
    row.update(record=record, local_datetime=_local(when, tz), local_date=_local_date(when, tz))
    row.update({k: _text(v) for k, v in values.items()})
    return row


async def export_rows(session: AsyncSession, user: User) -> list[dict[str, str]]:
    """Every stored fact about the patient, one dict per CSV row (CSV_COLUMNS as keys)."""
    tz = user.timezone or "UTC"
    rows = [_profile_row(user, attr.key, tz) for attr in inspect(User).column_attrs]
    rows = [row for row in rows if row is not None]
    for s in await session.scalars(
        select(Schedule).where(Schedule.user_id == user.id).order_by(Schedule.local_time)
    ):
        days = " ".join(WEEKDAY_CODES[d] for d in mask_days(s.days))
        rows.append(
            _row("schedule", s.next_due_at, tz, kind="reminder", detail=f"{s.local_time} {days}")
        )

    # Check-ins and standalone scores interleaved in time order: one timeline to read.
    timeline: list[tuple[datetime, dict[str, str]]] = []
    for c in await session.scalars(select(CheckIn).where(CheckIn.user_id == user.id)):
        when = c.due_at or c.created_at
        row = _row(
            "checkin",
            when,
            tz,
            kind=c.kind,
            status=c.status,
            pain_before=c.pain_before,
            pain_after=c.pain_after,
            effort=c.effort,
            barrier=c.barrier,
            flagged=c.flagged,
            next_day_response=c.next_day_response,
            completed_local_datetime=_local(c.completed_at, tz),
        )
        timeline.append((when, row))
    for p in await session.scalars(select(PainScore).where(PainScore.user_id == user.id)):
        timeline.append((p.recorded_at, _row("pain_score", p.recorded_at, tz, pain_score=p.score)))
    rows += [row for _, row in sorted(timeline, key=lambda item: item[0])]

    for tip in await session.scalars(
        select(TipShown).where(TipShown.user_id == user.id).order_by(TipShown.shown_at)
    ):
        rows.append(_row("tip_shown", tip.shown_at, tz, detail=tip.tip_key))
    links = await session.execute(
        select(TherapistLink, Therapist.display_name)
        .join(Therapist, Therapist.id == TherapistLink.therapist_id)
        .where(TherapistLink.patient_id == user.id)
        .order_by(TherapistLink.requested_at)
    )
    for link, name in links:
        status = "revoked" if link.revoked_at else "active" if link.consented_at else "requested"
        when = link.revoked_at or link.consented_at or link.requested_at
        rows.append(_row("therapist_link", when, tz, status=status, detail=name))
    rows += await _programme_rows(session, user, tz)
    role = await session.scalar(select(Therapist).where(Therapist.user_id == user.id))
    if role is not None:
        rows.append(_row("therapist_role", role.granted_at, tz, detail=role.display_name))
    return rows


async def _programme_rows(session: AsyncSession, user: User, tz: str) -> list[dict[str, str]]:
    """The exercise programme (issue 17): each exercise with its dose, and every change with
    who made it and the numbers that led to it."""
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
            _row(
                "programme",
                programme.updated_at,
                tz,
                kind=programme.origin,
                detail=json.dumps(detail, ensure_ascii=False, sort_keys=True),
            )
        )
        for e in await session.scalars(
            select(ProgrammeExercise)
            .where(ProgrammeExercise.programme_id == programme.id)
            .order_by(ProgrammeExercise.position, ProgrammeExercise.id)
        ):
            dose = f"level {e.level}; {e.sets} x {e.amount}"
            rows.append(_row("programme_exercise", None, tz, kind=e.exercise, detail=dose))
    for c in await session.scalars(
        select(ProgrammeChange)
        .where(ProgrammeChange.user_id == user.id)
        .order_by(ProgrammeChange.created_at, ProgrammeChange.id)
    ):
        detail = {"by": c.by, "by_name": c.by_name, "change": c.detail, "reason": c.reason}
        rows.append(
            _row(
                "programme_change",
                c.created_at,
                tz,
                kind=c.kind,
                status=c.status,
                detail=json.dumps(detail, ensure_ascii=False, sort_keys=True),
            )
        )
    return rows


def build_csv(rows: Sequence[dict[str, str]]) -> bytes:
    """RFC 4180 CSV with a header row, UTF-8 with a byte-order mark."""
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    # The BOM makes spreadsheet programs (Excel) read æøå/ñ as UTF-8 instead of a code page.
    return buffer.getvalue().encode("utf-8-sig")


async def collect(session: AsyncSession, user: User, now: datetime) -> Export:
    """Everything /export sends, read in one go: the CSV, and the progress for the PDF."""
    rows = await export_rows(session, user)
    progress = await compute_progress(session, user, now)
    return Export(build_csv(rows), progress, user.timezone or "UTC")


# ---------------------------------------------------------------------------------------------
# PDF
# ---------------------------------------------------------------------------------------------

_TAGS = re.compile(r"<(/?)([bi])>")


def _markdown(line: str) -> str:
    """Our locale strings' Telegram HTML (<b>, <i>, entities) as fpdf2's markdown."""
    marked = _TAGS.sub(lambda m: "**" if m[2] == "b" else "__", line)
    return html.unescape(re.sub(r"<[^>]+>", "", marked))


def build_summary_pdf(
    title: str, subtitle: str, lines: Sequence[str], chart_png: bytes | None, footer: str
) -> bytes:
    """A one-page A4 summary: title, the progress lines, the chart, and a footer note.

    ``lines`` may hold Telegram HTML (<b>, <i>); an empty string is a paragraph gap.
    """
    pdf = FPDF(format="A4", unit="mm")
    pdf.set_auto_page_break(False)  # one page by design: the layout below is sized to fit
    pdf.set_margins(18, 16, 18)
    for style, name in _FONT_FILES.items():
        pdf.add_font("DejaVu", style, str(_FONTS / name))
    pdf.set_title(title)
    pdf.add_page()
    width = pdf.epw
    pdf.set_font("DejaVu", "B", 17)
    pdf.multi_cell(width, 8, title, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("DejaVu", "", 9.5)
    pdf.set_text_color(90, 90, 90)
    pdf.multi_cell(width, 5, subtitle, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_text_color(0, 0, 0)
    pdf.ln(3)
    pdf.set_font("DejaVu", "", 10)
    for line in lines:
        if not line:
            pdf.ln(2)
            continue
        pdf.multi_cell(
            width, 5, _markdown(line), markdown=True, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT
        )
    footer_top = pdf.h - 16 - 10
    if chart_png is not None:
        # Fill the space left above the footer, at the chart's own 5:6 aspect ratio.
        top = pdf.get_y() + 3
        height = min(footer_top - 3 - top, width * 1.2)
        if height > 40:
            chart_width = height / 1.2
            pdf.image(io.BytesIO(chart_png), x=(pdf.w - chart_width) / 2, y=top, w=chart_width)
    pdf.set_y(footer_top)
    pdf.set_font("DejaVu", "I", 8)
    pdf.set_text_color(90, 90, 90)
    pdf.multi_cell(width, 4, footer, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    return bytes(pdf.output())


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
    """Erase every row about the patient and with them every reminder (the cascade does it)."""
    await session.execute(
        delete(User).where(User.id == user_id).execution_options(synchronize_session="fetch")
    )
