"""The habit over weeks (issue 14): one live prompt, a nudge for a forgotten Done, one
well-timed next-morning question, and a way back after absence. Driven on the injectable
clock, tick by tick, as the running bot would be."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from bot.db.models import CheckIn, HabitEvent, User
from bot.handlers.feedback_text import morning_text
from bot.services.feedback import next_morning_verdict
from bot.services.reminders import Status
from bot.testing.fake_telegram import parse_html
from tests.conftest import T0, prompt_seen, setup_through, tx

# London (the first suggested zone for English): local time is UTC in November.
MON_0830 = datetime(2026, 11, 23, 8, 30, tzinfo=UTC)


async def run_to(app, clock, until: datetime, step: timedelta = timedelta(hours=1)) -> None:
    """Move the clock to ``until`` in steps, running the dispatcher tick at each."""
    while clock.now() < until:
        clock.set(min(clock.now() + step, until))
        await app.bot_data.dispatcher.tick()


async def checkins_of(sessions, telegram_id: int) -> list[CheckIn]:
    async with sessions() as s:
        rows = await s.scalars(
            select(CheckIn).join(User).where(User.telegram_id == telegram_id).order_by(CheckIn.id)
        )
        return list(rows)


async def user_row(sessions, telegram_id: int) -> User:
    async with sessions() as s:
        return await s.scalar(select(User).where(User.telegram_id == telegram_id))


async def events_of(sessions, telegram_id: int) -> list[tuple[str, str | None]]:
    async with sessions() as s:
        rows = await s.execute(
            select(HabitEvent.kind, HabitEvent.detail)
            .join(User, User.id == HabitEvent.user_id)
            .where(User.telegram_id == telegram_id)
            .order_by(HabitEvent.id)
        )
        return [tuple(r) for r in rows]


async def patient(fake, loc="en", uid=6001, times="08:30, 18:00", days="setup.days_all"):
    user = fake.user(uid, "Ana", language_code=loc)
    await setup_through(user, loc, times=times, days_button=days)
    return user


def prompts_in(user, loc="en") -> list:
    """The regular prompts in the chat (their text as sent, whatever was edited since)."""
    head = tx("checkin.prompt", loc)
    return [m for m in user.messages if head in (m.text or "")]


# --- 1. and 4.: eight silent days, then seven more ---------------------------------------------


async def test_eight_silent_days_one_live_prompt_then_the_come_back_offer(
    app, fake, sessions, clock
):
    user = await patient(fake)
    after_setup = len(user.messages)
    await run_to(app, clock, T0 + timedelta(days=8))
    sent = user.messages[after_setup:]
    # Three days of two reminders, then the come-back offer replaces the prompt on day 4;
    # nothing more while it waits (the offer stays live).
    assert [m.text for m in sent] == [prompt_seen("en")] * 6 + [tx("habit.comeback", "en")]
    # Every old prompt lost its buttons; only the offer has live ones.
    assert [m.buttons for m in sent[:6]] == [[]] * 6
    assert sent[6].buttons == [
        [tx("habit.keep", "en"), tx("habit.fewer", "en")],
        [tx("habit.later", "en"), tx("habit.pause", "en")],
    ]
    row = await user_row(sessions, 6001)
    assert row.absence == "away" and row.silent_prompts >= 6
    assert await events_of(sessions, 6001) == [("away", None)]
    # Every slot is on record: done nothing, so each one counts as missed for the therapist.
    cis = await checkins_of(sessions, 6001)
    assert len(cis) == 16
    assert [c.status for c in cis].count(Status.PROMPTED) == 1  # the offer
    # An old prompt pressed anyway (a client that kept its buttons): what is open now.
    first = cis[0]
    await user.press(callback_data=f"ci:{first.id}:b:5", message_id=sent[0].message_id)
    assert user.answers[-1] == tx("habit.old_prompt", "en")
    assert user.last.text.startswith(tx("habit.open_now", "en"))
    assert (await checkins_of(sessions, 6001))[0].pain_before is None


async def test_after_seven_more_silent_days_reminders_come_weekly_until_an_answer(
    app, fake, sessions, clock
):
    user = await patient(fake, times="08:30")
    after_setup = len(user.messages)
    await run_to(app, clock, T0 + timedelta(days=24))
    sent = user.messages[after_setup:]
    weekly = prompt_seen("en", kind="weekly")
    # Days 1-3 prompts, day 4 the offer, then once a week (days 11, 18) with a gentle note.
    assert [m.text for m in sent] == [prompt_seen("en")] * 3 + [tx("habit.comeback", "en")] + [
        weekly
    ] * 2
    assert tx("habit.weekly_note", "en") in weekly
    assert [m.buttons for m in sent] == [[]] * 6  # each expired: no live buttons left
    assert (await user_row(sessions, 6001)).absence == "weekly"
    # Any message restores the schedule: the next day's reminder is the regular one again.
    await user.send("hi")
    assert (await user_row(sessions, 6001)).absence is None
    assert await events_of(sessions, 6001) == [
        ("away", None),
        ("weekly", None),
        ("returned", "message"),
    ]
    count = len(user.messages)
    await run_to(app, clock, T0 + timedelta(days=25))
    assert [m.text for m in user.messages[count:]] == [prompt_seen("en")]
    # /progress shows the time away (the therapist digest reads habit.absence_summary).
    await user.send("/progress")
    summary = user.messages[-2].text
    assert tx("habit.away_line", "en", start="26 Nov", end="17 Dec") in summary
    assert tx("habit.weekly_mark", "en").strip() in summary


async def test_answering_in_time_never_builds_an_absence(app, fake, sessions, clock):
    user = await patient(fake, times="08:30")
    for day in range(6):
        await run_to(app, clock, T0 + timedelta(days=day, hours=2))
        if day % 2 == 0:  # every other day: Skip is an answer too
            await user.press(tx("checkin.skip", "en"))
    sent = [m.text for m in user.messages]
    assert tx("habit.comeback", "en") not in sent
    assert (await user_row(sessions, 6001)).absence is None


# --- Coming back: the four choices, and /start ------------------------------------------------


async def away_patient(app, fake, clock, loc="en"):
    user = await patient(fake, loc=loc, times="08:30")
    await run_to(app, clock, T0 + timedelta(days=3, hours=2))  # Thursday 09:00
    assert user.last.text == tx("habit.comeback", loc)
    return user


async def test_come_back_keep_going_turns_the_offer_into_todays_check_in(
    app, fake, sessions, clock
):
    user = await away_patient(app, fake, clock)
    offer = user.last
    await user.press(tx("habit.keep", "en"))
    assert user.last.message_id == offer.message_id  # the same message, now the prompt
    assert user.last.text.startswith(tx("habit.keep_now", "en"))
    assert ["6", "7", "8", "9", "10"] in user.last.buttons
    assert (await user_row(sessions, 6001)).absence is None
    assert await events_of(sessions, 6001) == [("away", None), ("returned", "keep")]
    await user.press("3")
    assert user.last.text == tx("checkin.go_exercise", "en", score=3)
    await user.press(tx("checkin.done", "en"))
    await user.press("2")
    # Back on the daily schedule (with the next-morning question about that session).
    count = len(user.messages)
    await run_to(app, clock, T0 + timedelta(days=4, hours=2))
    assert [m.text for m in user.messages[count:]] == [prompt_seen("en", next_day=True)]


@pytest.mark.parametrize(
    ("choice", "question"), [("fewer", "setup.ask_days"), ("later", "setup.ask_times")]
)
async def test_come_back_fewer_days_or_another_time_opens_that_setting(
    app, fake, sessions, clock, choice, question
):
    user = await away_patient(app, fake, clock, "da")
    await user.press(tx(f"habit.{choice}", "da"))
    assert user.messages[-2].buttons == []  # the offer was answered
    assert user.last.text.startswith(tx(f"habit.{choice}_lead", "da"))
    assert user.last.text.endswith(tx(question, "da"))
    assert await events_of(sessions, 6001) == [("away", None), ("returned", choice)]
    if choice == "fewer":
        await user.press(tx("setup.days_weekdays", "da"))
    else:
        await user.send("19:00")
    assert tx("setup.saved", "da") in user.last.text
    assert (await user_row(sessions, 6001)).absence is None
    [offer] = [c for c in await checkins_of(sessions, 6001) if c.due_at.day == 26]
    assert offer.status == Status.MISSED


async def test_come_back_pause_one_week(app, fake, sessions, clock):
    user = await away_patient(app, fake, clock, "es")
    await user.press(tx("habit.pause", "es"))
    row = await user_row(sessions, 6001)
    assert row.paused_until == date(2026, 12, 2) and row.absence is None
    assert await events_of(sessions, 6001) == [("away", None), ("returned", "pause")]
    count = len(user.messages)
    await run_to(app, clock, datetime(2026, 12, 3, 9, 0, tzinfo=UTC))
    # Nothing during the week; the regular prompt (not the offer) the day after it.
    assert [m.text for m in user.messages[count:]] == [prompt_seen("es")]


async def test_start_after_an_absence_acknowledges_it_and_offers_the_choices(
    app, fake, sessions, clock
):
    user = await away_patient(app, fake, clock, "da")
    await user.send("/start")
    assert user.last.text == tx("habit.welcome_back_away", "da", name="Ana")
    assert user.last.buttons == [
        [tx("habit.keep", "da"), tx("habit.fewer", "da")],
        [tx("habit.later", "da"), tx("habit.pause", "da")],
    ]
    assert (await user_row(sessions, 6001)).absence is None
    await user.press(tx("habit.keep", "da"), message_id=user.last.message_id)
    assert user.last.text.startswith(tx("habit.keep_later", "da"))
    # An ordinary /start later is the usual welcome back with the settings.
    await user.send("/start")
    assert user.last.text.startswith(tx("start.welcome_back", "da", name="Ana"))


# --- 2. A forgotten Done ------------------------------------------------------------------------


@pytest.mark.parametrize("did", [True, False])
async def test_forgotten_done_gets_one_nudge_then_did_you_do_it(app, fake, sessions, clock, did):
    user = await patient(fake, times="08:30")
    await run_to(app, clock, MON_0830, step=timedelta(minutes=30))
    await user.press("4")
    await run_to(app, clock, MON_0830 + timedelta(minutes=89), step=timedelta(minutes=1))
    assert user.last.text == tx("checkin.go_exercise", "en", score=4)
    await run_to(app, clock, MON_0830 + timedelta(minutes=95), step=timedelta(minutes=1))
    assert user.last.text == tx("habit.nudge", "en").replace("<b>", "").replace("</b>", "")
    assert user.last.buttons == [[tx("checkin.done", "en")], [tx("checkin.cant", "en")]]
    nudges = len(user.messages)
    # Not Done after all: at expiry (12 hours after the slot) it asks once, not vanishes.
    await run_to(app, clock, MON_0830 + timedelta(hours=13), step=timedelta(minutes=30))
    assert len(user.messages) == nudges + 1  # no second nudge; one question
    assert user.last.text == tx("habit.did_ask", "en")
    assert user.messages[-2].buttons == []  # the nudge's Done went with the expiry
    await user.press(tx("habit.did_yes" if did else "habit.did_no", "en"))
    assert user.last.text == tx("habit.did_recorded" if did else "habit.did_not", "en")
    [ci] = await checkins_of(sessions, 6001)
    assert ci.status == (Status.COMPLETED if did else Status.MISSED)
    assert ci.pain_before == 4
    await user.press(callback_data=f"ci:{ci.id}:did:yes", message_id=user.messages[-2].message_id)
    assert user.answers[-1] == tx("checkin.duplicate" if did else "checkin.closed", "en")
    if did:  # it counts for the streak
        await user.send("/progress")
        assert tx("progress.streak", "en", count=1).split(":")[0] in "\n".join(
            m.text or "" for m in user.messages[-3:]
        )


async def test_done_in_time_means_no_nudge(app, fake, sessions, clock):
    user = await patient(fake, times="08:30")
    await run_to(app, clock, MON_0830, step=timedelta(minutes=30))
    await user.press("4")
    clock.advance(timedelta(minutes=30))
    await user.press(tx("checkin.done", "en"))
    await user.press("3")
    count = len(user.messages)
    await run_to(app, clock, MON_0830 + timedelta(hours=14), step=timedelta(minutes=30))
    assert user.messages[count:] == []


# --- 3. The next-morning question ---------------------------------------------------------------


async def do_session(user, before="5", after="4"):
    await user.press(before)
    await user.press(tx("checkin.done", "en"))
    await user.press(after)


async def test_two_reminders_a_day_one_next_morning_question_merged_into_the_first(
    app, fake, sessions, clock
):
    user = await patient(fake)  # 08:30 and 18:00, every day
    await run_to(app, clock, MON_0830, step=timedelta(minutes=30))
    await do_session(user)
    await run_to(app, clock, datetime(2026, 11, 23, 18, 0, tzinfo=UTC), step=timedelta(minutes=30))
    await do_session(user, "6", "5")
    count = len(user.messages)
    await run_to(app, clock, datetime(2026, 11, 24, 23, 0, tzinfo=UTC), step=timedelta(minutes=30))
    ask = tx("checkin.next_day_ask", "en")
    asked = [m for m in user.messages[count:] if ask in (m.text or "")]
    assert len(asked) == 1  # once a day, about the day's latest session
    assert asked[0].text == prompt_seen("en", next_day=True)  # merged into the 08:30 prompt
    cis = await checkins_of(sessions, 6001)
    assert [c.next_day_asked_at is not None for c in cis[:2]] == [False, True]


async def test_the_next_morning_question_never_lands_inside_a_check_in(app, fake, sessions, clock):
    user = await patient(fake, times="08:30")
    await run_to(app, clock, MON_0830, step=timedelta(minutes=30))
    await do_session(user)
    # Tuesday 08:20: a session logged by hand, still under way at 08:30.
    await run_to(app, clock, datetime(2026, 11, 24, 8, 20, tzinfo=UTC), step=timedelta(hours=1))
    await user.send("/log")
    await user.press("5")
    count = len(user.messages)
    await run_to(app, clock, datetime(2026, 11, 24, 8, 30, tzinfo=UTC), step=timedelta(minutes=5))
    ask = tx("checkin.next_day_ask", "en")
    # Neither the question nor a new prompt in the middle of the session.
    assert user.last.text == tx("checkin.go_exercise", "en", score=5)
    assert user.messages[count:] == []
    await user.press(tx("checkin.done", "en"))
    await user.press("3")
    await run_to(app, clock, datetime(2026, 11, 24, 9, 5, tzinfo=UTC), step=timedelta(minutes=5))
    assert user.last.text == ask  # once the session is over
    assert sum(ask in (m.text or "") for m in user.messages) == 1


@pytest.mark.parametrize("answer", ["worse", "better"])
async def test_the_next_morning_answer_changes_the_next_reply(app, fake, sessions, clock, answer):
    user = await patient(fake, times="08:30")
    await run_to(app, clock, MON_0830, step=timedelta(minutes=30))
    await do_session(user, "5", "5")
    await run_to(app, clock, MON_0830 + timedelta(days=1), step=timedelta(hours=1))
    await user.press(tx(f"checkin.next_day_{answer}", "en"))
    reply = user.last.text
    prompt = user.messages[-2]
    assert tx(f"checkin.next_day_{answer}", "en") not in sum(prompt.buttons, [])
    assert ["6", "7", "8", "9", "10"] in prompt.buttons  # the merged prompt stays usable
    [monday] = [c for c in await checkins_of(sessions, 6001) if c.due_at == MON_0830]
    # What the answer means is the clinical rules' verdict; the flow carries it out.
    verdict = next_morning_verdict(answer, session_flagged=False, rise=0)
    assert verdict.lighter_next_time is (answer == "worse")
    assert reply == parse_html(morning_text(verdict, "en", linked=False))[0].strip()
    assert monday.flagged is verdict.flag  # for the therapist's digest
    # The next check-in starts with a lighter version only after "worse".
    await user.press("4", message_id=prompt.message_id)
    [edited] = [m for m in user.messages if m.message_id == prompt.message_id]
    assert (tx("feedback.go_lighter", "en") in edited.text) is (answer == "worse")
    # ...and the day after, the prompt itself starts with it.
    assert (await user_row(sessions, 6001)).lighter_next is (answer == "worse")
    await user.press(tx("checkin.done", "en"))
    await user.press("4")
    assert (await user_row(sessions, 6001)).lighter_next is False  # used once


# --- 1. One live prompt -------------------------------------------------------------------------


async def test_a_new_prompt_takes_the_buttons_of_the_unanswered_one(app, fake, sessions, clock):
    user = await patient(fake)  # 08:30 and 18:00; the 08:30 one is left unanswered
    await run_to(app, clock, datetime(2026, 11, 23, 18, 0, tzinfo=UTC), step=timedelta(hours=1))
    morning, evening = prompts_in(user)
    assert morning.buttons == [] and evening.buttons != []
    first, second = await checkins_of(sessions, 6001)
    assert (first.status, second.status) == (Status.MISSED, Status.PROMPTED)
    # Pressed anyway: the press is answered with the evening prompt.
    await user.press(callback_data=f"ci:{first.id}:b:6", message_id=morning.message_id)
    assert user.answers[-1] == tx("habit.old_prompt", "en")
    assert user.last.text == f"{tx('habit.open_now', 'en')}\n\n{prompt_seen('en')}"
    await user.press("6")
    first, second = await checkins_of(sessions, 6001)
    assert (first.pain_before, second.pain_before) == (None, 6)


# --- 6. Answered questions lose their buttons ---------------------------------------------------


async def test_the_old_setup_language_row_no_longer_changes_the_language(
    app, fake, sessions, clock
):
    # Telegram in French: setup asks the language first (the question whose row this is).
    user = fake.user(6001, "Ana", language_code="fr")
    await setup_through(user, "en", times="08:30", days_button="setup.days_all")
    [lang_question] = [m for m in user.messages if m.text == tx("setup.ask_language", "en")]
    assert lang_question.buttons == []
    await user.press(callback_data="lang:da", message_id=lang_question.message_id)
    assert user.answers[-1] == tx("setup.stale_button", "en")
    assert (await user_row(sessions, 6001)).language == "en"
    await user.send("/language")  # the command's own buttons still work
    await user.press(tx("common.language_name.da", "da"))
    assert (await user_row(sessions, 6001)).language == "da"


# --- 7. /progress never shows weeks before the patient started ----------------------------------


async def test_progress_starts_at_the_week_the_patient_started(app, fake, sessions, clock):
    from bot.services.progress import compute_progress

    await patient(fake, times="08:30")
    async with sessions() as s:
        user = await s.scalar(select(User).where(User.telegram_id == 6001))
        first = await compute_progress(s, user, T0 + timedelta(hours=3))
        later = await compute_progress(s, user, T0 + timedelta(days=15))
    assert [w.start for w in first.weeks] == [date(2026, 11, 23)]
    assert [w.start for w in later.weeks] == [
        date(2026, 11, 23),
        date(2026, 11, 30),
        date(2026, 12, 7),
    ]


async def test_no_new_prompt_in_the_middle_of_a_session(app, fake, sessions, clock):
    user = await patient(fake)  # 08:30 and 18:00
    await run_to(app, clock, datetime(2026, 11, 23, 17, 30, tzinfo=UTC), step=timedelta(hours=1))
    await user.send("/log")  # a session by hand at 17:30, still going at 18:00
    await user.press("5")
    await run_to(app, clock, datetime(2026, 11, 23, 18, 30, tzinfo=UTC), step=timedelta(minutes=30))
    assert len(prompts_in(user)) == 1  # only the morning one
    await user.press(tx("checkin.done", "en"))
    await user.press("3")
    await run_to(app, clock, datetime(2026, 11, 24, 9, 0, tzinfo=UTC), step=timedelta(hours=1))
    assert len(prompts_in(user)) == 2  # the next morning's, as usual
