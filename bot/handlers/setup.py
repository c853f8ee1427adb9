"""Setup and its edits: language, time zone, reminder times, days. Buttons with typed fallbacks."""

from __future__ import annotations

import asyncio
import html
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession
from telegram import Message, Update
from telegram.error import BadRequest

from bot import l10n
from bot.context import Ctx
from bot.db.models import User
from bot.db.session import transaction
from bot.handlers.menus import refresh_chat_menu
from bot.handlers.ui import (
    Button,
    chunk,
    drop_buttons,
    keyboard,
    next_reminder_line,
    parse_int,
    user_locale,
    weekday_name,
)
from bot.i18n import SUPPORTED_LOCALES, t
from bot.services import education, onboarding, patients
from bot.services.onboarding import Position, Step
from bot.services.parsing import parse_days, parse_language
from bot.services.schedule_rules import ALL_DAYS, WEEKDAYS, mask_days, parse_times
from bot.services.timezones import SUGGESTED, Candidate, find_zones, is_valid_zone, zone_at

TIME_CHOICES = ("07:00", "08:00", "09:00", "12:00", "17:00", "19:00", "20:00", "21:00")


def zone_label(zone: str, now: datetime, loc: str = "en") -> str:
    """'København · 14.05': the city in the patient's language and its clock now, so the
    choice is concrete (a wrong zone shows a wrong time)."""
    return t(
        "setup.zone_button",
        loc,
        place=l10n.zone_city(zone, loc),
        time=l10n.local_clock(zone, now, loc),
    )


def candidate_label(c: Candidate, now: datetime, loc: str) -> str:
    """A choice between places: 'Córdoba (España) · 14:05', 'UTC, no daylight saving · 13:05'."""
    if l10n.fixed_offset_name(c.zone, loc) is not None or not c.place:
        place = l10n.zone_name(c.zone, loc)
    elif c.country:
        place = f"{c.place} ({l10n.country_name(c.country, loc)})"
    else:
        place = c.place
    return t("setup.zone_button", loc, place=place, time=l10n.local_clock(c.zone, now, loc))


def zone_line(zone: str, now: datetime, loc: str) -> dict[str, str]:
    """The values of the zone confirmations: 'London (United Kingdom)' and '14:05'."""
    return {
        "zone": html.escape(l10n.zone_name(zone, loc)),
        "time": l10n.local_clock(zone, now, loc),
    }


async def confirm_zone(message: Message, zone: str, now: datetime, loc: str) -> None:
    """'Time zone: London (United Kingdom), now 14:05. Is that right?' [Yes] [Change]."""
    rows = [[(t("setup.zone_yes", loc), f"tz:{zone}"), (t("setup.zone_change", loc), "tz:?")]]
    await message.reply_text(
        t("setup.timezone_confirm", loc, **zone_line(zone, now, loc)), reply_markup=keyboard(rows)
    )


async def offer_zones(message: Message, found: list[Candidate], now: datetime, loc: str) -> None:
    """More than one place fits: ask which, each with its clock now."""
    rows = [[(candidate_label(c, now, loc), f"tz:{c.zone}")] for c in found]
    rows.append([(t("setup.zone_none_of_these", loc), "tz:?")])
    await message.reply_text(t("setup.timezone_choose", loc), reply_markup=keyboard(rows))


def step_prompt(user: User, pos: Position, now: datetime) -> tuple[str, list[list[Button]]]:
    """The question of a step and its buttons, in the patient's language."""
    loc = user.language
    if pos.step == Step.LANGUAGE:
        return t("setup.ask_language", loc), language_rows()
    if pos.step == Step.TIMEZONE:
        zones = SUGGESTED.get(loc, SUGGESTED["en"])
        buttons = [(zone_label(z, now, loc), f"tz:{z}") for z in zones]
        return t("setup.ask_timezone", loc), chunk(buttons, 2)
    if pos.step == Step.TIMES:
        times = [(l10n.format_hhmm(x, loc), f"time:{x}") for x in TIME_CHOICES]
        return t("setup.ask_times", loc), chunk(times, 4)
    if pos.step == Step.DAYS:
        rows = [
            [(t("setup.days_all", loc), "days:all"), (t("setup.days_weekdays", loc), "days:wk")],
            [(t("setup.days_custom", loc), "days:custom")],
        ]
        return t("setup.ask_days", loc), rows
    mask = onboarding.custom_days(user)
    days = [
        (("✅ " if mask & (1 << d) else "") + l10n.weekday_name(d, loc, "abbreviated"), f"day:{d}")
        for d in range(7)
    ]
    rows = [*chunk(days, 4), [(t("setup.days_done", loc), "day:done")]]
    return t("setup.ask_custom_days", loc), rows


async def ask(message: Message, user: User, pos: Position, now: datetime, note: str = "") -> None:
    """Send the current step's question (after an optional note, such as why we re-ask)."""
    text, rows = step_prompt(user, pos, now)
    await message.reply_text(f"{note}\n\n{text}" if note else text, reply_markup=keyboard(rows))


def describe_days(mask: int, loc: str) -> str:
    if mask == ALL_DAYS:
        return t("setup.days_all", loc)
    if mask == WEEKDAYS:
        return t("setup.days_weekdays", loc)
    return ", ".join(weekday_name(d, loc) for d in mask_days(mask))


async def summary(session: AsyncSession, user: User, now: datetime) -> str:
    """What is set and when the next reminder comes, e.g. after setup or any change."""
    loc = user.language
    schedules = await patients.schedules_of(session, user)
    times = ", ".join(l10n.format_hhmm(s.local_time, loc) for s in schedules) or "-"
    days = describe_days(schedules[0].days, loc) if schedules else "-"
    nxt = await patients.next_reminder(session, user, now)
    return t(
        "setup.summary",
        loc,
        language=t(f"common.language_name.{loc}", loc),
        zone=html.escape(l10n.zone_name(user.timezone, loc) if user.timezone else "-"),
        times=times,
        days=days,
        status=summary_status(user, now),
        next=next_reminder_line(nxt, user.timezone, loc),
    )


def pause_status(user: User, now: datetime) -> str:
    """'active' / 'paused until 24 December', to complete 'Reminders are ...'."""
    loc = user.language
    if not patients.is_paused(user, now):
        return t("setup.status_active", loc)
    if user.paused_until is None:
        return t("setup.status_paused", loc)
    return t("setup.status_paused_until", loc, date=l10n.format_date(user.paused_until, loc))


def summary_status(user: User, now: datetime) -> str:
    """The summary's own sentence: 'Reminders are on.' / 'Påmindelserne er slået til.'"""
    loc = user.language
    if not patients.is_paused(user, now):
        return t("setup.summary_active", loc)
    if user.paused_until is None:
        return t("setup.summary_paused", loc)
    return t("setup.summary_paused_until", loc, date=l10n.format_date(user.paused_until, loc))


async def after_advance(
    message: Message, session: AsyncSession, user: User, adv: onboarding.Advance, ctx: Ctx
) -> None:
    """Ask the next step, or close setup/the edit with the summary (and a first tip)."""
    now = ctx.clock.now()
    if adv.next is not None:
        await ask(message, user, adv.next, now)
        return
    loc = user.language
    head = t("setup.done" if adv.finished_setup else "setup.saved", loc)
    await message.reply_text(f"{head}\n\n{await summary(session, user, now)}")
    if adv.finished_setup:
        tip = await education.pick_tip(
            session, user.id, education.Situation.ONBOARDING, rng=ctx.bot_data.rng, now=now
        )
        await message.reply_text(education.render_tip(tip, loc))


async def on_button(update: Update, context: Ctx) -> None:
    """A setup button (lang:, tz:, time:, days:, day:) pressed: apply it if it fits the step."""
    query = update.callback_query
    kind, _, value = (query.data or "").partition(":")
    value, _, scope = value.partition(":")
    now = context.clock.now()
    async with transaction(context.sessions) as session:
        user = await patients.get_user(session, update.effective_user.id)
        pos = onboarding.position(user) if user else None
        expected = {
            "lang": Step.LANGUAGE,
            "tz": Step.TIMEZONE,
            "time": Step.TIMES,
            "days": Step.DAYS,
            "day": Step.CUSTOM_DAYS,
        }[kind]
        # /language's buttons (scope "any") work any time; a step's buttons only at that step
        # (an old setup language row must not change the language later).
        anytime = kind == "lang" and (
            scope == "any" or value == "?" or user is None or not user.consented
        )
        if user is None or (not anytime and (pos is None or pos.step != expected)):
            await query.answer(t("setup.stale_button", user_locale(user, update)))
            if user and pos:
                await ask(query.message, user, pos, now)
            return
        if kind == "lang" and value == "?":  # [Change language]: the choice, any time
            await query.answer()
            await query.message.reply_text(
                t("setup.ask_language", user.language),
                reply_markup=keyboard(language_rows("any")),
            )
            return
        if kind == "lang" and user.consent_at is None and value in SUPPORTED_LOCALES:
            user.language = value  # before consent: only the language changes
            await query.answer()
            await query.message.reply_text(t("setup.language_set", value))
            from bot.handlers.start import greet  # start imports this module

            await greet(query.message, value, update.effective_user.first_name)
            language_changed = True
        else:
            old_language = user.language
            adv = await apply_button(session, user, kind, value, now, query.message)
            await query.answer()
            if adv is not None:
                await drop_buttons(query.message)  # answered: its buttons go
                await after_advance(query.message, session, user, adv, context)
            language_changed = user.language != old_language or kind == "lang"
    if language_changed:  # after the commit: the menu follows the language chosen here
        await menu_follows_language(context, user, update.effective_user.language_code)


async def menu_follows_language(context: Ctx, user: User, app_language: str | None) -> None:
    """The chat's own menu in the language just chosen: a therapist's, or the patient one."""
    from bot.handlers.workspace import menu_after_language  # workspace imports this module

    if not await menu_after_language(context, user.telegram_id):
        await refresh_chat_menu(context.bot, user, app_language=app_language)


def language_rows(scope: str = "") -> list[list[Button]]:
    """The languages; ``scope`` "any" for buttons that work at any time ([Change language]),
    none for the setup step's (stale once that step is answered)."""
    tail = f":{scope}" if scope else ""
    return [
        [
            (t(f"common.language_name.{code}", code), f"lang:{code}{tail}")
            for code in SUPPORTED_LOCALES
        ]
    ]


async def apply_button(
    session: AsyncSession, user: User, kind: str, value: str, now: datetime, message: Message
) -> onboarding.Advance | None:
    """Turn one button into a step answer; None when the message was updated in place."""
    if kind == "lang" and value in SUPPORTED_LOCALES:
        pos = onboarding.position(user)
        adv = await onboarding.choose_language(session, user, value, now)
        if pos is None or pos.step != Step.LANGUAGE:  # /language, or an old button mid-setup
            await message.reply_text(t("setup.language_set", value))
            if pos is not None:
                await ask(message, user, pos, now)
            return None
        return adv
    if kind == "tz" and value == "?":  # [Change] / [None of these]: ask the question again
        await ask(message, user, onboarding.position(user), now)
        return None
    if kind == "tz" and is_valid_zone(value):
        adv = await onboarding.choose_timezone(session, user, value, now)
        await message.reply_text(
            t("setup.timezone_set", user.language, **zone_line(value, now, user.language))
        )
        return adv
    if kind == "time":
        return await onboarding.choose_times(session, user, parse_times(value), now)
    if kind == "days" and value in ("all", "wk"):
        return await onboarding.choose_days(
            session, user, ALL_DAYS if value == "all" else WEEKDAYS, now
        )
    if kind == "days" and value == "custom":
        return onboarding.Advance(onboarding.start_custom_days(user))
    if kind == "day" and value == "done":
        mask = onboarding.custom_days(user)
        if not mask:
            await message.reply_text(t("setup.days_none", user.language))
            return None
        return await onboarding.choose_days(session, user, mask, now)
    if kind == "day" and parse_int(value, 0, 6) is not None:
        onboarding.toggle_day(user, int(value))
        text, rows = step_prompt(user, onboarding.position(user), now)
        try:
            await message.edit_text(text, reply_markup=keyboard(rows))
        except BadRequest:  # "message is not modified" after a double tap: nothing to do
            pass
        return None
    # Forged or unknown data: never applied.
    await message.reply_text(t("setup.stale_button", user.language))
    return None


async def on_text(update: Update, context: Ctx, session: AsyncSession, user: User) -> None:
    """A typed answer to the current setup step; a clear re-ask when it cannot be used."""
    pos = onboarding.position(user)
    text = update.effective_message.text or ""
    loc = user.language
    now = context.clock.now()
    error_key = None
    adv = None
    if pos.step == Step.LANGUAGE:
        code = parse_language(text)
        if code:
            adv = await onboarding.choose_language(session, user, code, now)
            await menu_follows_language(context, user, update.effective_user.language_code)
        else:
            error_key = "setup.error_language"
    elif pos.step == Step.TIMEZONE:
        # The place index is built on the first typed place (under a second): off the loop.
        found = await asyncio.to_thread(find_zones, text, loc, now)
        if len(found) == 1:
            await confirm_zone(update.effective_message, found[0].zone, now, loc)
            return
        if found:
            await offer_zones(update.effective_message, found, now, loc)
            return
        error_key = "setup.error_timezone"
    elif pos.step == Step.TIMES:
        try:
            adv = await onboarding.choose_times(session, user, parse_times(text), now)
        except ValueError as exc:
            error_key = (
                "setup.error_too_many_times" if str(exc) == "too_many" else "setup.error_time"
            )
    else:  # days or custom days, typed
        try:
            adv = await onboarding.choose_days(session, user, parse_days(text), now)
        except ValueError:
            error_key = "setup.error_days"
    if error_key:
        await ask(update.effective_message, user, pos, now, note=t(error_key, loc))
        return
    await after_advance(update.effective_message, session, user, adv, context)


async def on_location(update: Update, context: Ctx, session: AsyncSession, user: User) -> None:
    """A shared location at the time-zone step becomes a zone, offline."""
    loc = update.effective_message.location
    now = context.clock.now()
    pos = onboarding.position(user)
    zone = zone_at(loc.latitude, loc.longitude)
    if zone is None:
        await ask(
            update.effective_message, user, pos, now, note=t("setup.error_location", user.language)
        )
        return
    await confirm_zone(update.effective_message, zone, now, user.language)
