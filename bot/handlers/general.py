"""Gatekeeping and everything that is not a command: typed text, other content, edits, errors."""

from __future__ import annotations

import logging

from telegram import ChatMemberUpdated, Update
from telegram.constants import ChatMemberStatus, ChatType
from telegram.ext import ApplicationHandlerStop

from bot.context import Ctx
from bot.db.session import transaction
from bot.handlers import feedback_text, setup
from bot.handlers.ui import keyboard, telegram_locale, user_locale
from bot.i18n import t
from bot.services import checkins, habit, onboarding, patients, safety

log = logging.getLogger(__name__)

# Other features register text routes: conv_state prefix -> handler(update, ctx, session, user).
TEXT_ROUTES: dict = {}
# Routes that also serve people who never consented as patients (a therapist typing their own
# settings or a note): conv_state prefix -> handler(update, ctx, session, user), checked first.
OPEN_TEXT_ROUTES: dict = {}
# Called after on_text's transaction, with whether it committed: (update, ctx, committed).
# E.g. a note typed above goes out only now, and not at all if nothing was stored.
AFTER_TEXT: list = []


async def private_only(update: Update, context: Ctx) -> None:
    """Health data never goes to a group: answer politely, store nothing, stop the update here."""
    chat = update.effective_chat
    if chat is None or chat.type == ChatType.PRIVATE:
        return
    loc = telegram_locale(update)
    if update.callback_query:
        await update.callback_query.answer(t("general.private_only", loc), show_alert=True)
    elif update.message and (update.message.text or "").startswith("/"):
        await update.message.reply_text(t("general.private_only", loc))
    raise ApplicationHandlerStop


async def on_text(update: Update, context: Ctx) -> None:
    """Typed text: an answer to the step the patient is at, or a hint of what to do."""
    committed = False
    try:
        await _on_text(update, context)
        committed = True
    finally:
        for after in AFTER_TEXT:  # each drops what it kept if the transaction failed
            await after(update, context, committed)


async def _on_text(update: Update, context: Ctx) -> None:
    async with transaction(context.sessions) as session:
        user = await patients.get_user(session, update.effective_user.id)
        if user is not None and user.consented:
            habit.note_response(user, context.clock.now())  # any message ends a silence
        state = (user.conv_state or "") if user else ""
        if route := OPEN_TEXT_ROUTES.get(state.partition(":")[0]):
            await route(update, context, session, user)
            return
        await dispatch_text(update, context, session, user)


async def dispatch_text(update: Update, context: Ctx, session, user) -> None:
    """Typed text by the usual routes (an open route that no longer applies hands it back)."""
    if user is None or not user.consented:
        loc = user_locale(user, update)
        await update.effective_message.reply_text(t("general.hint_start", loc))
        return
    if onboarding.position(user) is not None:
        await setup.on_text(update, context, session, user)
        return
    prefix = (user.conv_state or "").partition(":")[0]
    if route := TEXT_ROUTES.get(prefix):
        await route(update, context, session, user)
        return
    for route in TEXT_ROUTES.get("*", ()):  # e.g. a number while a check-in waits for one
        if await route(update, context, session, user):
            return
    if safety.needs_safety_net(update.effective_message.text):
        await reply_safety_net(update, context, session, user)
        return
    await update.effective_message.reply_text(t("general.hint", user.language))


async def reply_safety_net(update: Update, context: Ctx, session, user) -> None:
    """A worried question or a mention of pain: no medical advice, when to contact a clinician
    (clinician safety text), and what the bot can do, with [Skip today] if a prompt is open."""
    loc = user.language
    prompt = await checkins.open_prompt(session, user, context.clock.now())
    text = feedback_text.safety_net(user.timezone, loc, skip_button=prompt is not None)
    markup = None
    if prompt is not None:
        markup = keyboard([[(t("checkin.skip", loc), f"ci:{prompt.id}:skip")]])
    await update.effective_message.reply_text(text, reply_markup=markup)


async def on_location(update: Update, context: Ctx) -> None:
    """A location only means something at the time-zone step."""
    async with transaction(context.sessions) as session:
        user = await patients.get_user(session, update.effective_user.id)
        pos = onboarding.position(user) if user else None
        if pos is not None and pos.step == onboarding.Step.TIMEZONE:
            await setup.on_location(update, context, session, user)
            return
        loc = user_locale(user, update)
        await update.effective_message.reply_text(t("general.location_unused", loc))


async def on_other(update: Update, context: Ctx) -> None:
    """Stickers, photos, voice...: say what we can read, and repeat the open question."""
    async with transaction(context.sessions) as session:
        user = await patients.get_user(session, update.effective_user.id)
        loc = user_locale(user, update)
        pos = onboarding.position(user) if user else None
        if pos is not None:
            await setup.ask(
                update.effective_message,
                user,
                pos,
                context.clock.now(),
                note=t("general.only_text", loc),
            )
            return
        await update.effective_message.reply_text(t("general.only_text", loc))


async def on_edited(update: Update, context: Ctx) -> None:
    """Edits change nothing already recorded; ask for a new message instead."""
    async with transaction(context.sessions) as session:
        user = await patients.get_user(session, update.effective_user.id)
        loc = user_locale(user, update)
    await update.edited_message.reply_text(t("general.edited", loc))


async def on_unknown_command(update: Update, context: Ctx) -> None:
    """A command we do not have."""
    async with transaction(context.sessions) as session:
        user = await patients.get_user(session, update.effective_user.id)
        loc = user_locale(user, update)
    await update.effective_message.reply_text(t("general.unknown_command", loc))


async def chosen_locale(update: Update, context: Ctx) -> str:
    """The language the patient chose in the bot (one indexed lookup), else Telegram's.
    Never raises: the error handler uses it when the database may be what failed."""
    tg = update.effective_user
    if tg is not None:
        try:
            async with context.sessions() as session:
                if (code := await patients.language_of(session, tg.id)) is not None:
                    return code
        except Exception:  # noqa: BLE001 - fall back to Telegram's language
            log.debug("no stored language for the reply", exc_info=True)
    return telegram_locale(update)


async def on_unknown_button(update: Update, context: Ctx) -> None:
    """Callback data no handler knows (forged, or from an old version): answer, change nothing."""
    loc = await chosen_locale(update, context)
    await update.callback_query.answer(t("general.unknown_button", loc))


async def on_member_change(update: Update, context: Ctx) -> None:
    """The patient blocked (kicked) or unblocked the bot: stop or restart prompts."""
    change: ChatMemberUpdated = update.my_chat_member
    if change.chat.type != ChatType.PRIVATE:
        return
    blocked = change.new_chat_member.status in (ChatMemberStatus.BANNED, ChatMemberStatus.LEFT)
    async with transaction(context.sessions) as session:
        user = await patients.get_user(session, change.from_user.id)
        if user is not None:
            user.active = not blocked
            log.info("user %s %s the bot", user.id, "blocked" if blocked else "unblocked")


async def on_error(update: object, context: Ctx) -> None:
    """Log the failure; tell the patient nothing was lost and to try again."""
    log.error("error while handling an update", exc_info=context.error)
    if (
        isinstance(update, Update)
        and update.effective_chat
        and update.effective_chat.type == ChatType.PRIVATE
    ):
        if update.callback_query:
            try:  # may already be answered: that must not stop the message below
                await update.callback_query.answer()
            except Exception:  # noqa: BLE001
                pass
        try:
            loc = await chosen_locale(update, context)
            await context.bot.send_message(update.effective_chat.id, t("general.error", loc))
        except Exception:  # noqa: BLE001 - the error handler must never raise
            log.warning("could not tell the user about the error", exc_info=True)
