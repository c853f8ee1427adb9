"""The therapist's digest as Telegram messages: a block per patient in the therapist's language,
packed into messages under Telegram's 4096-character limit, and the practice's chart.

Used by /digest (on demand) and by the weekly job (``bot.scheduling.digest``).
"""

from __future__ import annotations

import html
import logging
from datetime import date, timedelta
from typing import Any

from telegram import Bot

from bot import digest_chart, l10n
from bot.i18n import t
from bot.services import feedback
from bot.services.digest import Digest, Flag, PatientWeek, Period
from bot.services.schedule_rules import zone
from bot.workers import run_cpu

log = logging.getLogger(__name__)

# sendMessage: at most 4096 characters (UTF-16 code units) after entity parsing. We measure
# the HTML source, which is never shorter than what Telegram counts.
MAX_TEXT = 4096
BLOCK_SEPARATOR = "\n\n"


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def number(value: float, loc: str) -> str:
    """One decimal, written the reader's way (CLDR, through bot.l10n: '3.5' / '3,5')."""
    return l10n.format_number(value, loc, 1)


def signed(value: float, loc: str) -> str:
    if round(value, 1) == 0:
        return "±" + number(0, loc)
    return l10n.format_number(value, loc, 1, signed=True)


def day_month(day: date, loc: str, *, year: bool = False) -> str:
    """'16 November' / '16. november' / '16 de noviembre' (and the year when asked)."""
    return l10n.format_date(day, loc, year=year)


def period_text(digest: Digest, tz: str, loc: str) -> str:
    """'16 November – 22 November 2026': the local days the digest covers."""
    zi = zone(tz)
    first = digest.period.start.astimezone(zi).date()
    last = (digest.period.end - timedelta(microseconds=1)).astimezone(zi).date()
    return t(
        "therapist.period",
        loc,
        start=day_month(first, loc),
        end=day_month(last, loc, year=True),
    )


def patient_label(patient: PatientWeek, n: int, loc: str) -> str:
    """The patient's first name (as they shared it), or a number when there is none."""
    return patient.name or t("therapist.patient_unnamed", loc, n=n)


def patient_block(
    patient: PatientWeek, n: int, loc: str, period: Period | None = None, tz: str = "UTC"
) -> str:
    """Everything about one patient: never split across messages."""
    p = patient
    name = html.escape(patient_label(p, n, loc))
    lines = [f"<b>{n}. {name}</b>" + (" ⚠️" if p.flags else "")]
    if period is not None and p.joined is not None and p.joined >= period.start:
        # A patient who joined this week (or after it) has no earlier weeks: no "0 of 0".
        joined = day_month(p.joined.astimezone(zone(tz)).date(), loc)
        if p.joined >= period.end:
            lines.append(t("workspace.digest_not_yet", loc, date=joined))
            return "\n".join(lines)
        lines.append(t("workspace.digest_joined", loc, date=joined))
    sessions = t("therapist.digest_sessions", loc, done=p.done, planned=p.planned)
    if p.logged:
        sessions += t("therapist.digest_logged", loc, count=p.logged)
    lines.append(sessions)
    lines.append(_pain_line(p, loc))
    if (change := p.session_change) is not None:
        lines.append(
            t(
                "therapist.digest_session_change",
                loc,
                change=signed(change, loc),
                count=p.change_n,
            )
        )
    if any(p.next_day.values()):
        lines.append(t("therapist.digest_next_day", loc, **p.next_day))
    flags = p.flag_details
    if any(p.barriers.values()) and not any(f.kind is Flag.BARRIERS for f in flags):
        # Reasons for skipping are information; only repeated pain or worry is a flag.
        lines.append(t("therapist.digest_barriers", loc, list=_barrier_list(p, loc)))
    lines.extend(_flag_line(flag, p, loc) for flag in flags)
    if p.away is not None:  # issue 14: days without any answer, and the way back
        start = day_month(p.away.start.date(), loc)
        if p.away.end is None:
            lines.append(t("habit.digest_away_open", loc, start=start))
        else:
            end = day_month(p.away.end.date(), loc)
            lines.append(t("habit.digest_away_back", loc, start=start, end=end))
    if p.proposal is not None:  # issue 17: a programme change waiting for the therapist
        lines.append(t(f"plan.t_open_{p.proposal}", loc))
    return "\n".join(lines)


def _pain_line(p: PatientWeek, loc: str) -> str:
    if p.pain_n == 0:
        return t("therapist.digest_pain_none", loc)
    if p.pain_avg is None:  # fewer scores than an average needs (feedback.WEEK_MIN_SCORES)
        return t("therapist.digest_pain_few", loc, count=p.pain_n, min=feedback.WEEK_MIN_SCORES)
    if p.avg_change is None:
        return t("therapist.digest_pain", loc, avg=number(p.pain_avg, loc))
    return t(
        "therapist.digest_pain_vs",
        loc,
        avg=number(p.pain_avg, loc),
        prev=number(p.prev_pain_avg, loc),
        change=signed(p.avg_change, loc),
    )


def _barrier_list(p: PatientWeek, loc: str) -> str:
    return ", ".join(
        t("therapist.barrier_count", loc, barrier=t(f"therapist.barrier.{b}", loc), count=c)
        for b, c in p.barriers.items()
        if c
    )


def _flag_line(flag: feedback.Flag, p: PatientWeek, loc: str) -> str:
    """One flag with its date and numbers (the rules decided it; this only words it)."""
    n = flag.numbers
    when = day_month(flag.on, loc) if flag.on else t("progress.no_value", loc)
    key = f"therapist.flag.{flag.kind}"
    values: dict[str, Any] = {"date": when}
    if flag.kind is Flag.HIGH_PAIN:
        values["score"] = int(n["score"])
        if "usual" in n:
            key = "therapist.flag.high_pain_usual"
            values["usual"] = number(n["usual"], loc)
    elif flag.kind is Flag.AVERAGE_UP:
        values |= {"previous": number(n["previous"], loc), "current": number(n["current"], loc)}
    elif flag.kind is Flag.TOO_MUCH:
        values["count"] = int(n["sessions"])
    elif flag.kind is Flag.WORSE_MORNINGS:
        values["count"] = int(n["worse"])
    elif flag.kind is Flag.HIGH_BEFORE:
        values |= {"count": int(n["days"]), "min": feedback.HIGH_PAIN}
    elif flag.kind is Flag.ADHERENCE_FALLING:
        values |= {
            "recent_done": p.recent_done,
            "recent_planned": p.recent_planned,
            "earlier_done": p.earlier_done,
            "earlier_planned": p.earlier_planned,
        }
    elif flag.kind is Flag.INACTIVE:
        values["days"] = feedback.INACTIVE_DAYS
    elif flag.kind is Flag.BARRIERS:
        values["list"] = _barrier_list(p, loc)
    return "⚠️ " + t(key, loc, **values)


def render(digest: Digest, tz: str, loc: str, *, current: bool = False) -> list[str]:
    """The digest's messages: the heading, then the patients, flagged first."""
    title_key = "therapist.digest_title_now" if current else "therapist.digest_title"
    title = t(title_key, loc, period=period_text(digest, tz, loc))
    if not digest.patients:
        return [f"{title}\n\n{t('therapist.digest_none', loc)}"]
    summary = t("therapist.digest_summary", loc, count=len(digest.patients), flagged=digest.flagged)
    blocks = [patient_block(p, n, loc, digest.period, tz) for n, p in enumerate(digest.patients, 1)]
    return pack(f"{title}\n{summary}", blocks, t("therapist.digest_continued", loc))


def pack(
    head: str,
    blocks: list[str],
    continued: str = "",
    *,
    separator: str = BLOCK_SEPARATOR,
    limit: int = MAX_TEXT,
) -> list[str]:
    """Blocks joined into as few messages as fit ``limit``; a block is never split."""
    messages: list[str] = []
    current = head
    for block in blocks:
        candidate = f"{current}{separator}{block}" if current else block
        if utf16_len(candidate) <= limit:
            current = candidate
            continue
        if utf16_len(block) > limit - utf16_len(continued) - len(separator):
            raise ValueError("one block is longer than a message")
        messages.append(current)
        current = f"{continued}{separator}{block}" if continued else block
    messages.append(current)
    return messages


def chart(digest: Digest, tz: str, loc: str) -> tuple[bytes, str]:
    """The practice's week as a PNG, and its caption (CPU work: run it in a thread)."""
    rows = chart_rows(digest, loc)
    shown = min(len(rows), digest_chart.MAX_BARS)
    more = None
    if len(rows) > shown:
        more = t("therapist.chart_more", loc, shown=shown, count=len(rows))
    period = period_text(digest, tz, loc)
    labels = digest_chart.ChartLabels(
        title=t("workspace.chart_title", loc, period=period),
        done=t("workspace.chart_sessions", loc),
        planned=t("therapist.chart_planned", loc),
        more=more,
        pain=t("workspace.chart_pain", loc),
        no_pain=t("workspace.chart_no_pain", loc),
        decimal=l10n.decimal_symbol(loc),
    )
    caption = t("workspace.chart_caption_digest", loc, period=period)
    return digest_chart.render(rows, labels), caption


def chart_rows(digest: Digest, loc: str) -> list[digest_chart.ChartRow]:
    return [
        digest_chart.ChartRow(
            f"{n}. {patient_label(p, n, loc)}", p.done + p.logged, p.planned, p.pain_avg
        )
        for n, p in enumerate(digest.patients, 1)
    ]


async def send_digest(
    bot: Bot,
    chat_id: int,
    digest: Digest,
    tz: str,
    loc: str,
    *,
    current: bool = False,
    delivered: list[str] | None = None,
    **send_kwargs: Any,
) -> int:
    """Send the text messages, then the chart; how many messages went out.

    ``delivered`` collects each text as it goes out, so a caller whose send failed half-way
    knows a part of the digest already reached the therapist (and must not send it again).
    """
    texts = render(digest, tz, loc, current=current)
    for text in texts:
        await bot.send_message(chat_id, text, **send_kwargs)
        if delivered is not None:
            delivered.append(text)
    if not digest.patients:
        return len(texts)
    if not digest_chart.has_data(chart_rows(digest, loc)):
        await bot.send_message(chat_id, t("workspace.digest_no_chart", loc), **send_kwargs)
        return len(texts) + 1
    try:
        png, caption = await run_cpu(chart, digest, tz, loc)
    except Exception:  # noqa: BLE001 - the texts went out; a chart bug must not resend them
        log.exception("digest chart failed; the text was sent without it")
        return len(texts)
    await bot.send_photo(chat_id, png, caption=caption, **send_kwargs)
    return len(texts) + 1
