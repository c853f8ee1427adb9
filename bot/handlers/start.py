"""/start: greeting, disclaimer and consent; resuming an unfinished setup."""

from __future__ import annotations

import html
from datetime import timedelta

from telegram import Update

from bot.context import Ctx
from bot.db.session import transaction
from bot.handlers import habit as habit_view
from bot.handlers import setup, therapist
from bot.handlers.ui import keyboard, language_known, user_locale
from bot.i18n import t
from bot.services import habit, onboarding, patients


async def start(update: Update, context: Ctx) -> None:
    """Greet in the Telegram language, store only id and language, then consent or resume."""
    if context.args:  # a deep link: t.me/<bot>?start=<invite code>
        await therapist.open_invite(update, context)
        return
    # A therapist gets their own welcome and settings first (issue 16); True when that is all.
    from bot.handlers.workspace import therapist_start  # imports this module's neighbours

    if await therapist_start(update, context):
        return
    tg = update.effective_user
    now = context.clock.now()
    async with transaction(context.sessions) as session:
        user, _ = await patients.ensure_user(session, tg.id, tg.language_code)
        loc = user.language
        name = html.escape(tg.first_name or "")
        if not user.consented:
            await greet(update.effective_message, loc, tg.first_name)
            return
        pos = onboarding.position(user)
        if user.setup_done_at is None:
            if pos is None or pos.mode != "setup":
                pos = onboarding.begin_setup(user, language_known=language_known(user, update))
                await setup.ask(update.effective_message, user, pos, now)
                return
            await update.effective_message.reply_text(
                t("start.resume_setup", loc, name=name),
                reply_markup=keyboard([[(t("start.restart_setup", loc), "setup:restart")]]),
            )
            await setup.ask(update.effective_message, user, pos, now)
            return
        onboarding.cancel(user)
        absence_after = timedelta(days=context.settings.absence_after_days)
        away = habit_view.was_away(user, now, absence_after)
        habit.note_response(user, now, "start")
        if away:  # acknowledged, with the come-back choices instead of the settings list
            text, markup = habit_view.welcome_back(name, loc)
            await update.effective_message.reply_text(text, reply_markup=markup)
            return
        body = await setup.summary(session, user, now)
        await update.effective_message.reply_text(
            f"{t('start.welcome_back', loc, name=name)}\n\n{body}"
        )


async def greet(message, loc: str, first_name: str | None) -> None:
    """The first message: greeting, disclaimer, the consent question, and [Change language]
    (the language is taken from Telegram, so it is not asked again during setup)."""
    text = "\n\n".join(
        (
            t("start.greeting", loc, name=html.escape(first_name or "")),
            t("start.disclaimer", loc),
            t("start.consent_ask", loc),
        )
    )
    buttons = [
        [(t("start.consent_yes", loc), "consent:yes"), (t("start.consent_no", loc), "consent:no")],
        [(t("start.change_language", loc), "lang:?")],
    ]
    await message.reply_text(text, reply_markup=keyboard(buttons))


async def on_consent(update: Update, context: Ctx) -> None:
    """Agree starts setup and records time and version; Not now stores nothing more."""
    query = update.callback_query
    now = context.clock.now()
    async with transaction(context.sessions) as session:
        user = await patients.get_user(session, update.effective_user.id)
        invite_waiting = user is not None and user.conv_state == therapist.LINK_STATE
    if invite_waiting:  # opened an invite, then a plain /start: the invite must not be lost
        await therapist.consent_then_link(update, context, agreed=query.data == "consent:yes")
        return
    async with transaction(context.sessions) as session:
        user, _ = await patients.ensure_user(
            session, update.effective_user.id, update.effective_user.language_code
        )
        loc = user.language
        await query.answer()
        if user.consented:
            await query.message.reply_text(t("start.consent_already", loc))
            if (pos := onboarding.position(user)) is not None:
                await setup.ask(query.message, user, pos, now)
            return
        await query.edit_message_reply_markup(None)
        if query.data != "consent:yes":
            await query.message.reply_text(t("start.consent_declined", loc))
            return
        patients.give_consent(user, now)
        pos = onboarding.begin_setup(user, language_known=language_known(user, update))
        await query.message.reply_text(t("start.consent_thanks", loc))
        await setup.ask(query.message, user, pos, now)


async def restart_setup(update: Update, context: Ctx) -> None:
    """Throw away the half-made setup answers and begin again at the first step."""
    query = update.callback_query
    async with transaction(context.sessions) as session:
        user = await patients.get_user(session, update.effective_user.id)
        await query.answer()
        if user is None or not user.consented or user.setup_done_at is not None:
            await query.message.reply_text(t("setup.stale_button", user_locale(user, update)))
            return
        pos = onboarding.begin_setup(user)
        await setup.ask(query.message, user, pos, context.clock.now())
