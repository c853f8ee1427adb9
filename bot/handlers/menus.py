"""One chat's own command menu (``setMyCommands`` with ``BotCommandScopeChat``).

Telegram shows each user the menu of the narrowest scope that has one: a menu set for their
chat wins over the per-language defaults registered at start-up. So a patient's chat gets the
patient menu in the language they chose in the bot (whatever language their Telegram app is
in), and a therapist's chat gets their own commands first (issue 16), followed by the patient
commands if they also use the bot for themselves. One function, so any later role is added in
one place.

Called after the transaction commits (it talks to Telegram); a failure is logged, never
raised: a menu is a convenience, and the next /start (or start-up) sets it again.
"""

from __future__ import annotations

import logging

from telegram import Bot, BotCommand, BotCommandScopeChat
from telegram.error import TelegramError

from bot.db.models import User
from bot.i18n import normalize_locale, t

log = logging.getLogger(__name__)

# Commands shown in Telegram's menu, in this order, per language.
MENU_COMMANDS = (
    "start",
    "settings",
    "pain",
    "log",
    "plan",
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
THERAPIST_COMMANDS = ("patients", "invite", "digest", "settings", "help")


def menu_commands(loc: str) -> list[BotCommand]:
    """The patient menu in ``loc``."""
    return [BotCommand(c, t(f"commands.{c}", loc)) for c in MENU_COMMANDS]


def chat_commands(loc: str, *, therapist: bool, patient: bool) -> list[BotCommand]:
    """The menu of one chat: a therapist's commands first, then the patient's if they are one."""
    if not therapist:
        return menu_commands(loc)
    commands = [BotCommand(c, t(f"workspace.commands.{c}", loc)) for c in THERAPIST_COMMANDS]
    if patient:
        commands += [c for c in menu_commands(loc) if c.command not in THERAPIST_COMMANDS]
    else:
        commands.insert(0, BotCommand("start", t("workspace.commands.start", loc)))
    return commands


async def refresh_chat_menu(
    bot: Bot, user: User, *, therapist: bool = False, app_language: str | None = None
) -> bool:
    """Set this chat's own menu in the user's chosen language; whether Telegram accepted it.

    ``app_language`` is the language their Telegram app reports, when known: a patient whose
    chosen language is that one needs no menu of their own (the per-language default fits),
    so theirs is removed (it may be a therapist menu left from a role removed since)."""
    scope = BotCommandScopeChat(user.telegram_id)
    try:
        if (
            not therapist
            and app_language is not None
            and normalize_locale(app_language) == (user.language)
        ):
            await bot.delete_my_commands(scope=scope)
        else:
            commands = chat_commands(user.language, therapist=therapist, patient=user.consented)
            await bot.set_my_commands(commands, scope=scope)
    except TelegramError as exc:
        log.info("could not set the menu of chat %s: %s", user.telegram_id, exc)
        return False
    return True
