"""Small shared pieces of the Telegram side: keyboards, dates in words, the user of an update."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.error import BadRequest
from telegram.warnings import PTBUserWarning

from bot import l10n
from bot.db.models import User
from bot.i18n import normalize_locale, t, telegram_language_supported
from bot.services import habit, patients

Button = tuple[str, str]  # (label, callback data)

# Callback data comes from the client and can be forged. Numbers in it are parsed here, before
# any query: ASCII digits only ("²".isdigit() is True, and int() then raises), and ids within
# the int32 range of our Integer primary keys (PostgreSQL raises on a larger one).
INT32_MAX = 2**31 - 1
_ASCII_DIGITS = re.compile(r"[0-9]{1,10}")


def parse_int(text: str | None, low: int = 0, high: int = INT32_MAX) -> int | None:
    """The number ``text`` spells in ASCII digits if ``low <= n <= high``, else None."""
    if text is None or not _ASCII_DIGITS.fullmatch(text):
        return None
    value = int(text)
    return value if low <= value <= high else None


def parse_id(text: str | None) -> int | None:
    """A row id from callback data (1..int32 max), or None if forged or malformed."""
    return parse_int(text, 1)


def keyboard(rows: Iterable[Sequence[Button]]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(label, callback_data=data) for label, data in row] for row in rows]
    )


def keyboard_json(rows: Iterable[Sequence[Button]]) -> dict[str, Any]:
    """``keyboard(rows)`` as the JSON Telegram receives (``InlineKeyboardMarkup.to_dict()``)."""
    return {
        "inline_keyboard": [
            [{"text": label, "callback_data": data} for label, data in row] for row in rows
        ]
    }


# send_message_id calls sendMessage through Bot.do_api_request, which warns that send_message
# exists; here that is the point (PTB's own objects are what it avoids). pyproject.toml repeats
# this for pytest, which resets the filters.
warnings.filterwarnings("ignore", message=r"Please use 'Bot\.sendMessage'", category=PTBUserWarning)


async def send_message_id(
    bot: Bot,
    chat_id: int,
    text: str,
    rows: Iterable[Sequence[Button]],
    *,
    rate_limit_args: dict[str, Any] | None = None,
    **api_kwargs: Any,
) -> int:
    """``bot.send_message(chat_id, text, reply_markup=keyboard(rows))``, returning only the
    new message's id: the fan-out sends up to 1,000 prompts a second (paid broadcasts), and
    building each prompt's 15 buttons as PTB objects and parsing the Message Telegram echoes
    back (keyboard included) cost more CPU than the send itself (bar B8). Same request, same
    errors (Forbidden, RetryAfter, ...), the bot's default parse mode, the same rate limiter."""
    defaults = getattr(bot, "defaults", None)
    parse_mode = defaults.parse_mode if defaults else None
    data: dict[str, Any] = {"chat_id": chat_id, "text": text, "reply_markup": keyboard_json(rows)}
    if parse_mode:
        data["parse_mode"] = parse_mode
    data.update(api_kwargs)
    extra = {"rate_limit_args": rate_limit_args} if rate_limit_args else {}
    result = await bot.do_api_request("sendMessage", api_kwargs=data, **extra)
    return int(result["message_id"])


async def drop_buttons(message: Message | None) -> None:
    """Remove the keyboard of an answered question so old buttons are not pressed again."""
    if message is None:
        return
    try:
        await message.edit_reply_markup(None)
    except BadRequest:  # already without buttons ("message is not modified")
        pass


def chunk(buttons: Sequence[Button], per_row: int) -> list[list[Button]]:
    return [list(buttons[i : i + per_row]) for i in range(0, len(buttons), per_row)]


def weekday_name(weekday: int, locale: str) -> str:
    """0 = Monday, in the patient's language (CLDR, through bot.l10n)."""
    return l10n.weekday_name(weekday, locale)


def format_when(instant: datetime, tz: str, locale: str) -> str:
    """'Tuesday, 24 November, 08:30' in the patient's zone and language (bot.l10n)."""
    return l10n.format_when(instant, tz, locale)


def next_reminder_line(instant: datetime | None, tz: str | None, locale: str) -> str:
    if instant is None or tz is None:
        return t("common.next_reminder_none", locale)
    return t("common.next_reminder", locale, when=format_when(instant, tz, locale))


def telegram_locale(update: Update) -> str:
    user = update.effective_user
    return normalize_locale(user.language_code if user else None)


def language_known(user: User, update: Update) -> bool:
    """Whether setup can skip the language question: Telegram's language is one we speak,
    or the patient picked another one before consenting."""
    code = update.effective_user.language_code if update.effective_user else None
    return telegram_language_supported(code) or user.language != normalize_locale(code)


def user_locale(user: User | None, update: Update) -> str:
    """The patient's chosen language, or their Telegram one before we know them."""
    return user.language if user else telegram_locale(update)


async def require_consent(update: Update, session) -> User | None:
    """The sender, if they have consented; otherwise they are pointed to /start (health data
    is only handled after consent)."""
    user = await patients.get_user(session, update.effective_user.id)
    if user is None or not user.consented:
        await update.effective_message.reply_text(
            t("settings.need_start", user_locale(user, update))
        )
        return None
    # A command is a message too: it ends a silence (the message's own time: no clock here).
    when = update.effective_message.date if update.effective_message else None
    habit.note_response(user, when or datetime.now(UTC))
    return user
