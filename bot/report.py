"""The clinic report (issue 16): one patient's last four weeks as a PDF of one or two A4 pages.

The same report serves the therapist ([Report (PDF)] on a patient's page) and the patient
(/export): the patient's first name and the period on top, third-person wording, the
progress chart (pain before/after each session, sessions per week), a table of sessions
(date, before, after, effort, next-morning answer, flag), the reasons given for skipping,
and a note that every score is self-reported. DejaVu Sans (shipped with matplotlib) renders
æøå, ñ and the arrows. CPU-bound (matplotlib, fpdf2): callers run it in a thread.
"""

from __future__ import annotations

import html
import io
import re
from collections import Counter
from pathlib import Path

import matplotlib
from fpdf import FPDF
from fpdf.enums import XPos, YPos

from bot.charts import render_progress_chart
from bot.handlers.digest_view import day_month, number, signed
from bot.i18n import t
from bot.services import feedback
from bot.services.reminders import Status
from bot.services.workspace import ReportData, SessionRow

# DejaVu Sans ships with matplotlib and covers æøå, ñ, á, and the arrows and dashes we print.
FONTS = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
FONT_FILES = {"": "DejaVuSans.ttf", "B": "DejaVuSans-Bold.ttf", "I": "DejaVuSans-Oblique.ttf"}

# Page two holds the table: about 34 rows of 5.5 mm fit under its heading with the skip
# reasons and the footer; older rows are counted, and the CSV export has them all.
MAX_ROWS = 34
MARGIN = 16


def _name(data: ReportData, loc: str) -> str:
    return data.first_name or t("workspace.unnamed_patient", loc)


def _status(row: SessionRow, loc: str) -> str:
    if row.status == Status.COMPLETED:
        key = "logged" if row.kind == "log" else "completed"
    elif row.status in (Status.SKIPPED, Status.MISSED):
        key = str(row.status)
    else:
        key = "other"
    return t(f"workspace.report_status.{key}", loc)


def table_rows(data: ReportData, loc: str) -> list[list[str]]:
    """The table's rows as text, oldest first (the newest MAX_ROWS)."""
    rows = []
    for r in data.sessions[-MAX_ROWS:]:
        rows.append(
            [
                day_month(r.day, loc),
                _status(r, loc),
                "" if r.before is None else str(r.before),
                "" if r.after is None else str(r.after),
                t(f"checkin.effort_{r.effort}", loc) if r.effort else "",
                t(f"checkin.next_day_{r.next_morning}", loc) if r.next_morning else "",
                t("workspace.report_flag_yes", loc) if r.flagged else "",
            ]
        )
    return rows


def summary_lines(data: ReportData, loc: str) -> list[str]:
    name = _name(data, loc)
    weeks = data.progress.weeks
    done = ", ".join(f"{day_month(w.start, loc)}: {w.done}/{w.planned}" for w in weeks)
    no_value = t("progress.no_value", loc)
    pain = ", ".join(
        f"{day_month(w.start, loc)}: "
        + (no_value if w.pain_mean is None else number(w.pain_mean, loc))
        for w in weeks
    )
    effect = data.progress.effect
    if effect.sessions:
        effect_line = t(
            "workspace.report_effect",
            loc,
            name=name,
            sessions=t("progress.sessions", loc, count=effect.sessions),
            change=signed(effect.mean_change, loc),
            fell=effect.fell,
        )
    else:
        effect_line = t("workspace.report_effect_none", loc, name=name)
    return [
        t("workspace.report_weeks", loc, list=done),
        t("workspace.report_pain", loc, list=pain),
        effect_line,
    ]


def skip_lines(data: ReportData, loc: str) -> list[str]:
    counts = Counter(r.barrier for r in data.sessions if r.barrier)
    if not counts:
        return [t("workspace.report_skips_none", loc)]
    lines = []
    for barrier, count in counts.most_common():
        days = ", ".join(day_month(r.day, loc) for r in data.sessions if r.barrier == barrier)
        label = t(f"therapist.barrier.{barrier}", loc)
        lines.append(f"{t('therapist.barrier_count', loc, barrier=label, count=count)}: {days}")
    return lines


def _plain(text: str) -> str:
    """Telegram HTML as the PDF's plain text."""
    return html.unescape(re.sub(r"<[^>]+>", "", text))


def programme_lines(data: ReportData, loc: str) -> list[str]:
    """The programme changes of the period, in the third person, as /progress words them."""
    from bot.handlers.plan import history_lines
    from bot.services.schedule_rules import zone

    tz = zone(data.timezone)
    lines = history_lines(
        data.programme_changes,
        lambda when: day_month(when.astimezone(tz).date(), loc),
        loc,
        patient_name=_name(data, loc),
    )
    return [_plain(line) for line in lines]


def filename(data: ReportData, loc: str) -> str:
    """'report-Ana-2026-11-23.pdf': letters of the name only (no path or shell characters)."""
    safe = re.sub(r"[^\w-]+", "", (data.first_name or "").replace(" ", "-"))[:32]
    stem = t("workspace.report_filename", loc)
    return f"{stem}-{safe + '-' if safe else ''}{data.end.isoformat()}.pdf"


def build_report(data: ReportData, loc: str) -> bytes:
    name = _name(data, loc)
    pdf = FPDF(format="A4", unit="mm")
    pdf.set_auto_page_break(True, margin=MARGIN)
    pdf.set_margins(MARGIN, MARGIN, MARGIN)
    for style, file in FONT_FILES.items():
        pdf.add_font("DejaVu", style, str(FONTS / file))
    title = t("workspace.report_title", loc, name=name)
    pdf.set_title(title)
    pdf.add_page()
    width = pdf.epw

    def heading(text: str, size: float = 12) -> None:
        pdf.set_font("DejaVu", "B", size)
        pdf.multi_cell(width, 7, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_font("DejaVu", "", 9.5)

    def para(text: str) -> None:
        pdf.multi_cell(width, 5, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    heading(title, 16)
    pdf.set_font("DejaVu", "", 9.5)
    pdf.set_text_color(80, 80, 80)
    para(
        t(
            "workspace.report_period",
            loc,
            start=day_month(data.start, loc, year=True),
            end=day_month(data.end, loc, year=True),
            zone=data.timezone,
            today=day_month(data.end, loc, year=True),
        )
    )
    pdf.set_text_color(0, 0, 0)
    pdf.ln(2)
    heading(t("workspace.report_summary_title", loc))
    for line in summary_lines(data, loc):
        para(line)
    if data.progress.has_data:
        png = render_progress_chart(data.progress, loc)
        top = pdf.get_y() + 3
        height = min(pdf.h - MARGIN - top, 150)
        pdf.image(io.BytesIO(png), x=(pdf.w - height / 1.2) / 2, y=top, h=height)

    pdf.add_page()
    heading(t("workspace.report_sessions_title", loc))
    rows = table_rows(data, loc)
    if not rows:
        para(t("workspace.report_no_sessions", loc))
    else:
        if len(data.sessions) > MAX_ROWS:
            para(t("workspace.report_more_rows", loc, count=len(data.sessions) - MAX_ROWS))
        header = [
            t(f"workspace.report_col_{c}", loc)
            for c in ("date", "status", "before", "after", "effort", "next", "flag")
        ]
        pdf.set_font("DejaVu", "", 8.5)
        with pdf.table(
            col_widths=(18, 20, 11, 11, 16, 18, 14),
            line_height=5.5,
            text_align=("LEFT", "LEFT", "CENTER", "CENTER", "LEFT", "LEFT", "LEFT"),
            first_row_as_headings=True,
        ) as table:
            for values in [header, *rows]:
                row = table.row()
                for value in values:
                    row.cell(value)
    pdf.ln(3)
    heading(t("workspace.report_skips_title", loc))
    for line in skip_lines(data, loc):
        para(line)
    if data.programme_changes:  # the programme's steps and their reasons (issue 17)
        pdf.ln(3)
        heading(t("workspace.report_programme_title", loc))
        for line in programme_lines(data, loc):
            para(line)
    pdf.ln(3)
    pdf.set_font("DejaVu", "I", 8)
    pdf.set_text_color(80, 80, 80)
    para(
        t(
            "workspace.report_footer",
            loc,
            name=name,
            meaningful=feedback.MEANINGFUL_POINTS,
            limit=feedback.ACCEPTABLE_PAIN,
            above_usual=feedback.ABOVE_USUAL_ALLOWED,
            high=feedback.HIGH_PAIN,
            large_rise=feedback.LARGE_RISE,
        )
    )
    return bytes(pdf.output())
