"""/settings, /language, /pause, /resume, /privacy, /help: the patient changes things later."""

from __future__ import annotations

from datetime import timedelta

from telegram import Update

from bot.context import Ctx
from bot.db.session import transaction
from bot.handlers import feedback_text, setup
from bot.handlers.menus import MENU_COMMANDS
from bot.handlers.ui import drop_buttons, keyboard, next_reminder_line, user_locale
from bot.i18n import SUPPORTED_LOCALES, t
from bot.services import onboarding, patients, reminders
from bot.services.onboarding import Step
from bot.services.parsing import parse_date

# /help lists what the menu shows, in the same order.
HELP_COMMANDS = MENU_COMMANDS


async def help_command(update: Update, context: Ctx) -> None:
    """List the commands, in the patient's language."""
    from bot.handlers.workspace import help_lines  # issue 16: the therapist's commands

    async with transaction(context.sessions) as session:
        user = await patients.get_user(session, update.effective_user.id)
        loc = user_locale(user, update)
        therapist_lines = await help_lines(session, user, loc)
    lines = [f"/{c} - {t(f'commands.{c}', loc)}" for c in HELP_COMMANDS]
    if therapist_lines:
        lines = [*therapist_lines, "", t("workspace.help_patient", loc), *lines]
    # Clinician safety text (red flags, the emergency number for the patient's time zone).
    flags = feedback_text.red_flags(user.timezone if user else None, loc)
    await update.effective_message.reply_text(
        t("help.intro", loc) + "\n\n" + "\n".join(lines) + "\n\n" + flags
    )


async def privacy(update: Update, context: Ctx) -> None:
    """What is stored, who sees it, how to export and erase it."""
    async with transaction(context.sessions) as session:
        user = await patients.get_user(session, update.effective_user.id)
        loc = user_locale(user, update)
    await update.effective_message.reply_text(t("privacy.text", loc))


async def language(update: Update, context: Ctx) -> None:
    """Offer the languages as buttons (works before consent too: language is all we keep)."""
    tg = update.effective_user
    async with transaction(context.sessions) as session:
        user, _ = await patients.ensure_user(session, tg.id, tg.language_code)
        # ":any": works at any time, unlike the setup step's row (only at its own step).
        rows = [[(t(f"common.language_name.{c}", c), f"lang:{c}:any") for c in SUPPORTED_LOCALES]]
        await update.effective_message.reply_text(
            t("setup.ask_language", user.language), reply_markup=keyboard(rows)
        )


async def settings_menu(update: Update, context: Ctx) -> None:
    """Show the current settings with a button for each thing that can change."""
    from bot.handlers.workspace import therapist_settings  # issue 16

    if await therapist_settings(update, context):
        return
    now = context.clock.now()
    async with transaction(context.sessions) as session:
        user = await patients.get_user(session, update.effective_user.id)
        if not await require_setup(update, context, user):
            return
        onboarding.cancel(user)
        loc = user.language
        pause_button = (
            (t("settings.resume", loc), "set:resume")
            if user.paused_at
            else (t("settings.pause", loc), "set:pause")
        )
        rows = [
            [(t("settings.language", loc), "set:lang"), (t("settings.timezone", loc), "set:tz")],
            [(t("settings.times", loc), "set:time"), (t("settings.days", loc), "set:days")],
            [pause_button],
        ]
        body = await setup.summary(session, user, now)
        await update.effective_message.reply_text(
            f"{t('settings.title', loc)}\n\n{body}", reply_markup=keyboard(rows)
        )


async def require_setup(update: Update, context: Ctx, user) -> bool:
    """Settings need a finished setup; otherwise point to where the patient is."""
    message = update.effective_message
    if user is None or not user.consented:
        await message.reply_text(t("settings.need_start", user_locale(user, update)))
        return False
    if user.setup_done_at is None:
        pos = onboarding.position(user) or onboarding.begin_setup(user)
        await setup.ask(
            message,
            user,
            pos,
            context.clock.now(),
            note=t("settings.finish_setup_first", user.language),
        )
        return False
    return True


async def on_settings_button(update: Update, context: Ctx) -> None:
    """set:<what> from the settings menu: start a one-step edit."""
    query = update.callback_query
    what = (query.data or "").partition(":")[2]
    now = context.clock.now()
    async with transaction(context.sessions) as session:
        user = await patients.get_user(session, update.effective_user.id)
        await query.answer()
        if user is None or user.setup_done_at is None:
            await query.message.reply_text(t("setup.stale_button", user_locale(user, update)))
            return
        if what == "pause":
            await ask_pause(query.message, user.language)
            return
        if what == "resume":
            await do_resume(query.message, session, user, now)
            return
        step = {
            "lang": Step.LANGUAGE,
            "tz": Step.TIMEZONE,
            "time": Step.TIMES,
            "days": Step.DAYS,
        }.get(what)
        if step is None:
            await query.message.reply_text(t("setup.stale_button", user.language))
            return
        pos = onboarding.begin_edit(user, step)
        await setup.ask(query.message, user, pos, now)


async def ask_pause(message, loc: str) -> None:
    rows = [
        [(t("pause.week", loc), "pause:7"), (t("pause.two_weeks", loc), "pause:14")],
        [(t("pause.month", loc), "pause:30"), (t("pause.open", loc), "pause:0")],
    ]
    await message.reply_text(t("pause.ask", loc), reply_markup=keyboard(rows))


async def pause_command(update: Update, context: Ctx) -> None:
    """/pause [date]: stop reminders until a date, or until /resume."""
    now = context.clock.now()
    async with transaction(context.sessions) as session:
        user = await patients.get_user(session, update.effective_user.id)
        if not await require_setup(update, context, user):
            return
        if not context.args:
            await ask_pause(update.effective_message, user.language)
            return
        try:
            until = parse_date(
                " ".join(context.args), patients.local_today(user, now), user.language
            )
        except ValueError as exc:
            await update.effective_message.reply_text(t(f"pause.error_{exc}", user.language))
            return
        await do_pause(update.effective_message, session, user, now, until)


async def on_pause_button(update: Update, context: Ctx) -> None:
    """pause:<days> (0 = until I resume)."""
    query = update.callback_query
    value = (query.data or "").partition(":")[2]
    now = context.clock.now()
    async with transaction(context.sessions) as session:
        user = await patients.get_user(session, update.effective_user.id)
        await query.answer()
        if user is None or user.setup_done_at is None or value not in ("0", "7", "14", "30"):
            await query.message.reply_text(t("setup.stale_button", user_locale(user, update)))
            return
        days = int(value)
        until = patients.local_today(user, now) + timedelta(days=days - 1) if days else None
        await drop_buttons(query.message)  # answered: the other lengths go
        await do_pause(query.message, session, user, now, until)


async def do_pause(message, session, user, now, until) -> None:
    patients.pause(user, now, until)
    nxt = await patients.next_reminder(session, user, now)
    loc = user.language
    head = t("pause.done", loc, status=setup.pause_status(user, now))
    await message.reply_text(f"{head}\n{next_reminder_line(nxt, user.timezone, loc)}")


async def resume_command(update: Update, context: Ctx) -> None:
    """/resume: reminders start again from the next slot."""
    async with transaction(context.sessions) as session:
        user = await patients.get_user(session, update.effective_user.id)
        if not await require_setup(update, context, user):
            return
        await do_resume(update.effective_message, session, user, context.clock.now())


async def do_resume(message, session, user, now) -> None:
    loc = user.language
    if user.paused_at is None:
        nxt = await patients.next_reminder(session, user, now)
        await message.reply_text(
            f"{t('pause.not_paused', loc)}\n{next_reminder_line(nxt, user.timezone, loc)}"
        )
        return
    patients.resume(user)
    await reminders.reschedule_user(session, user, now)
    nxt = await patients.next_reminder(session, user, now)
    await message.reply_text(
        f"{t('pause.resumed', loc)}\n{next_reminder_line(nxt, user.timezone, loc)}"
    )
