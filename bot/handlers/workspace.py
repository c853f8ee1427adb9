"""The therapist's workspace (issue 16): their own start and settings, a page per patient,
notes between therapist and patient, the clinic report.

Buttons carry ``tw:<action>[:<value>]`` (at most 64 bytes):

- ``tw:lang:<code>``, ``tw:tz:<zone>``, ``tw:day:<0-6>``, ``tw:time:<HH:MM>``: a settings step;
  ``tw:set:<step>``: change one setting from /settings; ``tw:patient``: use the bot as a
  patient too (the usual consent).
- ``tw:p:<link>``: a patient's page; ``tw:n:<link>``: write a note; ``tw:r:<link>``: the PDF
  report; ``tw:x``: cancel a note; ``tw:re:<note>``: the patient answers a note.

Every page, note and report is looked up through the presser's own ACTIVE links
(``bot.services.workspace``), so a forged id, another therapist's link or a revoked one shows
"not available" and nothing else. Conversation state lives in ``users.conv_state``:
``tset:<s|e>:<step>`` (setup or one edit), ``tnote`` and ``tnrep`` (a note being typed).
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession
from telegram import Message, Update
from telegram.error import Forbidden, TelegramError

from bot import report as report_pdf
from bot.charts import render_progress_chart
from bot.context import Ctx
from bot.db.models import Therapist, User
from bot.db.session import transaction
from bot.handlers import digest_view, general, menus
from bot.handlers.checkin import drop_buttons
from bot.handlers.setup import zone_label
from bot.handlers.therapist import require_therapist
from bot.handlers.ui import Button, chunk, format_when, keyboard, user_locale, weekday_name
from bot.i18n import SUPPORTED_LOCALES, t
from bot.services import digest, patients, therapists, workspace
from bot.services.parsing import parse_days, parse_language
from bot.services.schedule_rules import mask_days, parse_hhmm, parse_times, zone
from bot.services.timezones import SUGGESTED, is_valid_zone, match_zone
from bot.workers import run_cpu

log = logging.getLogger(__name__)

SETUP_STATE = "tset"
NOTE_STATE = "tnote"
REPLY_STATE = "tnrep"
STEPS = ("lang", "tz", "day", "time")
DIGEST_TIMES = ("07:00", "08:00", "09:00", "12:00", "16:00", "18:00")
ID = re.compile(r"[0-9]{1,12}")
BUTTONS_PER_MESSAGE = 90
# A note or answer must be typed within this time of pressing its button; later text goes
# where it would otherwise have gone (a check-in's score, a setup answer...).
NOTE_TYPING_WINDOW = timedelta(minutes=30)  # Telegram allows 100 buttons in one keyboard

# ---- The patient page's keyboard: other features add rows here ----------------------------
# [Plan] (issue 17) is built in page_keyboard itself (it needs the patient's user id). Other
# features append a builder: (link_id, therapist's locale) -> a row of buttons, or an empty
# list to add nothing. The rows appear under [Send a note] [Report (PDF)] and [Plan].
EXTRA_PAGE_ROWS: list[Callable[[int, str], list[Button]]] = []


def page_keyboard(link_id: int, loc: str, patient_id: int | None = None) -> list[list[Button]]:
    rows = [
        [
            (t("workspace.button_note", loc), f"tw:n:{link_id}"),
            (t("workspace.button_report", loc), f"tw:r:{link_id}"),
        ]
    ]
    if patient_id is not None:
        # Issue 17: the patient's programme (bot.handlers.plan checks the link again on press;
        # ":o" opens it as a new message under the page instead of replacing the page).
        rows.append([(t("workspace.button_plan", loc), f"tplan:{patient_id}:o")])
    # >>> extra rows of the patient page <<<
    for build in EXTRA_PAGE_ROWS:
        if row := build(link_id, loc):
            rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------


async def sync_menu(
    context: Ctx, user: User, therapist_id: int | None, app_language: str | None = None
) -> None:
    """Set the chat's menu (after the commit) and remember its language for start-up."""
    ok = await menus.refresh_chat_menu(
        context.bot, user, therapist=therapist_id is not None, app_language=app_language
    )
    if ok and therapist_id is not None:
        async with transaction(context.sessions) as session:
            therapist = await session.get(Therapist, therapist_id)
            if therapist is not None:
                therapist.menu_language = user.language


async def menu_after_language(context: Ctx, telegram_id: int) -> bool:
    """/language changed a therapist's language: their chat's menu follows at once. Whether
    the user is a therapist (otherwise the patient menu is the caller's to set)."""
    async with context.sessions() as session:
        user, therapist = await load_therapist(session, telegram_id)
    if therapist is None:
        return False
    if therapist.menu_language != user.language:
        await sync_menu(context, user, therapist.id)
    return True


async def refresh_stale_menus(bot, sessions) -> int:
    """At start-up: every therapist whose chat menu was never set (granted from the command
    line) or is in another language than theirs gets it now. How many were set."""
    async with sessions() as session:
        stale = await workspace.therapists_with_stale_menu(session)
    count = 0
    for user, therapist_id in stale:
        if await menus.refresh_chat_menu(bot, user, therapist=True):
            async with transaction(sessions) as session:
                therapist = await session.get(Therapist, therapist_id)
                if therapist is not None:
                    therapist.menu_language = user.language
            count += 1
    return count


def patient_name(name: str | None, loc: str) -> str:
    return html.escape(name) if name else t("workspace.unnamed_patient", loc)


def therapist_name(name: str | None, loc: str) -> str:
    return html.escape(name) if name else t("therapist.unnamed_therapist", loc)


def settings_text(user: User, therapist: Therapist, loc: str) -> str:
    tz = digest.valid_zone(user.timezone)
    nxt = therapist.next_digest_at
    return t(
        "workspace.settings_summary",
        loc,
        language=t(f"common.language_name.{loc}", loc),
        zone=html.escape(user.timezone or "UTC"),
        day=weekday_name(therapist.digest_weekday, loc),
        time=therapist.digest_time,
        next=format_when(nxt, tz, loc) if nxt else "-",
    )


def settings_rows(loc: str) -> list[list[Button]]:
    return [
        [
            (t("workspace.button_language", loc), "tw:set:lang"),
            (t("workspace.button_timezone", loc), "tw:set:tz"),
        ],
        [
            (t("workspace.button_day", loc), "tw:set:day"),
            (t("workspace.button_time", loc), "tw:set:time"),
        ],
    ]


def also_patient_row(loc: str) -> list[Button]:
    return [(t("workspace.also_patient_button", loc), "tw:patient")]


def step_of(user: User) -> tuple[str, str] | None:
    """(mode, step) of a therapist settings conversation, if one is open."""
    parts = (user.conv_state or "").split(":")
    if len(parts) == 3 and parts[0] == SETUP_STATE and parts[2] in STEPS:
        return parts[1], parts[2]
    return None


def step_prompt(user: User, step: str, now: datetime) -> tuple[str, list[list[Button]]]:
    loc = user.language
    if step == "lang":
        rows = [[(t(f"common.language_name.{c}", c), f"tw:lang:{c}") for c in SUPPORTED_LOCALES]]
        return t("workspace.ask_language", loc), rows
    if step == "tz":
        zones = SUGGESTED.get(loc, SUGGESTED["en"])
        return t("workspace.ask_timezone", loc), chunk(
            [(zone_label(z, now, loc), f"tw:tz:{z}") for z in zones], 2
        )
    if step == "day":
        days = [(weekday_name(d, loc), f"tw:day:{d}") for d in range(7)]
        return t("workspace.ask_day", loc), chunk(days, 4)
    return t("workspace.ask_time", loc), chunk([(x, f"tw:time:{x}") for x in DIGEST_TIMES], 3)


async def ask_step(message: Message, user: User, step: str, now: datetime, note: str = "") -> None:
    text, rows = step_prompt(user, step, now)
    await message.reply_text(f"{note}\n\n{text}" if note else text, reply_markup=keyboard(rows))


async def load_therapist(
    session: AsyncSession, telegram_id: int
) -> tuple[User | None, Therapist | None]:
    user = await patients.get_user(session, telegram_id)
    return user, (await therapists.get_therapist(session, user.id) if user else None)


# ---------------------------------------------------------------------------------------------
# /start and /settings for therapists
# ---------------------------------------------------------------------------------------------


async def therapist_start(update: Update, context: Ctx) -> bool:
    """A therapist's /start: their welcome and settings. True when /start is done with it
    (False: not a therapist, or also a patient whose own /start comes next)."""
    tg = update.effective_user
    message = update.effective_message
    now = context.clock.now()
    async with transaction(context.sessions) as session:
        user, _ = await patients.ensure_user(session, tg.id, tg.language_code)
        therapist = await therapists.get_therapist(session, user.id)
        if therapist is not None:
            therapists.set_display_name(therapist, tg.first_name)
            loc = user.language
            name = html.escape(tg.first_name or "")
            if therapist.settings_done_at is None:
                patients.set_state(user, f"{SETUP_STATE}:s:lang", {})
                await message.reply_text(t("workspace.welcome", loc, name=name))
                await ask_step(message, user, "lang", now)
                done = True
            else:
                if step_of(user):
                    patients.set_state(user, None)
                text = (
                    f"{t('workspace.welcome_back', loc, name=name)}\n\n"
                    f"{settings_text(user, therapist, loc)}"
                )
                rows = []
                if not user.consented:
                    text += "\n\n" + t("workspace.also_patient", loc)
                    rows.append(also_patient_row(loc))
                await message.reply_text(text, reply_markup=keyboard(rows) if rows else None)
                done = not user.consented
    # After the commit: the chat's menu follows the role (granted or removed from the CLI).
    await sync_menu(
        context, user, therapist.id if therapist else None, update.effective_user.language_code
    )
    return therapist is not None and done


async def therapist_settings(update: Update, context: Ctx) -> bool:
    """/settings of a therapist; True unless their patient settings come next."""
    async with transaction(context.sessions) as session:
        user, therapist = await load_therapist(session, update.effective_user.id)
        if therapist is None:
            return False
        if step_of(user):
            patients.set_state(user, None)
        loc = user.language
        await update.effective_message.reply_text(
            f"{t('workspace.settings_title', loc)}\n\n{settings_text(user, therapist, loc)}",
            reply_markup=keyboard(settings_rows(loc)),
        )
        return not (user.consented and user.setup_done_at is not None)


async def help_lines(session: AsyncSession, user: User | None, loc: str) -> list[str] | None:
    """The therapist's part of /help (None for everyone else)."""
    if user is None or not await therapists.is_therapist(session, user.id):
        return None
    lines = [t("workspace.help_intro", loc)]
    lines += [f"/{c} - {t(f'workspace.commands.{c}', loc)}" for c in menus.THERAPIST_COMMANDS]
    return lines


# ---------------------------------------------------------------------------------------------
# Settings steps: buttons and typed answers
# ---------------------------------------------------------------------------------------------


async def apply_step(
    session: AsyncSession, user: User, therapist: Therapist, step: str, value: str, now: datetime
) -> bool:
    """Apply one answer (already read into a value); False when it cannot be used."""
    if step == "lang" and value in SUPPORTED_LOCALES:
        user.language = value
    elif step == "tz" and is_valid_zone(value):
        await workspace.set_zone(session, user, therapist, value, now)
    elif step == "day" and value.isdigit() and int(value) < 7:
        workspace.set_digest_day(user, therapist, int(value), now)
    elif step == "time":
        try:
            parse_hhmm(value)
        except ValueError:
            return False
        workspace.set_digest_time(user, therapist, value, now)
    else:
        return False
    return True


async def advance(
    message: Message, user: User, therapist: Therapist, mode: str, step: str, now: datetime
) -> None:
    """The next setup step, or the end (the summary)."""
    loc = user.language
    if mode == "s" and step != STEPS[-1]:
        nxt = STEPS[STEPS.index(step) + 1]
        patients.set_state(user, f"{SETUP_STATE}:s:{nxt}", {})
        await ask_step(message, user, nxt, now)
        return
    patients.set_state(user, None)
    rows: list[list[Button]] = []
    if mode == "s":
        therapist.settings_done_at = now
        if therapist.next_digest_at is None:
            workspace.reschedule_digest(therapist, user.timezone, now)
        head = t(
            "workspace.setup_done",
            loc,
            next=format_when(therapist.next_digest_at, digest.valid_zone(user.timezone), loc),
        )
        text = f"{head}\n\n{settings_text(user, therapist, loc)}"
        if not user.consented:
            text += "\n\n" + t("workspace.also_patient", loc)
            rows.append(also_patient_row(loc))
    else:
        text = f"{t('workspace.saved', loc)}\n\n{settings_text(user, therapist, loc)}"
    await message.reply_text(text, reply_markup=keyboard(rows) if rows else None)


def read_typed(step: str, text: str, loc: str = "en") -> str | None:
    """A typed answer as the value its button would carry; None if it cannot be read."""
    if step == "lang":
        return parse_language(text)
    if step == "tz":
        return match_zone(text, loc)
    if step == "day":
        try:
            days = mask_days(parse_days(text))
        except ValueError:
            return None
        return str(days[0]) if len(days) == 1 else None
    try:
        times = parse_times(text)
    except ValueError:
        return None
    return times[0] if len(times) == 1 else None


async def on_settings_text(update: Update, context: Ctx, session: AsyncSession, user: User) -> None:
    """A typed answer to the open settings step (a route of ``general.on_text``)."""
    found = step_of(user)
    therapist = await therapists.get_therapist(session, user.id)
    message = update.effective_message
    now = context.clock.now()
    if found is None or therapist is None:
        patients.set_state(user, None)
        await message.reply_text(t("general.hint", user.language))
        return
    mode, step = found
    value = read_typed(step, message.text or "", user.language)
    language_before = user.language
    if value is None or not await apply_step(session, user, therapist, step, value, now):
        await ask_step(message, user, step, now, note=t(f"workspace.error_{step}", user.language))
        return
    await advance(message, user, therapist, mode, step, now)
    if user.language != language_before:
        context.chat_data["menu_refresh"] = therapist.id  # set after the commit


async def on_button(update: Update, context: Ctx) -> None:
    """Every ``tw:`` press."""
    query = update.callback_query
    action, _, value = (query.data or "").removeprefix("tw:").partition(":")
    if action in ("lang", "tz", "day", "time"):
        await on_step_button(update, context, action, value)
    elif action == "set" and value in STEPS:
        await on_edit_button(update, context, value)
    elif action == "patient" and not value:
        await on_also_patient(update, context)
    elif action in ("p", "n", "r") and ID.fullmatch(value):
        handler = {"p": open_page, "n": start_note, "r": send_report}[action]
        await handler(update, context, int(value))
    elif action == "x" and not value:
        await cancel_note(update, context)
    elif action == "re" and ID.fullmatch(value):
        await start_reply(update, context, int(value))
    else:
        await general.on_unknown_button(update, context)


async def on_step_button(update: Update, context: Ctx, step: str, value: str) -> None:
    query = update.callback_query
    now = context.clock.now()
    async with transaction(context.sessions) as session:
        user, therapist = await load_therapist(session, update.effective_user.id)
        found = step_of(user) if user else None
        if therapist is None or found is None or found[1] != step:
            await query.answer(t("workspace.stale_button", user_locale(user, update)))
            return
        language_before = user.language
        if not await apply_step(session, user, therapist, step, value, now):
            await query.answer(t("workspace.stale_button", user.language))
            return
        await query.answer()
        await drop_buttons(query.message)
        await advance(query.message, user, therapist, found[0], step, now)
        changed = user.language != language_before
    if changed:
        await sync_menu(context, user, therapist.id)


async def on_edit_button(update: Update, context: Ctx, step: str) -> None:
    query = update.callback_query
    async with transaction(context.sessions) as session:
        user, therapist = await load_therapist(session, update.effective_user.id)
        if therapist is None:
            await query.answer(t("workspace.stale_button", user_locale(user, update)))
            return
        await query.answer()
        patients.set_state(user, f"{SETUP_STATE}:e:{step}", {})
        await ask_step(query.message, user, step, context.clock.now())


async def on_also_patient(update: Update, context: Ctx) -> None:
    """The therapist wants to exercise too: the patients' own greeting and consent."""
    query = update.callback_query
    async with transaction(context.sessions) as session:
        user = await patients.get_user(session, update.effective_user.id)
        loc = user_locale(user, update)
        await query.answer()
        if user is not None and user.consented:
            await query.message.reply_text(t("start.consent_already", loc))
            return
        await drop_buttons(query.message)
        name = html.escape(update.effective_user.first_name or "")
        text = "\n\n".join(
            (
                t("start.greeting", loc, name=name),
                t("start.disclaimer", loc),
                t("start.consent_ask", loc),
            )
        )
        rows = [
            [
                (t("start.consent_yes", loc), "consent:yes"),
                (t("start.consent_no", loc), "consent:no"),
            ]
        ]
        await query.message.reply_text(text, reply_markup=keyboard(rows))


# ---------------------------------------------------------------------------------------------
# /patients and a patient's page
# ---------------------------------------------------------------------------------------------


async def patients_command(update: Update, context: Ctx) -> None:
    """/patients: one button per patient sharing now, flagged first with their flag count."""
    async with transaction(context.sessions) as session:
        found = await require_therapist(update, session)
        if found is None:
            return
        user, therapist = found
        listed = await workspace.patient_list(session, therapist, context.clock.now())
    loc = user.language
    message = update.effective_message
    if not listed:
        await message.reply_text(t("therapist.patients_none", loc))
        return
    buttons = []
    lines = []
    tz = digest.valid_zone(user.timezone)
    for n, p in enumerate(listed, 1):
        since = digest_view.day_month(p.since.astimezone(zone(tz)).date(), loc, year=True)
        shown = html.escape(p.name or t("therapist.patient_unnamed", loc, n=n))
        line = t("therapist.patients_item", loc, n=n, name=shown, since=since)
        lines.append(line + (f" ⚠️ {p.flags}" if p.flags else ""))
        name = p.name or t("therapist.patient_unnamed", loc, n=n)
        if p.flags:
            label = t("workspace.patient_button_flags", loc, name=name, count=p.flags)
        else:
            label = t("workspace.patient_button", loc, name=name)
        buttons.append([(label, f"tw:p:{p.link_id}")])
    flagged = sum(1 for p in listed if p.flags)
    head = t("workspace.patients_title", loc, count=len(listed), flagged=flagged)
    for start in range(0, len(buttons), BUTTONS_PER_MESSAGE):
        part = lines[start : start + BUTTONS_PER_MESSAGE]
        text = "\n".join([head, "", *part] if start == 0 else part)
        await message.reply_text(
            text, reply_markup=keyboard(buttons[start : start + BUTTONS_PER_MESSAGE])
        )


def page_text(page: workspace.PatientPage, tz: str, loc: str) -> str:
    """The page as Telegram HTML (names escaped); under 4096 characters."""
    name = patient_name(page.name, loc)
    zi = zone(tz)
    since = digest_view.day_month(page.since.astimezone(zi).date(), loc, year=True)
    lines = [t("workspace.page_title", loc, name=name, since=since), ""]
    if page.current.proposal is not None:  # issue 17: a programme change waiting for them
        lines += [t(f"plan.t_open_{page.current.proposal}", loc), ""]
    lines.append(t("workspace.page_period", loc))
    for n, (period, week) in enumerate(page.weeks):
        first = period.start.astimezone(zi).date()
        key = "workspace.page_week_current" if n == 0 else "workspace.page_week_title"
        lines += ["", t(key, loc, date=digest_view.day_month(first, loc))]
        if week.joined is not None and week.joined >= period.start:
            joined = digest_view.day_month(week.joined.astimezone(zi).date(), loc)
            lines.append(t("workspace.page_joined", loc, date=joined))
        if week.planned or week.done:
            sessions = t("workspace.page_sessions", loc, done=week.done, planned=week.planned)
        else:
            sessions = t("workspace.page_no_plan", loc)
        if week.logged:
            sessions += t("workspace.page_logged", loc, count=week.logged)
        lines.append(sessions)
        if week.pain_avg is None:
            lines.append(t("workspace.page_pain_none", loc))
        else:
            lines.append(t("workspace.page_pain", loc, avg=digest_view.number(week.pain_avg, loc)))
        if (change := week.session_change) is not None:
            lines.append(
                t(
                    "workspace.page_effect",
                    loc,
                    change=digest_view.signed(change, loc),
                    count=week.change_n,
                )
            )
        if any(week.next_day.values()):
            lines.append(t("workspace.page_next_morning", loc, **week.next_day))
        if any(week.barriers.values()):
            lines.append(t("workspace.page_barriers", loc, list=barrier_list(week.barriers, loc)))
    lines += ["", t("workspace.page_flags_title", loc)]
    if not page.flags:
        lines.append(t("workspace.page_flags_none", loc))
    for flag in page.flags:  # worded as in the digest
        lines.append(digest_view._flag_line(flag, page.current, loc))
    if page.notes:
        lines += ["", t("workspace.page_notes_title", loc)]
        for note in page.notes:
            when = digest_view.day_month(note.at.astimezone(zi).date(), loc)
            text = html.escape(note.text if len(note.text) <= 300 else note.text[:299] + "…")
            key = f"workspace.page_note_{note.author}"
            lines.append(t(key, loc, when=when, name=name, text=text))
    text = "\n".join(lines)
    while digest_view.utf16_len(text) > digest_view.MAX_TEXT and page.notes:
        page = workspace.PatientPage(**{**page.__dict__, "notes": page.notes[1:]})
        return page_text(page, tz, loc)
    return text


def barrier_list(barriers: dict[str, int], loc: str) -> str:
    return ", ".join(
        t("therapist.barrier_count", loc, barrier=t(f"therapist.barrier.{b}", loc), count=c)
        for b, c in barriers.items()
        if c
    )


async def open_page(update: Update, context: Ctx, link_id: int) -> None:
    """tw:p:<link>: the page, only through the presser's own active link."""
    query = update.callback_query
    now = context.clock.now()
    async with transaction(context.sessions) as session:
        user, therapist = await load_therapist(session, update.effective_user.id)
        loc = user_locale(user, update)
        page = None
        if therapist is not None:
            tz = digest.valid_zone(user.timezone)
            page = await workspace.patient_page(session, therapist, link_id, now, tz)
    if page is None:
        await query.answer(t("workspace.not_available", loc), show_alert=True)
        return
    await query.answer()
    await send_page(query.message, page, tz, loc)


async def send_page(message: Message, page: workspace.PatientPage, tz: str, loc: str) -> None:
    name = page.name or t("workspace.unnamed_patient", loc)
    if page.progress.has_data:
        png = await run_cpu(render_progress_chart, page.progress, loc)
        await message.reply_photo(
            png,
            caption=t("workspace.chart_caption", loc, name=html.escape(name)),
            filename="patient.png",
        )
    await message.reply_text(
        page_text(page, tz, loc),
        reply_markup=keyboard(page_keyboard(page.link_id, loc, page.current.patient_id)),
    )


# ---------------------------------------------------------------------------------------------
# Notes, both ways
# ---------------------------------------------------------------------------------------------


async def start_note(update: Update, context: Ctx, link_id: int) -> None:
    query = update.callback_query
    async with transaction(context.sessions) as session:
        user, therapist = await load_therapist(session, update.effective_user.id)
        loc = user_locale(user, update)
        linked = await workspace.active_link(session, therapist.id, link_id) if therapist else None
        if linked is None:
            await query.answer(t("workspace.not_available", loc), show_alert=True)
            return
        await query.answer()
        patients.set_state(user, NOTE_STATE, {"link": link_id, "at": now_iso(context)})
        await query.message.reply_text(
            t(
                "workspace.note_ask",
                loc,
                name=patient_name(linked.patient.display_name, loc),
                max=workspace.NOTE_MAX,
            ),
            reply_markup=keyboard([[(t("workspace.note_cancel", loc), "tw:x")]]),
        )


async def cancel_note(update: Update, context: Ctx) -> None:
    query = update.callback_query
    async with transaction(context.sessions) as session:
        user = await patients.get_user(session, update.effective_user.id)
        loc = user_locale(user, update)
        await query.answer()
        await drop_buttons(query.message)
        if user is not None and user.conv_state in (NOTE_STATE, REPLY_STATE):
            patients.set_state(user, None)
            await query.message.reply_text(t("workspace.note_cancelled", loc))


def now_iso(context: Ctx) -> str:
    return context.clock.now().isoformat()


def note_is_stale(user: User, context: Ctx) -> bool:
    """A note begun long ago: the text typed now is meant for something else (a check-in's
    score, say), not for the therapist."""
    try:
        began = datetime.fromisoformat(str((user.conv_data or {}).get("at")))
    except ValueError:
        return True
    return context.clock.now() - began > NOTE_TYPING_WINDOW


def note_error(error: ValueError, text: str, loc: str) -> str:
    if str(error) == "too_long":
        return t("workspace.note_too_long", loc, count=len(text.strip()), max=workspace.NOTE_MAX)
    return t("workspace.note_empty", loc)


async def typed_note(update: Update, context: Ctx, session: AsyncSession, user: User):
    """What a note and a reply share: a stale one is read as ordinary text instead, one too
    long or empty gets its error (the state stays: the next message is the note); otherwise
    the typing state ends and the text comes back."""
    if note_is_stale(user, context):
        patients.set_state(user, None)
        await general.dispatch_text(update, context, session, user)
        return None
    message = update.effective_message
    text = message.text or ""
    try:
        workspace.check_note(text)
    except ValueError as exc:
        await message.reply_text(note_error(exc, text, user.language))
        return None
    patients.set_state(user, None)
    return text


async def on_note_text(update: Update, context: Ctx, session: AsyncSession, user: User) -> None:
    """The therapist's typed note: stored, then sent to the patient after the commit."""
    link_id = int((user.conv_data or {}).get("link", 0))
    text = await typed_note(update, context, session, user)
    if text is None:
        return
    therapist = await therapists.get_therapist(session, user.id)
    delivery = None
    if therapist is not None:
        delivery = await workspace.note_to_patient(
            session, therapist, link_id, text, context.clock.now()
        )
    await hold_note(update, context, user, delivery, text, "therapist")


async def on_reply_text(update: Update, context: Ctx, session: AsyncSession, user: User) -> None:
    """The patient's typed answer: stored, then sent to the therapist after the commit."""
    note_id = int((user.conv_data or {}).get("note", 0))
    text = await typed_note(update, context, session, user)
    if text is None:
        return
    delivery = await workspace.note_to_therapist(session, user, note_id, text, context.clock.now())
    await hold_note(update, context, user, delivery, text, "patient")


async def hold_note(update: Update, context: Ctx, user: User, delivery, text: str, by: str):
    """Kept for ``deliver_pending`` (sent after the commit), or "the link has ended"."""
    if delivery is None:
        await update.effective_message.reply_text(t("workspace.link_ended", user.language))
        return
    context.chat_data["pending_note"] = (delivery, text.strip(), by, user.language)


async def deliver_pending(update: Update, context: Ctx, committed: bool) -> None:
    """After ``general.on_text`` committed: the note goes out, and the writer hears of it."""
    if context.chat_data is None:
        return
    if not committed:
        context.chat_data.pop("menu_refresh", None)
        context.chat_data.pop("pending_note", None)
        return
    if (therapist_id := context.chat_data.pop("menu_refresh", None)) is not None:
        async with context.sessions() as session:
            user = await patients.get_user(session, update.effective_user.id)
        if user is not None:
            await sync_menu(context, user, therapist_id)
    pending = context.chat_data.pop("pending_note", None)
    if pending is None:
        return
    delivery, text, author, writer_loc = pending
    message = update.effective_message
    to_loc = delivery.to_language
    body = html.escape(text)
    if author == "therapist":
        sender = therapist_name(delivery.from_name, to_loc)
        outgoing = t("workspace.note_to_patient", to_loc, name=sender, text=body)
        rows = [[(t("workspace.note_reply_button", to_loc), f"tw:re:{delivery.note_id}")]]
        done_key = "workspace.note_sent"
    else:
        sender = patient_name(delivery.from_name, to_loc)
        outgoing = t("workspace.reply_to_therapist", to_loc, name=sender, text=body)
        rows = [
            [
                (t("workspace.button_note", to_loc), f"tw:n:{delivery.link_id}"),
                (
                    t("workspace.open_page_button", to_loc, name=delivery.from_name or "…"),
                    f"tw:p:{delivery.link_id}",
                ),
            ]
        ]
        done_key = "workspace.reply_sent"
    if author == "therapist":
        to_name = patient_name(delivery.to_name, writer_loc)
    else:
        to_name = therapist_name(delivery.to_name, writer_loc)
    try:
        await context.bot.send_message(
            delivery.to_telegram_id, outgoing, reply_markup=keyboard(rows)
        )
    except Forbidden:
        await message.reply_text(t("workspace.note_undelivered", writer_loc, name=to_name))
        return
    except TelegramError as exc:
        log.warning("note %s not delivered: %s", delivery.note_id, exc)
        await message.reply_text(t("workspace.note_undelivered", writer_loc, name=to_name))
        return
    await message.reply_text(t(done_key, writer_loc, name=to_name))


async def start_reply(update: Update, context: Ctx, note_id: int) -> None:
    query = update.callback_query
    async with transaction(context.sessions) as session:
        user = await patients.get_user(session, update.effective_user.id)
        loc = user_locale(user, update)
        target = await workspace.reply_target(session, user, note_id) if user else None
        if target is None:
            await query.answer(t("workspace.link_ended", loc), show_alert=True)
            return
        await query.answer()
        patients.set_state(user, REPLY_STATE, {"note": note_id, "at": now_iso(context)})
        name = therapist_name(target.from_name, loc)
        await query.message.reply_text(
            t("workspace.reply_ask", loc, name=name, max=workspace.NOTE_MAX),
            reply_markup=keyboard([[(t("workspace.note_cancel", loc), "tw:x")]]),
        )


# ---------------------------------------------------------------------------------------------
# The clinic report
# ---------------------------------------------------------------------------------------------


async def send_report(update: Update, context: Ctx, link_id: int) -> None:
    query = update.callback_query
    now = context.clock.now()
    async with transaction(context.sessions) as session:
        user, therapist = await load_therapist(session, update.effective_user.id)
        loc = user_locale(user, update)
        data = (
            await workspace.report_for_therapist(session, therapist, link_id, now)
            if therapist
            else None
        )
    if data is None:
        await query.answer(t("workspace.not_available", loc), show_alert=True)
        return
    await query.answer()
    pdf = await run_cpu(report_pdf.build_report, data, loc)
    name = data.first_name or t("workspace.unnamed_patient", loc)
    await query.message.reply_document(
        pdf,
        filename=report_pdf.filename(data, loc),
        caption=t(
            "workspace.report_caption",
            loc,
            name=html.escape(name),
            start=digest_view.day_month(data.start, loc),
            end=digest_view.day_month(data.end, loc, year=True),
        ),
    )


def register_text_routes() -> None:
    general.OPEN_TEXT_ROUTES[SETUP_STATE] = on_settings_text
    general.OPEN_TEXT_ROUTES[NOTE_STATE] = on_note_text
    general.OPEN_TEXT_ROUTES[REPLY_STATE] = on_reply_text
    general.AFTER_TEXT.append(deliver_pending)
