"""/progress (the summary and a chart), /export (a CSV and a PDF) and /delete (erasure after
an explicit confirmation).

The delete buttons carry ``del:yes`` / ``del:no``; a press counts only on the question of the
latest /delete, checked against ``users.conv_state`` and the message id stored with it, so an
old, repeated or forged button erases nothing.
"""

from __future__ import annotations

from datetime import date, datetime, time

from telegram import Update

from bot import l10n, report
from bot.charts import render_progress_chart, short_date
from bot.context import Ctx
from bot.db.session import transaction
from bot.handlers.checkin import drop_buttons
from bot.handlers.ui import keyboard, require_consent, telegram_locale, user_locale
from bot.i18n import t
from bot.services import export, feedback, habit, patients, programmes, therapists, workspace
from bot.services.progress import Progress, compute_progress
from bot.workers import run_cpu

# --- Text --------------------------------------------------------------------------------------


def number(value: float, loc: str, *, signed: bool = False) -> str:
    """One decimal in the language's way (CLDR); a real minus sign for a fall."""
    return l10n.format_number(value if signed else abs(value), loc, 1, signed=signed)


def days(count: int, loc: str) -> str:
    return t("progress.days", loc, count=count)


def long_date(day: date, loc: str) -> str:
    """'23 Nov 2026' / '23. nov. 2026' / '23 nov 2026'."""
    return l10n.short_date(day, loc, year=True)


def summary_lines(progress: Progress, loc: str) -> list[str]:
    """The /progress text as lines of Telegram HTML ("" separates blocks)."""
    if not progress.has_data:
        return [t("progress.title", loc), "", t("progress.no_data", loc)]
    lines = [t("progress.title", loc), "", t("progress.sessions_title", loc)]
    *past, current = progress.weeks
    for week in past:
        lines.append(
            t(
                "progress.week_past",
                loc,
                date=short_date(week.start, loc),
                done=week.done,
                planned=week.planned,
            )
        )
    key = "progress.week_current_left" if current.remaining else "progress.week_current"
    lines.append(t(key, loc, done=current.done, planned=current.planned, left=current.remaining))
    lines.append(
        t(
            "progress.streak",
            loc,
            current=days(progress.current_streak, loc),
            best=days(progress.best_streak, loc),
        )
    )
    lines.append(f"<i>{t('progress.streak_rule', loc)}</i>")

    lines += ["", t("progress.pain_title", loc)]
    means = [w.pain_mean for w in progress.weeks]
    if any(m is not None for m in means):
        no_value = t("progress.no_value", loc)
        lines.append(" → ".join(no_value if m is None else number(m, loc) for m in means))
        lines.append(t(f"progress.trend.{progress.trend}", loc))
    elif any(w.pain_count for w in progress.weeks):  # scores, but no week with enough of them
        lines.append(t("progress.pain_few", loc, min=feedback.WEEK_MIN_SCORES))
    else:
        lines.append(t("progress.pain_none", loc))

    lines += ["", t("progress.effect_title", loc)]
    effect = progress.effect
    if feedback.effect_is_shown(effect.sessions):
        lines.append(
            t(
                "progress.effect",
                loc,
                sessions=t("progress.sessions", loc, count=effect.sessions),
                change=number(effect.mean_change, loc, signed=True),
                fell=effect.fell,
                percent=l10n.format_share(effect.share_fell, loc),
            )
        )
    else:
        lines.append(t("progress.effect_none", loc, min=feedback.EFFECT_MIN_SESSIONS))
    lines += [
        "",
        t(f"progress.cheer.{progress.cheer}", loc, days=days(progress.current_streak, loc)),
    ]
    return lines


def away_lines(absences: list, user, loc: str) -> list[str]:
    """Times away in the weeks shown (issue 14): the come-back offer to the return."""
    zi = patients.zone_of(user)
    lines = []
    for a in absences:
        start = short_date(a.start.astimezone(zi).date(), loc)
        if a.end is None:
            line = t("habit.away_open", loc, start=start)
        else:
            end = short_date(a.end.astimezone(zi).date(), loc)
            line = t("habit.away_line", loc, start=start, end=end)
        lines.append(line + (t("habit.weekly_mark", loc) if a.weekly else ""))
    return ["", *lines] if lines else []


# --- Handlers ----------------------------------------------------------------------------------

PROGRAMME_CHANGES_SHOWN = 3


async def progress_command(update: Update, context: Ctx) -> None:
    """Sessions against plan, streaks, the pain trend and the before/after effect, and a chart."""
    async with transaction(context.sessions) as session:
        user = await require_consent(update, session)
        if user is None:
            return
        loc = user.language
        progress = await compute_progress(session, user, context.clock.now())
        history = await programmes.changes(session, user.id, limit=PROGRAMME_CHANGES_SHOWN)
        since = datetime.combine(progress.weeks[0].start, time(0), patients.zone_of(user))
        away = away_lines(await habit.absences(session, user.id, since), user, loc)
    message = update.effective_message
    text = "\n".join(summary_lines(progress, loc) + away)
    if history:  # the exercise programme's latest changes and their reasons (issue 17)
        from bot.handlers.plan import history_text

        text += "\n\n" + history_text(history, user.timezone, loc)
    await message.reply_text(text)
    if progress.has_data:
        # CPU-bound: off the event loop, so other patients are not kept waiting.
        png = await run_cpu(render_progress_chart, progress, loc)
        weeks = len(progress.weeks)  # only weeks since the patient started
        key = "progress.chart.caption" if weeks > 1 else "habit.chart_caption_one"
        caption = t(key, loc, weeks=weeks)
        await message.reply_photo(png, caption=caption, filename="progress.png")


async def export_command(update: Update, context: Ctx) -> None:
    """All the patient's data as a CSV file, and the clinic report (PDF) a therapist gets."""
    now = context.clock.now()
    async with transaction(context.sessions) as session:
        user = await require_consent(update, session)
        if user is None:
            return
        loc = user.language
        bundle = await export.collect(session, user, now)
        # The same clinic report a therapist gets (issue 16), under the patient's first name.
        data = await workspace.report_data(session, user, update.effective_user.first_name, now)
    progress = bundle.progress
    # CPU-bound (matplotlib, fpdf2): off the event loop, so other patients are not kept waiting.
    pdf = await run_cpu(report.build_report, data, loc)
    stamp = progress.today.isoformat()
    message = update.effective_message
    await message.reply_document(
        bundle.csv,
        filename=f"paincoach-data-{stamp}.csv",
        caption=t("privacy_export.csv_caption", loc),
    )
    await message.reply_document(
        pdf,
        filename=f"paincoach-summary-{stamp}.pdf",
        caption=t("privacy_export.pdf_caption", loc),
    )


async def delete_command(update: Update, context: Ctx) -> None:
    """Ask for an explicit confirmation before erasing everything about the patient."""
    async with transaction(context.sessions) as session:
        user = await patients.get_user(session, update.effective_user.id)
        if user is None:
            loc = telegram_locale(update)
            await update.effective_message.reply_text(t("privacy_export.nothing_stored", loc))
            return
        loc = user.language
        text = t("privacy_export.delete_ask", loc)
        if await therapists.is_therapist(session, user.id):
            text += "\n\n" + t("privacy_export.delete_ask_therapist", loc)
        rows = [
            [(t("privacy_export.delete_yes", loc), "del:yes")],
            [(t("privacy_export.delete_no", loc), "del:no")],
        ]
        question = await update.effective_message.reply_text(text, reply_markup=keyboard(rows))
        export.await_delete_confirmation(user, question.message_id)


async def on_delete_button(update: Update, context: Ctx) -> None:
    """del:yes erases, del:no cancels; only on the question of the latest /delete."""
    query = update.callback_query
    choice = (query.data or "").partition(":")[2]
    message_id = query.message.message_id if query.message else None
    async with transaction(context.sessions) as session:
        user = await patients.get_user(session, update.effective_user.id)
        loc = user_locale(user, update)
        if (
            user is None
            or choice not in ("yes", "no")
            or not export.delete_pending(user, message_id)
        ):
            await query.answer(t("privacy_export.delete_stale", loc))
            return
        if choice == "yes":
            await export.erase_patient(session, user.id)
        else:
            export.cancel_delete(user)
    # Only now, after the commit: "erased" must be true when the patient reads it.
    await query.answer()
    await drop_buttons(query.message)
    done = "privacy_export.deleted" if choice == "yes" else "privacy_export.delete_cancelled"
    await query.message.reply_text(t(done, loc))
