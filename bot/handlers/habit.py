"""Coming back after absence: the come-back offer's buttons (``hb:<check-in id>:<choice>``,
id 0 when offered by /start) and the /start greeting after days of silence."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from telegram import Update

from bot.context import Ctx
from bot.db.models import CheckIn
from bot.db.session import transaction
from bot.handlers import settings, setup
from bot.handlers.checkin import comeback_markup, drop_buttons, programme_block, prompt_message
from bot.handlers.ui import keyboard, next_reminder_line, user_locale
from bot.i18n import t
from bot.services import habit, onboarding, patients
from bot.services.onboarding import Step
from bot.services.reminders import Status


async def on_button(update: Update, context: Ctx) -> None:
    """[Keep going] [Fewer days] [Another time] [Pause 1 week]: any of them ends the absence
    (recorded with the choice), then does what it says."""
    query = update.callback_query
    parts = (query.data or "").split(":")
    if len(parts) != 3 or not parts[1].isdigit() or parts[2] not in habit.CHOICES:
        await query.answer(t("general.unknown_button", user_locale(None, update)))
        return
    checkin_id, choice = int(parts[1]), parts[2]
    now = context.clock.now()
    async with transaction(context.sessions) as session:
        user = await patients.get_user(session, update.effective_user.id)
        if user is None or user.setup_done_at is None:
            await query.answer(t("setup.stale_button", user_locale(user, update)))
            return
        loc = user.language
        habit.note_response(user, now, choice)
        checkin = None
        if checkin_id:
            checkin = await session.scalar(select_offer(checkin_id, user.id, now))
        if choice == "keep" and checkin is not None:
            # The offer becomes today's check-in: the same row, now a regular prompt.
            checkin.expires_at = now + context.settings.checkin_expiry
            programme = await programme_block(session, user)
            text, markup = prompt_message(
                checkin.id, loc, lighter=user.lighter_next, programme=programme
            )
            reply = (f"{t('habit.keep_now', loc)}\n\n{text}", markup)
        elif choice == "keep":
            nxt = await patients.next_reminder(session, user, now)
            line = next_reminder_line(nxt, user.timezone, loc)
            reply = (f"{t('habit.keep_later', loc)}\n{line}", None)
        else:
            if checkin is not None:  # no session comes of this offer
                checkin.status = Status.MISSED
            reply = None
        if choice in ("fewer", "later"):
            lead = t(f"habit.{choice}_lead", loc)
            pos = onboarding.begin_edit(user, Step.DAYS if choice == "fewer" else Step.TIMES)
            text, rows = setup.step_prompt(user, pos, now)
            reply = (f"{lead}\n\n{text}", keyboard(rows))
    await query.answer()
    if choice == "keep" and checkin is not None:
        await query.message.edit_text(reply[0], reply_markup=reply[1])
        return
    await drop_buttons(query.message)
    if choice == "pause":
        async with transaction(context.sessions) as session:
            user = await patients.get_user(session, update.effective_user.id)
            until = patients.local_today(user, now) + timedelta(days=6)
            await settings.do_pause(query.message, session, user, now, until)
        return
    await query.message.reply_text(reply[0], reply_markup=reply[1])


def select_offer(checkin_id: int, user_id: int, now):
    """The offer's check-in, if still open (it becomes today's prompt on "Keep going")."""
    return (
        select(CheckIn)
        .where(
            CheckIn.id == checkin_id,
            CheckIn.user_id == user_id,
            CheckIn.status.in_((Status.PROMPTED, Status.PENDING)),
            (CheckIn.expires_at.is_(None)) | (CheckIn.expires_at > now),
        )
        .with_for_update()
    )


def was_away(user, now, absence_after: timedelta) -> bool:
    """Away, or silent long enough that the come-back offer is (about to be) due."""
    if user.absence is not None:
        return True
    silent = user.silent_since
    return silent is not None and now - silent >= absence_after - timedelta(hours=1)


def welcome_back(name: str, loc: str) -> tuple[str, object]:
    """/start after an absence: acknowledged, with the same four choices."""
    return t("habit.welcome_back_away", loc, name=name), comeback_markup(0, loc)
