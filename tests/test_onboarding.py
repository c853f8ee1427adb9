"""Onboarding, consent and settings, end to end through the fake Bot API (issue 3)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from bot.db.models import Schedule, TipShown, User
from bot.handlers.setup import zone_label, zone_line
from bot.handlers.ui import format_when
from bot.l10n import format_hhmm
from bot.services.schedule_rules import ALL_DAYS, WEEKDAYS
from bot.services.timezones import SUGGESTED
from tests.conftest import T0, consent, setup_through, start_app, tx

LOCALES = ("en", "da", "es")
# The first suggested zone per language and what 08:30 there on Monday 23 Nov 2026 is in UTC.
EXPECTED_0830_UTC = {
    "en": datetime(2026, 11, 23, 8, 30, tzinfo=UTC),  # Europe/London, UTC+0 in winter
    "da": datetime(2026, 11, 23, 7, 30, tzinfo=UTC),  # Europe/Copenhagen, UTC+1
    "es": datetime(2026, 11, 23, 7, 30, tzinfo=UTC),  # Europe/Madrid, UTC+1
}


async def db_user(sessions, telegram_id: int) -> User | None:
    async with sessions() as s:
        return await s.scalar(select(User).where(User.telegram_id == telegram_id))


async def db_schedules(sessions, telegram_id: int) -> list[Schedule]:
    async with sessions() as s:
        rows = await s.scalars(
            select(Schedule)
            .join(User)
            .where(User.telegram_id == telegram_id)
            .order_by(Schedule.local_time)
        )
        return list(rows)


@pytest.mark.parametrize("loc", LOCALES)
async def test_whole_setup_in_each_language(app, fake, sessions, loc):
    user = fake.user(3001, "Maria", language_code=loc)
    await user.send("/start")
    # Telegram's language is one we speak: the first message offers to change it, and setup
    # does not ask it again.
    assert user.last.buttons[-1] == [tx("start.change_language", loc)]
    await user.press(tx("start.consent_yes", loc))
    assert user.messages[-2].text == tx("start.consent_thanks", loc)
    assert user.last.text == tx("setup.ask_timezone", loc)
    assert len(user.last.buttons[0]) == 2  # zones two to a row
    await user.press(zone_label(SUGGESTED[loc][0], T0, loc))
    assert user.messages[-2].text == tx(
        "setup.timezone_set", loc, **zone_line(SUGGESTED[loc][0], T0, loc)
    )
    assert user.last.text == tx("setup.ask_times", loc)
    await user.send("8.30")
    assert user.last.text == tx("setup.ask_days", loc)
    await user.press(tx("setup.days_weekdays", loc))

    summary, tip = user.messages[-2].text, user.last.text
    assert summary.startswith(tx("setup.done", loc))
    when = format_when(EXPECTED_0830_UTC[loc], SUGGESTED[loc][0], loc)
    assert when in summary and format_hhmm("08:30", loc) in summary  # 08:30 / 08.30 / 8:30
    assert tip  # the first educational tip follows the summary
    row = await db_user(sessions, 3001)
    assert row.consent_at == T0 and row.consent_version
    assert row.setup_done_at == T0 and row.timezone == SUGGESTED[loc][0]
    assert row.conv_state is None
    [schedule] = await db_schedules(sessions, 3001)
    assert (schedule.local_time, schedule.days) == ("08:30", WEEKDAYS)
    assert schedule.next_due_at == EXPECTED_0830_UTC[loc]
    async with sessions() as s:
        assert await s.scalar(select(func.count()).select_from(TipShown)) == 1
    assert not fake.errors


async def test_declining_consent_stores_nothing_and_start_asks_again(app, fake, sessions):
    user = fake.user(3002, language_code="da")
    await user.send("/start")
    await user.press(tx("start.consent_no", "da"))
    assert user.last.text == tx("start.consent_declined", "da")
    row = await db_user(sessions, 3002)
    assert row.consent_at is None and row.timezone is None and row.conv_state is None
    assert await db_schedules(sessions, 3002) == []
    await user.send("/start")
    assert user.last.buttons == [
        [tx("start.consent_yes", "da"), tx("start.consent_no", "da")],
        [tx("start.change_language", "da")],
    ]


async def test_typed_answers_and_every_validation_failure(app, fake, sessions):
    user = fake.user(3003, language_code="de")  # a Telegram language we do not speak
    await consent(user, "en")
    assert user.last.text == tx("setup.ask_language", "en")
    await user.send("klingon")
    assert user.last.text.startswith(tx("setup.error_language", "en"))
    await user.send("español")  # typed language works too; the rest is in Spanish
    assert user.last.text == tx("setup.ask_timezone", "es")
    await user.send("Mordor")
    assert user.last.text.startswith(tx("setup.error_timezone", "es"))
    await user.send("kolkata")
    assert user.last.text == tx(
        "setup.timezone_confirm", "es", **zone_line("Asia/Kolkata", T0, "es")
    )
    assert "Calcuta (India)" in user.last.text and "12:30" in user.last.text
    await user.press(tx("setup.zone_yes", "es"))
    assert user.messages[-2].text == tx(
        "setup.timezone_set", "es", **zone_line("Asia/Kolkata", T0, "es")
    )
    for bad, key in (
        ("25:00", "setup.error_time"),
        ("soon", "setup.error_time"),
        ("7, 8, 9, 10, 11", "setup.error_too_many_times"),
    ):
        await user.send(bad)
        assert user.last.text.startswith(tx(key, "es")), bad
    await user.send("08:30, 19:00")
    await user.send("someday")
    assert user.last.text.startswith(tx("setup.error_days", "es"))
    await user.send("lun, mié, vie")
    assert user.messages[-2].text.startswith(tx("setup.done", "es"))
    schedules = await db_schedules(sessions, 3003)
    assert [s.local_time for s in schedules] == ["08:30", "19:00"]
    assert {s.days for s in schedules} == {0b10101}
    # Kolkata is UTC+05:30: Monday 08:30 there is 03:00 UTC, already past at 07:00 UTC,
    # so the next is Monday 19:00 local = 13:30 UTC.
    assert min(s.next_due_at for s in schedules) == datetime(2026, 11, 23, 13, 30, tzinfo=UTC)
    assert not fake.errors


async def test_custom_days_toggle_and_at_least_one_day(app, fake, sessions):
    user = fake.user(3004, language_code="en")
    await consent(user, "en")
    await user.press(zone_label("America/New_York", T0, "en"))
    await user.press("08:00")
    await user.press(tx("setup.days_custom", "en"))
    await user.press(tx("setup.days_done", "en"))
    assert user.last.text == tx("setup.days_none", "en")
    picker = user.messages[-2]
    await user.press("Tue", message_id=picker.message_id)
    await user.press("Thu", message_id=picker.message_id)
    assert fake.chat_messages(3004)[-2].buttons[0][1] == "✅ Tue"
    await user.press(tx("setup.days_done", "en"), message_id=picker.message_id)
    [schedule] = await db_schedules(sessions, 3004)
    assert schedule.days == (1 << 1) | (1 << 3)
    # 08:00 in New York (UTC-5) on Tuesday 24 November = 13:00 UTC.
    assert schedule.next_due_at == datetime(2026, 11, 24, 13, 0, tzinfo=UTC)


async def test_location_becomes_a_time_zone(app, fake, sessions):
    user = fake.user(3005, language_code="da")
    await consent(user, "da")
    await user.send_location(-36.85, 174.76)  # Auckland
    line = zone_line("Pacific/Auckland", T0, "da")
    assert user.last.text == tx("setup.timezone_confirm", "da", **line)
    assert (await db_user(sessions, 3005)).timezone is None  # not before the patient agrees
    await user.press(tx("setup.zone_yes", "da"))
    assert user.messages[-2].text == tx("setup.timezone_set", "da", **line)
    assert (await db_user(sessions, 3005)).timezone == "Pacific/Auckland"


async def test_stale_and_forged_buttons_change_nothing(app, fake, sessions):
    user = fake.user(3006, language_code="en")
    await consent(user, "en")
    tz_question = user.last
    await user.press(zone_label("Europe/London", T0, "en"))
    assert tz_question.buttons == []  # answered: its buttons are gone
    await user.press(callback_data="tz:Pacific/Auckland", message_id=tz_question.message_id)
    assert user.answers[-1] == tx("setup.stale_button", "en")
    assert user.last.text == tx("setup.ask_times", "en")  # the current question again
    assert (await db_user(sessions, 3006)).timezone == "Europe/London"
    await user.press(callback_data="tz:Mars/Olympus_Mons")
    await user.press(callback_data="nonsense:1")
    assert (await db_user(sessions, 3006)).timezone == "Europe/London"
    await user.press(callback_data="consent:yes")
    assert user.messages[-2].text == tx("start.consent_already", "en")


@pytest.mark.parametrize("kind", ["sticker", "photo", "edit"])
async def test_other_content_mid_setup_keeps_the_step(app, fake, sessions, kind):
    user = fake.user(3007, language_code="es")
    await consent(user, "es")
    if kind == "sticker":
        await user.send_sticker()
    elif kind == "photo":
        await user.send_photo()
    else:
        msg = await user.send("Madrid")
        await user.edit(msg["message_id"], "Lima")
    expected = tx("general.edited", "es") if kind == "edit" else tx("general.only_text", "es")
    assert expected in user.last.text
    row = await db_user(sessions, 3007)
    assert row.timezone is None  # a typed place is confirmed first, and an edit changes nothing
    if kind == "edit":
        confirm = tx("setup.timezone_confirm", "es", **zone_line("Europe/Madrid", T0, "es"))
        assert user.messages[-2].text == confirm


async def test_abandon_and_resume_days_later_or_start_over(app, fake, sessions, clock):
    user = fake.user(3008, language_code="da")
    await consent(user, "da")
    await user.press(zone_label("Europe/Copenhagen", T0, "da"))
    clock.advance(timedelta(days=4))
    await user.send("/start")
    assert user.messages[-2].text == tx("start.resume_setup", "da", name="Ana")
    assert user.last.text == tx("setup.ask_times", "da")
    await user.press(tx("start.restart_setup", "da"), message_id=user.messages[-2].message_id)
    assert user.last.text == tx("setup.ask_language", "da")
    await user.press("Dansk")
    await user.press(zone_label("Europe/Copenhagen", T0, "da"))
    await user.send("07:15")
    await user.press(tx("setup.days_all", "da"))
    [schedule] = await db_schedules(sessions, 3008)
    assert (schedule.local_time, schedule.days) == ("07:15", ALL_DAYS)


async def test_restart_of_the_bot_in_the_middle_of_setup(app, fake, engine, sessions, clock):
    user = fake.user(3009, language_code="en")
    await consent(user, "en")
    await user.send("Copenhagen")
    await user.press(tx("setup.zone_yes", "en"))
    await app.shutdown()  # the process goes away; state is only in the database
    second = await start_app(fake, engine, clock)
    try:
        await user.send("19:45")
        assert user.last.text == tx("setup.ask_days", "en")
        await user.press(tx("setup.days_all", "en"))
        [schedule] = await db_schedules(sessions, 3009)
        assert schedule.local_time == "19:45"
    finally:
        await second.shutdown()
        await app.initialize()  # the fixture shuts the first one down again


async def test_settings_change_shows_next_reminder(app, fake, sessions):
    user = fake.user(3010, language_code="en")
    await setup_through(user, "en", zone="Europe/London")
    await user.send("/settings")
    assert user.last.text.startswith(tx("settings.title", "en"))
    await user.press(tx("settings.times", "en"))
    await user.send("18:00")
    assert user.last.text.startswith(tx("setup.saved", "en"))
    assert (
        format_when(datetime(2026, 11, 23, 18, 0, tzinfo=UTC), "Europe/London", "en")
        in user.last.text
    )
    await user.send("/settings")
    await user.press(tx("settings.timezone", "en"))
    await user.send("New York")
    await user.press(tx("setup.zone_yes", "en"))
    assert user.last.text.startswith(tx("setup.saved", "en"))
    [schedule] = await db_schedules(sessions, 3010)
    assert schedule.next_due_at == datetime(2026, 11, 23, 23, 0, tzinfo=UTC)  # 18:00 EST
    await user.send("/settings")
    await user.press(tx("settings.language", "en"))
    await user.press("Español")
    assert user.last.text.startswith(tx("setup.saved", "es"))


async def test_pause_until_a_date_and_resume(app, fake, sessions):
    user = fake.user(3011, language_code="en")
    await setup_through(user, "en", zone="Europe/London", days_button="setup.days_all")
    await user.send("/pause 2026-11-30")
    text = user.last.text
    assert "30 November" in text
    # Paused through Monday 30th: the next reminder is Tuesday 1 December, 08:30.
    assert format_when(datetime(2026, 12, 1, 8, 30, tzinfo=UTC), "Europe/London", "en") in text
    await user.send("/pause yesterday")
    assert user.last.text == tx("pause.error_invalid", "en")
    await user.send("/pause 2026-01-01")
    assert user.last.text == tx("pause.error_past", "en")
    await user.send("/resume")
    assert user.last.text.startswith(tx("pause.resumed", "en"))
    assert (
        format_when(datetime(2026, 11, 23, 8, 30, tzinfo=UTC), "Europe/London", "en")
        in user.last.text
    )
    await user.send("/pause")
    question = user.last
    await user.press(tx("pause.open", "en"))
    assert tx("common.next_reminder_none", "en") in user.last.text
    assert question.buttons == []  # answered: its buttons are gone
    row = await db_user(sessions, 3011)
    assert row.paused_at is not None and row.paused_until is None


@pytest.mark.parametrize("loc", LOCALES)
async def test_privacy_explains_storage_and_erasure(app, fake, loc):
    user = fake.user(3012, language_code=loc)
    await user.send("/privacy")
    assert "/export" in user.last.text and "/delete" in user.last.text
