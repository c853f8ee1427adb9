"""The first conversation across every layer: /start, /help, /language, hints, groups."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from bot.db.models import User
from bot.handlers.menus import MENU_COMMANDS
from tests.conftest import tx

LOCALES = ("en", "da", "es")


@pytest.mark.parametrize("loc", LOCALES)
async def test_start_greets_in_telegram_language_and_stores_only_id_and_language(
    app, fake, sessions, loc
):
    user = fake.user(2001, "Ana", language_code=loc)
    await user.send("/start")
    greeting = user.last.text
    assert tx("start.greeting", loc, name="Ana") in greeting
    assert tx("start.disclaimer", loc) in greeting
    assert user.last.buttons == [
        [tx("start.consent_yes", loc), tx("start.consent_no", loc)],
        [tx("start.change_language", loc)],  # the language is not asked again in setup
    ]
    async with sessions() as s:
        row = await s.scalar(select(User).where(User.telegram_id == 2001))
    assert row.language == loc
    assert row.consent_at is None and row.timezone is None


async def test_unknown_language_falls_back_to_english(app, fake):
    user = fake.user(2002, "Piet", language_code="nl")
    await user.send("/start")
    assert tx("start.greeting", "en", name="Piet") in user.last.text


@pytest.mark.parametrize("loc", LOCALES)
async def test_help_lists_every_command_in_the_language(app, fake, loc):
    user = fake.user(2003, language_code=loc)
    await user.send("/help")
    for command in ("start", "settings", "pause", "resume", "privacy", "language"):
        assert f"/{command} - {tx(f'commands.{command}', loc)}" in user.last.text


async def test_language_switch_with_buttons(app, fake, sessions):
    user = fake.user(2004, language_code="en")
    await user.send("/start")
    await user.send("/language")
    assert user.last.buttons == [["English", "Dansk", "Español"]]
    await user.press("Dansk")
    # Before consent: the greeting and its consent question again, now in Danish.
    assert user.messages[-2].text == tx("setup.language_set", "da")
    assert tx("start.greeting", "da", name="Ana") in user.last.text
    assert user.last.buttons[0] == [tx("start.consent_yes", "da"), tx("start.consent_no", "da")]
    await user.send("/help")
    assert tx("help.intro", "da") in user.last.text
    async with sessions() as s:
        assert await s.scalar(select(User.language).where(User.telegram_id == 2004)) == "da"
    # The command menu of this chat follows the language chosen in the bot, not the app's.
    menu = fake.commands[("chat:2004", "")]
    assert menu[0] == {"command": "start", "description": tx("commands.start", "da")}
    assert fake.commands[("default", "en")][0]["description"] == tx("commands.start", "en")


@pytest.mark.parametrize("loc", LOCALES)
async def test_any_other_text_gets_a_localized_hint(app, fake, loc):
    user = fake.user(2005, language_code=loc)
    await user.send("hello?")
    assert user.last.text == tx("general.hint_start", loc)
    await user.send("/nosuchcommand")
    assert user.last.text == tx("general.unknown_command", loc)


async def test_group_chat_gets_a_polite_answer_and_nothing_is_stored(app, fake, sessions):
    user = fake.user(2006, language_code="es")
    group = fake.group(-100500, "Physio group")
    await user.send("/start", chat=group)
    assert fake.chat_messages(-100500)[-1].text == tx("general.private_only", "es")
    await user.send("my pain is 7", chat=group)
    assert len(fake.chat_messages(-100500)) == 1  # plain group chatter is ignored
    async with sessions() as s:
        assert await s.scalar(select(func.count()).select_from(User)) == 0


async def test_commands_registered_per_language(app, fake):
    for loc in ("en", "da", "es", ""):
        commands = fake.commands[("default", loc)]
        assert [c["command"] for c in commands] == list(MENU_COMMANDS)
        assert commands[0]["description"] == tx("commands.start", loc or "en")


async def test_no_call_was_rejected_by_the_fake_api(app, fake):
    user = fake.user(2007, language_code="da")
    await user.send("/start")
    await user.press(tx("start.consent_no", "da"))
    assert user.last.text == tx("start.consent_declined", "da")
    assert not fake.errors


def test_vendored_bot_api_description_matches_the_shared_one():
    """The fake validates against a copy shipped in the package; keep it the shared version."""
    from pathlib import Path

    from bot.testing.fake_telegram import DEFAULT_SPEC_PATH

    shared = Path(__file__).resolve().parents[2] / "shared" / "telegram" / "botapi.json"
    if not shared.exists():
        pytest.skip("no ../shared beside this clone")
    assert DEFAULT_SPEC_PATH.read_bytes() == shared.read_bytes()


def test_the_token_is_redacted_in_tracebacks_too():
    import logging

    from bot.logging_setup import RedactingFormatter

    token = "123456:SECRET-abc"
    formatter = RedactingFormatter("%(message)s", token)
    try:
        raise RuntimeError(f"GET https://api.telegram.org/bot{token}/getMe failed")
    except RuntimeError:
        import sys

        record = logging.LogRecord(
            "x", logging.ERROR, __file__, 1, "boom %s", (token,), sys.exc_info()
        )
    text = formatter.format(record)
    assert token not in text and text.count("<token>") == 2
