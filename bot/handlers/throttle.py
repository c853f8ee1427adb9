"""The one message a user gets when they send commands faster than the budget allows."""

from __future__ import annotations

from telegram import Update
from telegram.constants import ChatType

from bot.context import BotApp
from bot.db.session import transaction
from bot.handlers.ui import user_locale
from bot.i18n import t
from bot.services import patients


async def slow_down(update: Update, app: BotApp) -> None:
    """In the patient's language; only in private chats (groups are not answered at all)."""
    chat = update.effective_chat
    if chat is None or chat.type != ChatType.PRIVATE:
        return
    async with transaction(app.bot_data.sessions) as session:
        user = await patients.get_user(session, update.effective_user.id)
        loc = user_locale(user, update)
    await app.bot.send_message(chat.id, t("fairness.slow_down", loc))
