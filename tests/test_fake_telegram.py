"""The fake Telegram server answers a real python-telegram-bot like Telegram does."""

from __future__ import annotations

import asyncio
import datetime as dtm
import warnings
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
)
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    Forbidden,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.ext import ApplicationBuilder, CommandHandler, ContextTypes

from bot.testing.fake_telegram import TINY_PNG, FakeTelegram, parse_html

TOKEN = "123:ABC"
NOW = 1_750_000_000.0


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    server = FakeTelegram(clock=lambda: NOW)
    await server.start()
    yield server
    await server.stop()


@pytest_asyncio.fixture
async def bot(fake: FakeTelegram) -> AsyncIterator[Bot]:
    async with Bot(
        token=TOKEN,
        base_url=f"{fake.api_base_url}/bot",
        base_file_url=f"{fake.api_base_url}/file/bot",
    ) as real_bot:
        yield real_bot


def keyboard(*labels_and_data: tuple[str, str]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(label, callback_data=data) for label, data in labels_and_data]]
    )


def retry_seconds(err: RetryAfter) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = err.retry_after
    return value.total_seconds() if isinstance(value, dtm.timedelta) else value


@pytest.mark.asyncio
async def test_send_message_round_trip(fake: FakeTelegram, bot: Bot) -> None:
    ana = fake.user(1001, "Ana")
    assert bot.username == "PainCoachTestBot"
    message = await bot.send_message(1001, "Hola Ana")
    assert message.text == "Hola Ana"
    assert message.chat.id == 1001
    assert message.date.timestamp() == NOW
    assert ana.last.raw["date"] == int(NOW)
    assert isinstance(ana.last.raw["date"], int)
    second = await bot.send_message(1001, "Again")
    assert second.message_id == message.message_id + 1
    assert [m.text for m in ana.messages] == ["Hola Ana", "Again"]
    assert fake.calls_of("sendMessage")[0] == {"chat_id": 1001, "text": "Hola Ana"}


@pytest.mark.asyncio
@pytest.mark.filterwarnings("ignore:Please use 'Bot")
async def test_unknown_method_and_bad_params_are_rejected(fake: FakeTelegram, bot: Bot) -> None:
    fake.user(1001)
    with pytest.raises(TelegramError):
        await bot.do_api_request("noSuchMethod")
    with pytest.raises(TelegramError):
        await bot.do_api_request("sendmessage", api_kwargs={"chat_id": 1001, "text": "x"})
    with pytest.raises(BadRequest, match="(?i)parameter text is required"):
        await bot.do_api_request("sendMessage", api_kwargs={"chat_id": 1001})
    # Like real Telegram, a parameter the method does not have is ignored (and noted).
    await bot.do_api_request(
        "sendMessage", api_kwargs={"chat_id": 1001, "text": "x", "colour": "red"}
    )
    assert ("sendMessage", "colour") in fake.spec.ignored_params
    with pytest.raises(BadRequest, match="(?i)chat not found"):
        await bot.send_message(999, "who?")
    assert [e.status for e in fake.errors] == [404, 404, 400, 400]


@pytest.mark.asyncio
async def test_text_length_limits(fake: FakeTelegram, bot: Bot) -> None:
    fake.user(1001)
    await bot.send_message(1001, "a" * 4096)
    with pytest.raises(BadRequest, match="(?i)message is too long"):
        await bot.send_message(1001, "a" * 4097)
    await bot.send_message(1001, "😀" * 2048)  # 4096 UTF-16 code units
    with pytest.raises(BadRequest, match="(?i)message is too long"):
        await bot.send_message(1001, "😀" * 2049)
    await bot.send_message(1001, "<b>" + "a" * 4096 + "</b>", parse_mode=ParseMode.HTML)
    with pytest.raises(BadRequest, match="(?i)message text is empty"):
        await bot.send_message(1001, "  ")
    with pytest.raises(BadRequest, match="(?i)caption is too long"):
        await bot.send_photo(1001, TINY_PNG, caption="c" * 1025)


@pytest.mark.asyncio
@pytest.mark.filterwarnings("ignore:Please use 'Bot")
async def test_callback_data_limit_and_keyboard_shape(fake: FakeTelegram, bot: Bot) -> None:
    fake.user(1001)
    await bot.send_message(1001, "ok", reply_markup=keyboard(("Yes", "x" * 64)))
    with pytest.raises(BadRequest, match="(?i)BUTTON_DATA_INVALID"):
        await bot.send_message(1001, "no", reply_markup=keyboard(("Yes", "x" * 65)))
    with pytest.raises(BadRequest, match="(?i)BUTTON_DATA_INVALID"):
        await bot.send_message(1001, "no", reply_markup=keyboard(("Yes", "é" * 33)))
    bad_markup = {
        "inline_keyboard": [[{"text": "Both", "callback_data": "a", "url": "https://x.org"}]]
    }
    with pytest.raises(BadRequest, match="(?i)inline keyboard button"):
        await bot.do_api_request(
            "sendMessage", api_kwargs={"chat_id": 1001, "text": "t", "reply_markup": bad_markup}
        )


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "html",
    [
        "<b>x",
        "<div>x</div>",
        "a < b",
        "&nope;",
        "<b><i>x</b></i>",
        "x</b>",
        "<span>x</span>",
        "line<br>break",
    ],
)
async def test_bad_html_is_rejected(fake: FakeTelegram, bot: Bot, html: str) -> None:
    fake.user(1001)
    with pytest.raises(BadRequest, match="(?i)can't parse entities"):
        await bot.send_message(1001, html, parse_mode=ParseMode.HTML)


@pytest.mark.asyncio
async def test_good_html_is_parsed_like_telegram(fake: FakeTelegram, bot: Bot) -> None:
    ana = fake.user(1001)
    html = (
        "<b>Bold <i>and italic</i></b> 1 &lt; 2 &amp;&#33;&#x3F; "
        '<a href="https://example.org/?a=1&amp;b=2">link</a> <tg-spoiler>s</tg-spoiler> '
        '<pre><code class="language-python">x = 1</code></pre>'
    )
    message = await bot.send_message(1001, html, parse_mode=ParseMode.HTML)
    assert message.text == "Bold and italic 1 < 2 &!? link s x = 1"
    assert ana.last.text == message.text
    assert ana.last.source_text == html
    types = [(e.type, e.offset, e.length) for e in message.entities]
    assert types[:2] == [("bold", 0, 15), ("italic", 5, 10)]
    link = next(e for e in message.entities if e.type == "text_link")
    assert link.url == "https://example.org/?a=1&b=2"
    pre = next(e for e in message.entities if e.type == "pre")
    assert pre.language == "python"


def test_parse_html_counts_utf16_offsets() -> None:
    text, entities = parse_html("😀 <b>hi</b> <blockquote expandable>q</blockquote>")
    assert text == "😀 hi q"
    assert entities == [
        {"type": "bold", "offset": 3, "length": 2},
        {"type": "expandable_blockquote", "offset": 6, "length": 1},
    ]


@pytest.mark.asyncio
async def test_edits(fake: FakeTelegram, bot: Bot) -> None:
    ana = fake.user(1001)
    markup = keyboard(("Agree", "agree"))
    message = await bot.send_message(1001, "Plan?", reply_markup=markup)
    with pytest.raises(BadRequest, match="(?i)message is not modified"):
        await bot.edit_message_text(
            "Plan?", chat_id=1001, message_id=message.message_id, reply_markup=markup
        )
    with pytest.raises(BadRequest, match="(?i)message to edit not found"):
        await bot.edit_message_text("x", chat_id=1001, message_id=999)
    await bot.edit_message_text(
        "Plan? (kept)", chat_id=1001, message_id=message.message_id, reply_markup=markup
    )
    assert ana.last.buttons == [["Agree"]] and ana.last.edited
    # Like Telegram: editing the text without reply_markup removes the keyboard.
    await bot.edit_message_text("Done", chat_id=1001, message_id=message.message_id)
    assert ana.last.text == "Done" and ana.last.buttons == []
    with pytest.raises(BadRequest, match="(?i)message is not modified"):
        await bot.edit_message_reply_markup(chat_id=1001, message_id=message.message_id)
    await bot.delete_message(1001, message.message_id)
    assert ana.messages == []
    with pytest.raises(BadRequest, match="(?i)message to delete not found"):
        await bot.delete_message(1001, message.message_id)


@pytest.mark.asyncio
async def test_blocked_user_gets_403(fake: FakeTelegram, bot: Bot) -> None:
    seen: list[dict] = []

    async def deliver(update: dict) -> None:
        seen.append(update)

    fake.deliver = deliver
    ana = fake.user(1001)
    await ana.block()
    update = Update.de_json(seen[-1], bot)
    assert update.my_chat_member.new_chat_member.status == "kicked"
    with pytest.raises(Forbidden, match="(?i)bot was blocked by the user"):
        await bot.send_message(1001, "Still there?")
    await ana.unblock()
    await bot.send_message(1001, "Welcome back")
    assert Update.de_json(seen[-1], bot).my_chat_member.new_chat_member.status == "member"


@pytest.mark.asyncio
@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
async def test_injected_faults_and_rate_limit(fake: FakeTelegram, bot: Bot) -> None:
    fake.user(1001)
    fake.inject("sendMessage", status=429, retry_after=7)
    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(1001, "x")
    assert retry_seconds(caught.value) == 7
    fake.inject(None, status=502, times=2)
    for _ in range(2):
        with pytest.raises(NetworkError):
            await bot.send_chat_action(1001, "typing")
    await bot.send_message(1001, "works again")

    fake.rate_limit(3)
    results = await asyncio.gather(
        *(bot.send_message(1001, f"n{i}") for i in range(5)), return_exceptions=True
    )
    limited = [r for r in results if isinstance(r, RetryAfter)]
    assert len(limited) == 2 and retry_seconds(limited[0]) == 1
    assert fake.stats.too_many_requests == 3
    assert fake.stats.max_sends_per_second >= 3


@pytest.mark.asyncio
async def test_delay_provokes_client_timeout(fake: FakeTelegram, bot: Bot) -> None:
    ana = fake.user(1001)
    fake.inject("sendMessage", status=200, delay=0.5)
    with pytest.raises(TimedOut):
        await bot.send_message(1001, "slow", read_timeout=0.1)
    # Like Telegram, the message may still arrive although the client gave up.
    await fake.wait_for(lambda: ana.last is not None)
    assert ana.last.text == "slow"


@pytest.mark.asyncio
async def test_files_are_stored_and_downloadable(fake: FakeTelegram, bot: Bot) -> None:
    ana = fake.user(1001)
    message = await bot.send_photo(
        1001, TINY_PNG, caption="<b>Your week</b>", parse_mode=ParseMode.HTML
    )
    assert message.photo[-1].width == 1 and message.caption == "Your week"
    assert ana.last.photo == TINY_PNG
    file = await bot.get_file(message.photo[-1].file_id)
    assert bytes(await file.download_as_bytearray()) == TINY_PNG
    pdf = b"%PDF-1.4\n%fake\n"
    doc = await bot.send_document(1001, pdf, filename="report.pdf")
    assert doc.document.file_name == "report.pdf"
    assert doc.document.mime_type == "application/pdf"
    assert ana.last.document == pdf and ana.last.filename == "report.pdf"
    with pytest.raises(BadRequest, match="(?i)wrong file identifier"):
        await bot.send_photo(1001, "no-such-file-id")


@pytest.mark.asyncio
async def test_long_polling_delivers_user_messages(fake: FakeTelegram, bot: Bot) -> None:
    ana = fake.user(1001, "Ana")
    poll = asyncio.create_task(bot.get_updates(timeout=2))
    await asyncio.sleep(0.1)
    assert not poll.done()
    await ana.send("/start abc")
    updates = await asyncio.wait_for(poll, 3)
    assert len(updates) == 1
    message = updates[0].message
    assert message.text == "/start abc" and message.from_user.language_code == "es"
    assert message.entities[0].type == "bot_command" and message.entities[0].length == 6
    # Confirming with offset drops the update; an empty queue returns after the timeout.
    assert await bot.get_updates(offset=updates[0].update_id + 1, timeout=0) == ()


@pytest.mark.asyncio
async def test_press_produces_callback_query(fake: FakeTelegram, bot: Bot) -> None:
    updates: list[Update] = []

    async def deliver(data: dict) -> None:
        updates.append(Update.de_json(data, bot))

    fake.deliver = deliver
    ana = fake.user(1001)
    first = await bot.send_message(1001, "Old", reply_markup=keyboard(("Agree", "old")))
    await bot.send_message(
        1001, "Ready?", reply_markup=keyboard(("Agree", "ci:1:yes"), ("Not now", "ci:1:no"))
    )
    assert ana.last.button_data("Not now") == "ci:1:no"
    query_id = await ana.press("Agree")
    query = updates[-1].callback_query
    assert query.id == query_id and query.data == "ci:1:yes"
    assert query.message.text == "Ready?" and query.from_user.id == 1001
    await bot.answer_callback_query(query_id, text="Noted")
    with pytest.raises(BadRequest, match="(?i)query is too old"):
        await bot.answer_callback_query(query_id)
    assert ana.answers == ["Noted"]
    await ana.press("Agree", message_id=first.message_id)
    assert updates[-1].callback_query.data == "old"
    await ana.press(callback_data="forged:data")
    assert updates[-1].callback_query.data == "forged:data"
    with pytest.raises(LookupError):
        await ana.press("Missing")
    with pytest.raises(BadRequest, match="(?i)query is too old"):
        await bot.answer_callback_query("12345")
    with pytest.raises(BadRequest):
        await bot.answer_callback_query(updates[-1].callback_query.id, text="x" * 201)


@pytest.mark.asyncio
async def test_transcript_is_readable(fake: FakeTelegram, bot: Bot) -> None:
    fake.deliver = _ignore
    ana = fake.user(1001)
    await ana.send("/start")
    await bot.send_message(
        1001,
        "<b>Welcome!</b>\nShall we start?",
        parse_mode="HTML",
        reply_markup=keyboard(("Agree", "a"), ("Not now", "n")),
    )
    query_id = await ana.press("Agree")
    await bot.answer_callback_query(query_id, text="Great")
    await ana.send_photo()
    assert ana.transcript() == (
        "> /start\n\n"
        "Welcome!\nShall we start?\n[Agree] [Not now]\n\n"
        "> (pressed [Agree])\n\n"
        "(toast: Great)\n\n"
        f"> [photo: photo.png, {len(TINY_PNG)} bytes]"
    )


@pytest.mark.asyncio
async def test_commands_and_groups(fake: FakeTelegram, bot: Bot) -> None:
    from telegram import BotCommand, BotCommandScopeAllPrivateChats

    await bot.set_my_commands(
        [BotCommand("start", "Start")], language_code="es", scope=BotCommandScopeAllPrivateChats()
    )
    assert fake.commands == {
        ("all_private_chats", "es"): [{"command": "start", "description": "Start"}]
    }
    with pytest.raises(BadRequest, match="(?i)BOT_COMMAND_INVALID"):
        await bot.set_my_commands([BotCommand("Start", "Start")])
    group = fake.group(-100123, "Physio group")
    ana = fake.user(1001)
    fake.deliver = _ignore
    sent = await ana.send("/checkin@PainCoachTestBot now", chat=group)
    assert sent["chat"]["type"] == "supergroup"
    assert sent["entities"][0]["length"] == len("/checkin@PainCoachTestBot")
    await bot.send_message(-100123, "Hi group")
    assert [m.text for m in fake.chat_messages(-100123)] == ["Hi group"]
    assert group.last.text == "Hi group" and ana.messages == []


@pytest.mark.asyncio
async def test_reply_keyboards_are_not_echoed_but_shown(fake: FakeTelegram, bot: Bot) -> None:
    ana = fake.user(1001)
    message = await bot.send_message(
        1001, "Pain today?", reply_markup=ReplyKeyboardMarkup([["0-3", "4-6", "7-10"]])
    )
    assert message.reply_markup is None  # Telegram only returns inline keyboards
    assert ana.keyboard == [["0-3", "4-6", "7-10"]] == ana.last.keyboard
    await bot.send_message(1001, "Thanks", reply_markup=ReplyKeyboardRemove())
    assert ana.keyboard == []


@pytest.mark.asyncio
async def test_real_application_through_deliver(fake: FakeTelegram) -> None:
    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await update.effective_message.reply_text(
            f"Hola {update.effective_user.first_name}", reply_markup=keyboard(("Agree", "agree"))
        )

    app = (
        ApplicationBuilder()
        .token(TOKEN)
        .base_url(f"{fake.api_base_url}/bot")
        .base_file_url(f"{fake.api_base_url}/file/bot")
        .build()
    )
    app.add_handler(CommandHandler("start", start))

    async def deliver(data: dict) -> None:
        await app.process_update(Update.de_json(data, app.bot))

    fake.deliver = deliver
    ana = fake.user(1001, "Ana")
    async with app:
        await ana.send("/start")
    assert ana.last.text == "Hola Ana"
    assert ana.last.buttons == [["Agree"]]
    assert not fake.errors


async def _ignore(update: dict) -> None:
    return None


@pytest.mark.asyncio
async def test_real_application_polling(fake: FakeTelegram) -> None:
    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await update.effective_message.reply_text("Polled hello")

    app = (
        ApplicationBuilder()
        .token(TOKEN)
        .base_url(f"{fake.api_base_url}/bot")
        .base_file_url(f"{fake.api_base_url}/file/bot")
        .build()
    )
    app.add_handler(CommandHandler("start", start))
    ana = fake.user(1001, "Ana")
    async with app:
        await app.updater.start_polling(poll_interval=0, timeout=5)
        await app.start()
        await ana.send("/start")
        await fake.wait_for(lambda: ana.last is not None)
        await app.updater.stop()
        await app.stop()
    assert ana.last.text == "Polled hello"
    assert "deleteWebhook" in [method for method, _ in fake.calls]
