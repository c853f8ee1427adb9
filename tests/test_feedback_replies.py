"""What the patient reads after a pain score (issue 13): the rules' replies, the safety net.

Two layers: the pure composition over every before/after pair (bot/handlers/feedback_text.py,
exactly what a patient reads), and one conversation per situation in English, Danish and
Spanish through the real Application and the fake Bot API.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bot.db.models import CheckIn, PainScore, User
from bot.handlers import feedback_text
from bot.i18n import t
from bot.services import education, safety
from bot.services.feedback import Situation, assess
from bot.services.timezones import country_of_zone
from tests.conftest import setup_through, tx

LOCALES = ("en", "da", "es")
PAIRS = [(b, a) for b in range(11) for a in range(11)]
ZONES = {"en": "Europe/London", "da": "Europe/Copenhagen", "es": "Europe/Madrid"}
NUMBER = {"en": "999", "da": "112", "es": "112"}
# Monday 23 November 2026, 08:30 in each language's first suggested zone (the setup's prompt).
DUE = {
    "en": datetime(2026, 11, 23, 8, 30, tzinfo=UTC),
    "da": datetime(2026, 11, 23, 7, 30, tzinfo=UTC),
    "es": datetime(2026, 11, 23, 7, 30, tzinfo=UTC),
}

FALL_KEYS = ("feedback.may_be_eih",)
RISE_KEYS = (
    "feedback.acceptable",
    "feedback.acceptable_usual",
    "feedback.too_much",
    "feedback.too_much_usual",
    "feedback.watch_rise",
)
FALL_TIPS = {tip.key for tip in education.candidates_for(education.Situation.MAY_BE_EIH)}
RISE_TIPS = {
    tip.key
    for s in (education.Situation.ACCEPTABLE, education.Situation.TOO_MUCH)
    for tip in education.candidates_for(s)
}


def fragments(key: str, loc: str) -> str:
    """A message's fixed start (before its first placeholder), to find it in a reply."""
    return t(key, loc, before=0, after=0, usual=0).split("0")[0][:40]


def every_reply(before: int, after: int, loc: str, usual: float | None):
    """Every reply the bot can give to this pair (one per tip that fits), with its parts."""
    a = assess(before, after, usual=usual)
    for tip in education.candidates_for(education.for_checkin(a.situation)):
        for linked in (False, True):
            lines = feedback_text.result_lines(
                a,
                loc,
                tip=education.render_tip(tip, loc),
                first_session=False,
                linked=linked,
                tz=ZONES[loc],
            )
            yield a, tip.key, "\n\n".join(lines)


@pytest.mark.parametrize("loc", LOCALES)
@pytest.mark.parametrize("usual", [None, 6.5])
def test_no_reply_speaks_of_a_fall_and_a_rise_together(loc, usual):
    for before, after in PAIRS:
        for a, tip_key, reply in every_reply(before, after, loc, usual):
            fall = any(fragments(k, loc) in reply for k in FALL_KEYS) or tip_key in FALL_TIPS
            rise = any(fragments(k, loc) in reply for k in RISE_KEYS) or tip_key in RISE_TIPS
            assert not (fall and rise), (before, after, reply)
            assert fall is (a.situation is Situation.MAY_BE_EIH), (before, after)
            assert rise is (a.situation in (Situation.ACCEPTABLE, Situation.TOO_MUCH))
            line = feedback_text.safety_line(ZONES[loc], loc)
            assert (line in reply) is (before >= 8 or after >= 8), (before, after)
            assert NUMBER[loc] in line
            flagged = t("feedback.flag_linked", loc) in reply or (
                t("feedback.flag_unlinked", loc) in reply
            )
            assert flagged is (a.situation is Situation.TOO_MUCH), (before, after)
            assert len(reply) < 4096


def test_english_replies_read_one_way():
    """The plain words, checked too: "went down" and "went up" never share a reply."""
    for before, after in PAIRS:
        for _, _, reply in every_reply(before, after, "en", None):
            assert not ("went down" in reply and "went up" in reply), (before, after)
            if after - before in (-1, 0, 1) and not (before >= 8 and after >= 8):
                assert "about the same" in reply
            assert "hypoalgesia" not in reply or after <= before - 2


def test_the_usual_level_is_named_for_a_patient_whose_pain_is_usually_high():
    text = feedback_text.situation_text(assess(5, 8, usual=6.5), "da")
    assert "6,5" in text and text.startswith("Dine smerter steg fra 5 til 8")
    text = feedback_text.situation_text(assess(5, 9, usual=6.5), "en")
    assert text == t("feedback.too_much_usual", "en", before=5, after=9, usual="6.5", limit="7")
    # 8 after a rise of 2 is too much even though it is within usual + 2 (capped at 7)
    text = feedback_text.situation_text(assess(6, 8, usual=6.5), "es")
    assert text == t("feedback.too_much_usual", "es", before=6, after=8, usual="6,5", limit="7")


@pytest.mark.parametrize("loc", LOCALES)
def test_about_the_same_but_above_the_limit_says_so(loc):
    for before, after in [(5, 6), (6, 7), (7, 6), (8, 7)]:
        text = feedback_text.situation_text(assess(before, after), loc)
        assert text == t("feedback.about_same_above", loc, limit="5"), (before, after)
    assert feedback_text.situation_text(assess(4, 5), loc) == t("feedback.about_same", loc)
    text = feedback_text.situation_text(assess(7, 8, usual=6.5), loc)
    usual = "6.5" if loc == "en" else "6,5"
    assert text == t("feedback.about_same_above_usual", loc, limit="7", usual=usual)
    # within min(usual + 2, 7) for a patient whose usual pain is 6-7: plain "about the same"
    assert feedback_text.situation_text(assess(6, 7, usual=6.5), loc) == t(
        "feedback.about_same", loc
    )


# --- the safety net -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("my knee is really bad today, should I still do it?", True),
        ("It hurts more than yesterday", True),
        ("worse today", True),
        ("Should I rest", True),
        ("can I skip", True),
        ("Mit knæ gør ondt", True),
        ("Det er værre i dag", True),
        ("smerterne er slemme", True),
        ("skal jeg træne i dag", True),
        ("Kan jeg springe over", True),
        ("me duele la rodilla", True),
        ("estoy peor", True),
        ("¿puedo hacerlo hoy", True),
        ("debo entrenar con dolor", True),
        ("Tengo mucho dolor", True),
        ("hello", False),
        ("thanks!", False),
        ("tak", False),
        ("gracias", False),
        ("ok", False),
        ("good morning", False),
        ("", False),
        ("   ", False),
    ],
)
def test_typed_text_that_needs_the_safety_net(text, expected):
    assert safety.needs_safety_net(text) is expected


@pytest.mark.parametrize(
    ("zone", "country", "number"),
    [
        ("Europe/Copenhagen", "DK", "112"),
        ("Europe/Madrid", "ES", "112"),
        ("Atlantic/Canary", "ES", "112"),
        ("Europe/Berlin", "DE", "112"),
        ("America/New_York", "US", "911"),
        ("US/Pacific", "US", "911"),  # a link name
        ("America/Toronto", "CA", "911"),
        ("Europe/London", "GB", "999"),
        ("America/Bogota", "CO", None),  # not guessed: "your local emergency number"
        ("UTC", None, None),
        (None, None, None),
        ("Not/AZone", None, None),
    ],
)
def test_emergency_number_from_the_time_zone(zone, country, number):
    assert country_of_zone(zone) == country
    assert safety.emergency_number(zone) == number
    shown = feedback_text.emergency(zone, "en")
    assert shown == (number or t("safety.emergency_local", "en"))


# --- conversations: one per situation, in each language --------------------------------------


async def log_session(user, loc, before, after):
    """/log, pain before, Done, pain after, effort skipped: the reply from the rules."""
    await user.send("/log")
    await user.press(str(before))
    await user.press(tx("checkin.done", loc))
    await user.press(str(after))
    await user.press(tx("checkin.effort_skip", loc))
    return user.last.text


async def patient(fake, loc, uid):
    user = fake.user(uid, "Ana", language_code=loc)
    await setup_through(user, loc)
    return user


def safety_text(loc):
    return tx("safety.line", loc, emergency=NUMBER[loc])


SITUATIONS = {
    # situation: (before, after, the rules' message, safety line, flag line)
    "about_same": (4, 5, ("feedback.about_same", {}), False, False),
    "about_same_above": (5, 6, ("feedback.about_same_above", {"limit": 5}), False, False),
    "may_be_eih": (6, 3, ("feedback.may_be_eih", {"before": 6, "after": 3}), False, False),
    "acceptable": (2, 5, ("feedback.acceptable", {"before": 2, "after": 5}), False, False),
    "too_much": (4, 7, ("feedback.too_much", {"before": 4, "after": 7}), False, True),
    "high_stable": (9, 9, ("feedback.high_stable", {}), True, False),
}


@pytest.mark.parametrize("loc", LOCALES)
@pytest.mark.parametrize("name", list(SITUATIONS))
async def test_each_situation_in_each_language(app, fake, sessions, loc, name):
    before, after, (key, values), with_safety, with_flag = SITUATIONS[name]
    user = await patient(fake, loc, 7100 + list(SITUATIONS).index(name))
    reply = await log_session(user, loc, before, after)
    parts = reply.split("\n\n")
    assert parts[0] == tx("checkin.result", loc, before=before, after=after)
    assert tx(key, loc, **values) in reply
    assert (safety_text(loc) in reply) is with_safety
    assert (tx("feedback.flag_unlinked", loc) in reply) is with_flag
    if name == "acceptable":  # a rise of 3 within the acceptable range: watched
        assert tx("feedback.watch_rise", loc) in reply
    async with sessions() as s:
        [ci] = list(await s.scalars(select(CheckIn)))
    assert ci.flagged is with_flag
    assert not fake.errors


@pytest.mark.parametrize("loc", LOCALES)
async def test_high_pain_before_a_session_offers_gentle_or_skip(app, fake, sessions, loc):
    user = await patient(fake, loc, 7200)
    await user.send("/log")
    await user.press("9")
    text = user.last.text
    assert text.startswith(tx("feedback.high_before", loc, score=9))
    assert tx("checkin.go_exercise", loc, score=9) not in text  # never a plain "do it now"
    assert safety_text(loc) in text
    assert user.last.buttons == [
        [tx("feedback.gentle", loc), tx("checkin.skip", loc)],
        [tx("checkin.done", loc)],
    ]
    await user.press(tx("feedback.gentle", loc))
    assert user.last.text == tx("feedback.gentle_go", loc)
    await user.press(tx("checkin.done", loc))
    await user.press("8")
    await user.press(tx("checkin.effort_skip", loc))
    assert tx("feedback.high_stable", loc) in user.last.text
    assert safety_text(loc) in user.last.text
    assert not fake.errors


@pytest.mark.parametrize("loc", LOCALES)
async def test_high_pain_before_then_skip_today(app, fake, sessions, loc):
    user = await patient(fake, loc, 7210)
    await user.send("/log")
    await user.press("10")
    await user.press(tx("checkin.skip", loc))
    assert user.last.text == tx("checkin.ask_barrier", loc)
    await user.press(tx("checkin.barrier_pain", loc))
    reply = user.last.text
    assert reply.startswith(tx("checkin.barrier_reply_pain", loc))
    assert reply.endswith(safety_text(loc))  # "pain too high": the safety line, always
    async with sessions() as s:
        [ci] = list(await s.scalars(select(CheckIn)))
    assert (ci.status, ci.barrier, ci.pain_before) == ("skipped", "pain", 10)


@pytest.mark.parametrize(
    ("loc", "answer", "reply_key", "flagged"),
    [
        ("en", "worse", "feedback.morning_worse", True),
        ("da", "same", "feedback.morning_suited", False),
        ("es", "better", "feedback.morning_suited", False),
    ],
)
async def test_next_morning_verdict_after_a_rise_of_three(
    app, fake, sessions, clock, loc, answer, reply_key, flagged
):
    user = await patient(fake, loc, 7300)
    reply = await log_session(user, loc, 2, 5)  # acceptable, watched (a rise of 3)
    assert tx("feedback.watch_rise", loc) in reply
    async with sessions() as s:
        ci = await s.scalar(select(CheckIn).order_by(CheckIn.id))
        due = ci.next_day_due_at
    clock.set(due)
    await app.bot_data.dispatcher.tick()
    # At the first reminder of the day: merged into that day's prompt (issue 14).
    assert user.last.text.startswith(tx("checkin.next_day_ask", loc))
    await user.press(tx(f"checkin.next_day_{answer}", loc))
    expected = tx(reply_key, loc)
    if flagged:
        expected += "\n\n" + tx("feedback.flag_unlinked", loc)
    assert user.last.text == expected
    async with sessions() as s:
        ci = await s.scalar(select(CheckIn).order_by(CheckIn.id))
    assert ci.flagged is flagged and ci.next_day_response == answer


async def test_a_worse_morning_makes_the_next_session_lighter(app, fake, sessions, clock):
    user = await patient(fake, "en", 7310)
    await log_session(user, "en", 3, 4)
    async with sessions() as s:
        due = (await s.scalar(select(CheckIn).order_by(CheckIn.id))).next_day_due_at
    clock.set(due)
    await app.bot_data.dispatcher.tick()
    await user.press(tx("checkin.next_day_worse", "en"))
    assert user.last.text == tx("feedback.morning_worse", "en")  # not flagged on its own
    await user.send("/log")
    await user.press("4")
    assert user.last.text == (
        tx("checkin.go_exercise", "en", score=4) + "\n\n" + tx("feedback.go_lighter", "en")
    )


async def test_usual_pain_above_5_changes_what_is_acceptable(app, fake, sessions, clock):
    user = await patient(fake, "en", 7320)
    async with sessions() as s:
        uid = await s.scalar(select(User.id).where(User.telegram_id == 7320))
        for n, score in enumerate([6, 7, 6, 7, 7, 6]):
            s.add(PainScore(user_id=uid, score=score, recorded_at=clock.now() - timedelta(days=n)))
        await s.commit()
    reply = await log_session(user, "en", 5, 7)  # +2, ending 0.5 above the usual 6.5
    assert tx("feedback.acceptable_usual", "en", before=5, after=7, usual="6.5") in reply
    assert tx("feedback.flag_unlinked", "en") not in reply
    # +2 ending at 8: within usual + 2, but 8-10 after a session is never acceptable
    reply = await log_session(user, "en", 6, 8)  # the first session's 5 is now usual too
    values = {"before": 6, "after": 8, "usual": "6", "limit": "7"}
    assert tx("feedback.too_much_usual", "en", **values) in reply
    assert tx("feedback.flag_unlinked", "en") in reply
    assert safety_text("en") in reply  # 8 after: the safety line all the same
    reply = await log_session(user, "en", 7, 8)  # about the same, but above the limit of 7
    assert tx("feedback.about_same_above_usual", "en", limit="7", usual="6") in reply
    assert safety_text("en") in reply


@pytest.mark.parametrize("loc", LOCALES)
async def test_pain_command_at_8_or_more_adds_the_safety_line(app, fake, sessions, loc):
    user = await patient(fake, loc, 7400)
    await user.send("/pain 7")
    assert user.last.text == tx("pain.recorded", loc, score=7)
    await user.send("/pain 8")
    assert user.last.text == tx("pain.recorded", loc, score=8) + "\n\n" + safety_text(loc)


@pytest.mark.parametrize(
    ("loc", "zone", "number"),
    [("en", "America/New_York", "911"), ("da", None, "112"), ("es", None, "112")],
)
async def test_help_lists_the_red_flags_with_the_local_number(app, fake, loc, zone, number):
    user = fake.user(7500, language_code=loc)
    await setup_through(user, loc, zone=zone)
    await user.send("/help")
    assert user.last.text.endswith(tx("safety.red_flags", loc, emergency=number))


@pytest.mark.parametrize(
    ("loc", "text"),
    [
        ("en", "my knee is really bad today, should I still do it?"),
        ("da", "Mit knæ gør ondt i dag, skal jeg stadig træne?"),
        ("es", "Me duele mucho la rodilla, ¿debería entrenar igual?"),
    ],
)
async def test_a_worried_question_gets_the_safety_net(app, fake, sessions, clock, loc, text):
    user = await patient(fake, loc, 7600)
    await user.send(text)
    net = tx("safety.net", loc, emergency=NUMBER[loc])
    assert user.last.text == net + "\n\n" + tx("safety.actions", loc)
    assert tx("general.hint", loc) not in user.last.text
    # With today's prompt open, "Skip today" is a button right there, and it works.
    clock.set(DUE[loc])
    await app.bot_data.dispatcher.tick()
    await user.send(text)
    assert user.last.text == net + "\n\n" + tx("safety.actions_skip", loc)
    await user.press(tx("checkin.skip", loc))
    assert user.last.text == tx("checkin.ask_barrier", loc)


async def test_a_worried_message_while_a_score_is_awaited(app, fake):
    user = await patient(fake, "en", 7610)
    await user.send("/log")
    await user.send("it hurts a lot, is that normal?")
    assert user.last.text.startswith(tx("safety.net", "en", emergency="999"))
    assert user.last.buttons == [["0", "1", "2", "3", "4", "5"], ["6", "7", "8", "9", "10"]]
