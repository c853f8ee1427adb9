"""The daily prompt and the pain check-in, end to end (issue 4)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from bot.db.models import CheckIn, PainScore, Schedule, User
from bot.handlers.checkin import prompt_text
from bot.scheduling.dispatcher import Dispatcher
from bot.services.reminders import Status
from bot.testing.fake_telegram import parse_html
from tests.conftest import setup_through, tx

LOCALES = ("en", "da", "es")
# 08:30 on Monday 23 November 2026 in each language's first suggested zone, in UTC.
DUE = {
    "en": datetime(2026, 11, 23, 8, 30, tzinfo=UTC),
    "da": datetime(2026, 11, 23, 7, 30, tzinfo=UTC),
    "es": datetime(2026, 11, 23, 7, 30, tzinfo=UTC),
}


KEYPAD = [["0", "1", "2", "3", "4", "5"], ["6", "7", "8", "9", "10"]]


def prompt_seen(loc: str, **kw) -> str:
    """The prompt as the patient sees it (HTML parsed away)."""
    return parse_html(prompt_text(loc, **kw))[0].strip()


async def tick(app):
    return await app.bot_data.dispatcher.tick()


async def checkins_of(sessions, telegram_id: int) -> list[CheckIn]:
    async with sessions() as s:
        rows = await s.scalars(
            select(CheckIn).join(User).where(User.telegram_id == telegram_id).order_by(CheckIn.id)
        )
        return list(rows)


async def prompted_patient(app, fake, clock, loc="en", uid=4001, **kw):
    """A patient set up for 08:30 on weekdays who has just received the Monday prompt."""
    user = fake.user(uid, "Ana", language_code=loc)
    await setup_through(user, loc, **kw)
    clock.set(DUE[loc])
    report = await tick(app)
    assert report.sent == 1
    assert user.last.text == prompt_seen(loc)
    return user


@pytest.mark.parametrize("loc", LOCALES)
async def test_full_checkin_with_a_fall_explains_eih_with_own_numbers(
    app, fake, sessions, clock, loc
):
    user = await prompted_patient(app, fake, clock, loc)
    # The prompt carries the pain-before keypad: its first tap starts the session.
    assert user.last.buttons == [
        *KEYPAD,
        [tx("checkin.snooze_15", loc), tx("checkin.snooze_60", loc)],
        [tx("checkin.skip", loc)],
    ]
    taps = len(fake.calls_of("answerCallbackQuery"))
    await user.press("6")
    assert user.last.text == tx("checkin.go_exercise", loc, score=6)
    clock.advance(timedelta(minutes=25))
    await user.press(tx("checkin.done", loc))
    assert user.last.text.startswith(tx("checkin.ask_after", loc))
    await user.press("4")
    # The personal explanation right after the score; the optional effort question below.
    reply = user.last.text
    assert reply.endswith(tx("checkin.ask_effort", loc))
    assert user.last.buttons[-1] == [tx("checkin.effort_skip", loc)]
    assert len(fake.calls_of("answerCallbackQuery")) - taps == 3  # before, Done, after
    [ci] = await checkins_of(sessions, 4001)
    assert ci.status == Status.COMPLETED  # recorded without the optional effort
    await user.press(tx("checkin.effort_easy", loc))
    assert user.answers[-1] == tx("habit.effort_thanks", loc)
    assert user.last.text == reply and user.last.buttons == []
    assert reply.startswith(tx("checkin.result", loc, before=6, after=4))
    assert tx("checkin.first_session", loc) in reply
    # A fall of 2: "may be part of what you felt", with the patient's own numbers.
    assert reply.split("\n\n")[2] == tx("feedback.may_be_eih", loc, before=6, after=4)
    assert tx("feedback.flag_linked", loc) not in reply
    assert tx("feedback.flag_unlinked", loc) not in reply
    [ci] = await checkins_of(sessions, 4001)
    assert (ci.status, ci.pain_before, ci.pain_after, ci.effort, ci.flagged) == (
        Status.COMPLETED,
        6,
        4,
        "easy",
        False,
    )
    assert ci.completed_at == DUE[loc] + timedelta(minutes=25)
    assert not fake.errors


@pytest.mark.parametrize(
    ("before", "after", "flagged"), [(3, 6, True), (5, 8, True), (4, 5, False), (2, 5, False)]
)
async def test_too_much_for_the_load_is_flagged(app, fake, sessions, clock, before, after, flagged):
    user = await prompted_patient(app, fake, clock)
    await user.press(str(before))
    await user.press(tx("checkin.done", "en"))
    await user.press(str(after))
    assert (tx("feedback.flag_unlinked", "en") in user.last.text) is flagged
    await user.press(tx("checkin.effort_skip", "en"))
    [ci] = await checkins_of(sessions, 4001)
    assert ci.flagged is flagged and ci.effort is None and ci.status == Status.COMPLETED


async def test_snooze_brings_the_prompt_back(app, fake, sessions, clock):
    user = await prompted_patient(app, fake, clock)
    await user.press(tx("checkin.snooze_15", "en"))
    assert user.last.text == tx("checkin.snoozed", "en", time="08:45")
    clock.advance(timedelta(minutes=10))
    assert (await tick(app)).sent == 0
    clock.advance(timedelta(minutes=5))
    assert (await tick(app)).sent == 1
    assert user.last.text == prompt_seen("en", again=True)
    await user.press("3")
    [ci] = await checkins_of(sessions, 4001)
    assert (ci.status, ci.pain_before) == (Status.EXERCISING, 3)


async def test_skip_asks_the_barrier_and_answers_it(app, fake, sessions, clock):
    user = await prompted_patient(app, fake, clock, "es")
    await user.press(tx("checkin.skip", "es"))
    assert user.last.text == tx("checkin.ask_barrier", "es")
    question = user.last
    await user.press(tx("checkin.barrier_time", "es"))
    assert user.last.text.startswith(tx("checkin.barrier_reply_time", "es"))
    [ci] = await checkins_of(sessions, 4001)
    # A second barrier for the same skip (a double tap, an old keyboard) changes nothing.
    await user.press(callback_data=f"ci:{ci.id}:bar:pain", message_id=question.message_id)
    assert user.answers[-1] == tx("checkin.duplicate", "es")
    [ci] = await checkins_of(sessions, 4001)
    assert (ci.status, ci.barrier) == (Status.SKIPPED, "time")


async def test_could_not_do_it_during_the_session(app, fake, sessions, clock):
    user = await prompted_patient(app, fake, clock, "da")
    await user.press("5")
    await user.press(tx("checkin.cant", "da"))
    await user.press(tx("checkin.barrier_fear", "da"))
    assert user.last.text.startswith(tx("checkin.barrier_reply_fear", "da"))
    [ci] = await checkins_of(sessions, 4001)
    assert (ci.status, ci.pain_before, ci.barrier) == (Status.SKIPPED, 5, "fear")


async def test_expiry_closes_the_checkin_and_old_buttons(app, fake, sessions, clock):
    user = await prompted_patient(app, fake, clock)
    prompt = user.last
    clock.advance(timedelta(hours=12, minutes=1))
    await tick(app)
    [ci] = await checkins_of(sessions, 4001)
    assert ci.status == Status.MISSED
    assert prompt.buttons == []  # the expired prompt lost its buttons
    await user.press(callback_data=f"ci:{ci.id}:b:5", message_id=prompt.message_id)
    assert user.answers[-1] == tx("checkin.closed", "en")
    [ci] = await checkins_of(sessions, 4001)
    assert ci.status == Status.MISSED and ci.started_at is None


async def test_expired_before_the_tick_is_closed_on_press(app, fake, sessions, clock):
    user = await prompted_patient(app, fake, clock)
    clock.advance(timedelta(hours=13))
    await user.press("5")
    assert user.answers[-1] == tx("checkin.closed", "en")
    [ci] = await checkins_of(sessions, 4001)
    assert ci.status == Status.MISSED


async def test_double_stale_and_forged_presses_record_once(app, fake, sessions, clock):
    user = await prompted_patient(app, fake, clock)
    [ci] = await checkins_of(sessions, 4001)
    keypad = user.last
    await user.press("6")
    # The keypad is gone after the answer; a double tap still arrives with its data.
    await user.press(callback_data=f"ci:{ci.id}:b:6", message_id=keypad.message_id)
    assert user.answers[-1] == tx("checkin.duplicate", "en")
    await user.press(callback_data=f"ci:{ci.id}:b:2", message_id=keypad.message_id)
    assert user.answers[-1] == tx("checkin.wrong_step", "en")
    await user.press(callback_data=f"ci:{ci.id}:a:11", message_id=keypad.message_id)
    await user.press(callback_data=f"ci:{ci.id}:zz", message_id=keypad.message_id)
    await user.press(callback_data="ci:99999:go", message_id=keypad.message_id)
    # Not this patient's check-in: answered with what is open now (their session).
    assert user.answers[-1] == tx("habit.old_prompt", "en")
    assert user.last.text.endswith(tx("checkin.go_exercise", "en", score=6))
    await user.press(callback_data="ci:x:go", message_id=keypad.message_id)
    [ci] = await checkins_of(sessions, 4001)
    assert (ci.status, ci.pain_before, ci.pain_after) == (Status.EXERCISING, 6, None)
    # Another patient cannot touch this check-in, even with its exact data.
    other = fake.user(4002, language_code="en")
    await setup_through(other, "en")
    await other.press(callback_data=f"ci:{ci.id}:done")
    assert other.answers[-1] == tx("checkin.closed", "en")
    [ci] = await checkins_of(sessions, 4001)
    assert ci.status == Status.EXERCISING
    assert not fake.unanswered_callback_queries


async def test_typed_scores_are_validated(app, fake, sessions, clock):
    user = await prompted_patient(app, fake, clock, "da")
    await user.send("hej")  # not a number: the prompt stays as it is, with a hint
    assert user.last.text == tx("general.hint", "da")
    await user.send("7")  # a number typed at the prompt starts the session
    assert user.last.text == tx("checkin.go_exercise", "da", score=7)
    await user.press(tx("checkin.done", "da"))
    for text, key in (("7.5", "fraction"), ("12", "range"), ("syv", "invalid"), ("-1", "range")):
        await user.send(text)
        assert user.last.text.startswith(tx(f"checkin.error_score_{key}", "da")), text
        assert user.last.buttons[1] == ["6", "7", "8", "9", "10"]
    [ci] = await checkins_of(sessions, 4001)
    assert ci.pain_after is None
    await user.send("3")
    [ci] = await checkins_of(sessions, 4001)
    assert (ci.pain_before, ci.pain_after, ci.status) == (7, 3, Status.COMPLETED)


async def test_next_morning_question(app, fake, sessions, clock):
    user = await prompted_patient(app, fake, clock)
    for label in ("5", tx("checkin.done", "en"), "5"):
        await user.press(label)
    await user.press(tx("checkin.effort_hard", "en"))
    clock.set(datetime(2026, 11, 24, 8, 29, tzinfo=UTC))  # London: 08:29 on Tuesday
    await tick(app)
    assert tx("checkin.next_day_ask", "en") not in user.last.text
    # Asked at the first reminder of the day, merged into that prompt.
    clock.set(datetime(2026, 11, 24, 8, 30, tzinfo=UTC))
    report = await tick(app)
    assert (report.next_day, report.sent) == (1, 1)
    assert user.last.text == prompt_seen("en", next_day=True)
    assert user.last.buttons[0] == [
        tx(f"checkin.next_day_{a}", "en") for a in ("better", "same", "worse")
    ]
    await user.press(tx("checkin.next_day_worse", "en"))
    assert user.last.text == tx("feedback.morning_worse", "en")
    await tick(app)  # asked once only
    [first, *_] = await checkins_of(sessions, 4001)
    assert first.next_day_response == "worse"


async def test_reminder_keeps_local_time_across_dst(app, fake, sessions, clock):
    # Copenhagen, daily 08:30; clocks spring forward on Sunday 28 March 2027 (01:00 UTC).
    start = datetime(2027, 3, 27, 6, 0, tzinfo=UTC)
    clock.set(start)
    user = fake.user(4003, language_code="da")
    await setup_through(user, "da", days_button="setup.days_all", now=start)
    clock.set(datetime(2027, 3, 27, 7, 29, tzinfo=UTC))
    assert (await tick(app)).sent == 0
    clock.set(datetime(2027, 3, 27, 7, 30, tzinfo=UTC))  # 08:30 CET
    assert (await tick(app)).sent == 1
    clock.set(datetime(2027, 3, 28, 6, 29, tzinfo=UTC))
    assert (await tick(app)).sent == 0
    clock.set(datetime(2027, 3, 28, 6, 30, tzinfo=UTC))  # 08:30 CEST
    assert (await tick(app)).sent == 1
    due = [c.due_at for c in await checkins_of(sessions, 4003)]
    assert due == [
        datetime(2027, 3, 27, 7, 30, tzinfo=UTC),
        datetime(2027, 3, 28, 6, 30, tzinfo=UTC),
    ]


@pytest.mark.parametrize(
    ("late", "sent"), [(timedelta(hours=1, minutes=59), 1), (timedelta(hours=2, minutes=1), 0)]
)
async def test_bot_down_across_the_due_time(app, fake, sessions, clock, late, sent):
    user = fake.user(4004, language_code="en")
    await setup_through(user, "en")
    clock.set(DUE["en"] + late)  # the bot comes back this late; its first tick runs now
    report = await tick(app)
    assert report.sent == sent
    [ci] = await checkins_of(sessions, 4004)
    assert ci.status == (Status.PROMPTED if sent else Status.MISSED)
    assert (user.last.text == prompt_seen("en")) is bool(sent)


async def test_two_dispatchers_send_each_prompt_once(app, fake, engine, sessions, clock):
    users = [fake.user(5000 + i, language_code="en") for i in range(30)]
    for u in users:
        await setup_through(u, "en")
    clock.set(DUE["en"])
    d = app.bot_data.dispatcher
    second = Dispatcher(app.bot, sessions, d.settings, clock, batch=7)
    first = Dispatcher(app.bot, sessions, d.settings, clock, batch=7)
    for _ in range(6):
        await asyncio.gather(first.tick(), second.tick())
    assert [len([m for m in u.messages if m.text == prompt_seen("en")]) for u in users] == [1] * 30
    async with sessions() as s:
        assert await s.scalar(select(func.count()).select_from(CheckIn)) == 30


async def test_blocked_patient_gets_nothing(app, fake, sessions, clock):
    user = fake.user(4005, language_code="en")
    await setup_through(user, "en")
    await user.block()
    assert (await checkins_of(sessions, 4005)) == []
    clock.set(DUE["en"])
    assert (await tick(app)).sent == 0
    await user.unblock()
    clock.set(DUE["en"] + timedelta(days=1))
    assert (await tick(app)).sent == 1


async def test_403_marks_the_patient_inactive(app, fake, sessions, clock):
    user = fake.user(4006, language_code="en")
    await setup_through(user, "en")
    await user.block()
    async with sessions() as s, s.begin():  # the unblock update never reached us
        await s.execute(update(User).where(User.telegram_id == 4006).values(active=True))
    clock.set(DUE["en"])
    report = await tick(app)
    assert (report.sent, report.blocked) == (0, 1)
    async with sessions() as s:
        assert await s.scalar(select(User.active).where(User.telegram_id == 4006)) is False
    [ci] = await checkins_of(sessions, 4006)
    assert ci.status == Status.UNDELIVERABLE


async def test_paused_patient_gets_nothing(app, fake, sessions, clock):
    user = fake.user(4007, language_code="en")
    await setup_through(user, "en")
    await user.send("/pause 2026-11-24")
    clock.set(DUE["en"])
    assert (await tick(app)).sent == 0
    clock.set(DUE["en"] + timedelta(days=2))  # Wednesday: the pause is over
    assert (await tick(app)).sent == 1


async def test_transient_failures_are_retried_without_loss(app, fake, sessions, clock):
    user = fake.user(4008, language_code="en")
    await setup_through(user, "en")
    fake.inject("sendMessage", status=500, times=1)
    clock.set(DUE["en"])
    assert (await tick(app)).failed == 1
    clock.advance(timedelta(seconds=5))
    assert (await tick(app)).sent == 1
    assert [m.text for m in user.messages].count(prompt_seen("en")) == 1


async def test_pain_command(app, fake, sessions, clock):
    user = fake.user(4009, language_code="es")
    await user.send("/pain")
    assert user.last.text == tx("settings.need_start", "es")
    await setup_through(user, "es")
    await user.send("/pain")
    await user.press("5")
    assert user.last.text == tx("pain.recorded", "es", score=5)
    await user.press(callback_data="pain:5", message_id=user.messages[-2].message_id)
    await user.send("/pain 11")
    assert user.last.text.startswith(tx("checkin.error_score_range", "es"))
    await user.send("3")
    await user.send("/pain 2")
    async with sessions() as s:
        scores = list(await s.scalars(select(PainScore.score).order_by(PainScore.id)))
    assert scores == [5, 3, 2]


async def test_log_a_session_without_a_prompt(app, fake, sessions, clock):
    user = fake.user(4010, language_code="en")
    await setup_through(user, "en")
    await user.send("/log")
    assert user.last.text.startswith(tx("log.intro", "en"))
    for label in ("4", tx("checkin.done", "en"), "2"):
        await user.press(label)
    assert user.last.text.startswith(tx("checkin.result", "en", before=4, after=2))
    await user.press(tx("checkin.effort_moderate", "en"))
    [ci] = await checkins_of(sessions, 4010)
    assert (ci.kind, ci.status, ci.pain_before, ci.pain_after) == ("log", Status.COMPLETED, 4, 2)


async def test_a_session_started_late_is_not_cut_short_by_expiry(app, fake, sessions, clock):
    user = await prompted_patient(app, fake, clock)
    clock.advance(timedelta(hours=11, minutes=50))  # 10 minutes before the check-in expires
    await user.press("5")
    clock.advance(timedelta(minutes=40))  # past the original expiry, mid-session
    await tick(app)
    await user.press(tx("checkin.done", "en"))
    await user.press("3")
    [ci] = await checkins_of(sessions, 4001)
    assert (ci.status, ci.pain_after) == (Status.COMPLETED, 3)


async def test_unanswered_effort_question_still_counts_the_session(app, fake, sessions, clock):
    user = await prompted_patient(app, fake, clock)
    for label in ("5", tx("checkin.done", "en"), "4"):
        await user.press(label)
    clock.advance(timedelta(hours=13))  # the optional effort question is never answered
    await tick(app)
    [ci] = await checkins_of(sessions, 4001)
    assert (ci.status, ci.pain_after, ci.effort) == (Status.COMPLETED, 4, None)


async def test_a_typed_score_is_not_taken_by_an_unanswered_settings_edit(
    app, fake, sessions, clock
):
    user = fake.user(4011, language_code="en")
    await setup_through(user, "en")
    await user.send("/settings")
    await user.press(tx("settings.times", "en"))  # ...and never answers
    clock.set(DUE["en"])
    await tick(app)
    await user.press("6")  # the prompt's keypad: the check-in takes over from the edit
    await user.press(tx("checkin.done", "en"))
    await user.send("3")
    [ci] = await checkins_of(sessions, 4011)
    assert (ci.pain_before, ci.pain_after) == (6, 3)
    async with sessions() as s:
        times = list(
            await s.scalars(select(Schedule.local_time).join(User).where(User.telegram_id == 4011))
        )
    assert times == ["08:30"]


async def test_next_morning_question_after_a_dated_pause_ended(app, fake, sessions, clock):
    user = fake.user(4012, language_code="en")
    await setup_through(user, "en")
    await user.send("/pause 2026-11-22")  # ended yesterday, /resume never sent
    clock.set(DUE["en"])
    await tick(app)
    for label in ("5", tx("checkin.done", "en"), "3"):
        await user.press(label)
    await user.press(tx("checkin.effort_easy", "en"))
    clock.set(datetime(2026, 11, 24, 8, 30, tzinfo=UTC))
    assert (await tick(app)).next_day == 1


async def test_a_rejected_prompt_is_retried_and_the_patient_stays_active(
    app, fake, sessions, clock
):
    user = fake.user(4013, language_code="en")
    await setup_through(user, "en")
    fake.inject("sendMessage", status=400, description="Bad Request: can't parse entities")
    clock.set(DUE["en"])
    report = await tick(app)
    assert (report.sent, report.blocked, report.failed) == (0, 0, 1)
    async with sessions() as s:
        assert await s.scalar(select(User.active).where(User.telegram_id == 4013)) is True
    clock.advance(timedelta(seconds=5))
    assert (await tick(app)).sent == 1
