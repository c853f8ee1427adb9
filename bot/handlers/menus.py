"""One chat's own command menu (``setMyCommands`` with ``BotCommandScopeChat``).

Telegram shows a chat-scoped menu before the per-language default ones, so it is the place
for what differs per person: a therapist's commands (issue 16), in their language, followed
by the patient commands if they also use the bot for themselves. A chat without a role gets
its chat-scoped menu deleted and falls back to the per-language default set at start-up.

Called after the transaction commits (it talks to Telegram); a failure is logged, never
raised: a menu is a convenience, and the next /start (or start-up) sets it again.
"""

from __future__ import annotations

import logging

from telegram import Bot, BotCommand, BotCommandScopeChat
from telegram.error import TelegramError

from bot.db.models import User
from bot.handlers.settings import HELP_COMMANDS as PATIENT_COMMANDS
from bot.i18n import t

log = logging.getLogger(__name__)

THERAPIST_COMMANDS = ("patients", "invite", "digest", "settings", "help")


def chat_commands(loc: str, *, therapist: bool, patient: bool) -> list[BotCommand]:
    """The menu of a therapist (their commands first), in their language."""
    commands = [BotCommand(c, t(f"workspace.commands.{c}", loc)) for c in THERAPIST_COMMANDS]
    if patient:
        commands += [
            BotCommand(c, t(f"commands.{c}", loc))
            for c in PATIENT_COMMANDS
            if c not in THERAPIST_COMMANDS
        ]
    else:
        commands.insert(0, BotCommand("start", t("workspace.commands.start", loc)))
    return commands


async def refresh_chat_menu(bot: Bot, user: User, *, therapist: bool = False) -> bool:
    """Set (or, without a role, remove) this chat's own menu; whether Telegram accepted it."""
    scope = BotCommandScopeChat(user.telegram_id)
    try:
        if therapist:
            commands = chat_commands(user.language, therapist=True, patient=user.consented)
            await bot.set_my_commands(commands, scope=scope)
        else:
            await bot.delete_my_commands(scope=scope)
    except TelegramError as exc:
        log.info("could not set the menu of chat %s: %s", user.telegram_id, exc)
        return False
    return True
