"""The command menu (setMyCommands) in the language the patient chose in the bot.

Telegram shows each user the menu of the narrowest scope that has one: a menu set for their
chat (BotCommandScopeChat) wins over the per-language defaults registered at start-up. So when
a patient picks or changes their language here, their chat gets the menu in that language,
whatever language their Telegram app is in. One function, so therapist commands (and any
later role) are added in one place.
"""

from __future__ import annotations

import logging

from telegram import Bot, BotCommand, BotCommandScopeChat
from telegram.error import TelegramError

from bot.db.models import User
from bot.i18n import t

log = logging.getLogger(__name__)

# Commands shown in Telegram's menu, in this order, per language.
MENU_COMMANDS = (
    "start",
    "settings",
    "pain",
    "log",
    "tip",
    "progress",
    "pause",
    "resume",
    "language",
    "therapist",
    "privacy",
    "export",
    "delete",
    "help",
)


def menu_commands(loc: str) -> list[BotCommand]:
    """The patient menu in ``loc``."""
    return [BotCommand(c, t(f"commands.{c}", loc)) for c in MENU_COMMANDS]


async def refresh_chat_menu(bot: Bot, user: User) -> None:
    """Set this patient's chat menu to their chosen language. Best effort: a failure only
    leaves Telegram's per-language default in place, so it is logged, never raised."""
    try:
        await bot.set_my_commands(
            menu_commands(user.language), scope=BotCommandScopeChat(user.telegram_id)
        )
    except TelegramError:
        log.warning("could not set the command menu for user %s", user.id, exc_info=True)
