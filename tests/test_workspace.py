"""The therapist's workspace (issue 16): their own start, settings and menu, a page per
patient, notes both ways, the clinic report; end to end through the fake Bot API."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bot.db.models import CheckIn, Therapist, TherapistNote, User
from bot.handlers import menus
from bot.i18n import t
from bot.l10n import weekday_name
from bot.services import therapists
from bot.services.schedule_rules import wall_clock_instant
from tests.conftest import T0, setup_through, tx
from tests.test_therapist_links import make_therapist, new_invite

THERAPIST, OTHER = 7101, 7102
PATIENT, PATIENT2 = 8101, 8102
ADMIN = 9_000_001


async def therapist_row(sessions, uid=THERAPIST) -> tuple[User, Therapist]:
    async with sessions() as s:
        return (
            await s.execute(
                select(User, Therapist)
                .join(Therapist, Therapist.user_id == User.id)
                .where(User.telegram_id == uid)
            )
        ).one()


async def set_up_therapist(fake, sessions, uid=THERAPIST, name="Anna", loc="en"):
    """A granted therapist who went through their own /start with buttons."""
    anna = await make_therapist(fake, sessions, uid, name, loc)
    await anna.send("/start")
    await anna.press(tx(f"common.language_name.{loc}", loc))
    from bot.services.timezones import SUGGESTED

    await anna.press(callback_data=f"tw:tz:{SUGGESTED[loc][0]}")
    await anna.press(weekday_name(0, loc))
    await anna.press("08:00")
    return anna


async def linked_patient(fake, therapist, uid=PATIENT, name="Ben", loc="en"):
    code = await new_invite(therapist)
    patient = fake.user(uid, name, language_code=loc)
    await setup_through(patient, loc)
    await patient.send(f"/start {code}")
    await patient.press(tx("therapist.link_yes", loc))
    return patient


# ---------------------------------------------------------------------------------------------
# 1. Start and settings
# ---------------------------------------------------------------------------------------------


async def test_therapist_start_asks_language_zone_and_digest_time(app, fake, sessions, clock):
    anna = await make_therapist(fake, sessions, THERAPIST, "Anna", "en")
    await anna.send("/start")
    welcome = anna.messages[-2].text
    assert welcome.startswith(tx("workspace.welcome", "en", name="Anna")[:20])
    assert "/invite" in welcome and tx("start.consent_ask", "en") not in welcome
    assert anna.last.text == tx("workspace.ask_language", "en")
    await anna.press(tx("common.language_name.da", "da"))
    assert anna.last.text == tx("workspace.ask_timezone", "da")
    await anna.send("København")  # typed, read by the patients' zone parser
    assert anna.last.text == tx("workspace.ask_day", "da")
    await anna.send("onsdag")
    assert anna.last.text == tx("workspace.ask_time", "da")
    await anna.send("25:00")  # bad input: a clear re-ask, nothing lost
    assert anna.last.text.startswith(tx("workspace.error_time", "da"))
    await anna.send("7.30")
    assert "onsdag kl. 07:30" in anna.last.text
    user, therapist = await therapist_row(sessions)
    assert (user.language, user.timezone) == ("da", "Europe/Copenhagen")
    assert (therapist.digest_weekday, therapist.digest_time) == (2, "07:30")
    # Wednesday 25 November 2026, 07:30 in Copenhagen = 06:30 UTC.
    assert therapist.next_digest_at == wall_clock_instant(
        T0.date() + timedelta(days=2), __import__("datetime").time(7, 30), "Europe/Copenhagen"
    )
    assert therapist.settings_done_at is not None and user.consent_at is None
    # Not a patient: the offer to use it for their own exercise.
    assert anna.last.buttons == [[tx("workspace.also_patient_button", "da")]]

    # /settings works for a therapist who never consented as a patient.
    await anna.send("/settings")
    assert anna.last.text.startswith(tx("workspace.settings_title", "da"))
    await anna.press(tx("workspace.button_timezone", "da"))
    await anna.send("Madrid")
    assert anna.last.text.startswith(tx("workspace.saved", "da"))
    user, therapist = await therapist_row(sessions)
    assert user.timezone == "Europe/Madrid"
    assert not fake.errors


async def test_a_therapist_can_be_a_patient_too(app, fake, sessions):
    anna = await set_up_therapist(fake, sessions)
    await anna.press(tx("workspace.also_patient_button", "en"))
    assert tx("start.consent_ask", "en") in anna.last.text
    await anna.press(tx("start.consent_yes", "en"))
    from bot.services.timezones import SUGGESTED

    await anna.press(callback_data=f"tz:{SUGGESTED['en'][0]}")
    await anna.send("08:30")
    await anna.press(tx("setup.days_weekdays", "en"))
    await anna.send("/start")  # both roles: the therapist summary, then the patient's
    assert anna.messages[-2].text.startswith(tx("workspace.welcome_back", "en", name="Anna"))
    assert anna.last.text.startswith(tx("start.welcome_back", "en", name="Anna"))
    await anna.send("/help")
    assert "/patients" in anna.last.text and "/pain" in anna.last.text
    # Her menu now holds both.
    [*_, last] = fake.calls_of("setMyCommands")
    names = [c["command"] for c in last["commands"]]
    assert names[:5] == list(menus.THERAPIST_COMMANDS) and "pain" in names


# ---------------------------------------------------------------------------------------------
# 2. The command menu
# ---------------------------------------------------------------------------------------------


async def test_menu_is_scoped_to_the_chat_and_follows_the_role(app, fake, sessions):
    app.bot_data.settings = app.bot_data.settings.model_copy(
        update={"admin_ids": frozenset({ADMIN})}
    )
    admin = fake.user(ADMIN, "Op", language_code="en")
    carla = fake.user(THERAPIST, "Carla", language_code="es")
    await carla.send("/start")  # known to the bot, not a therapist
    before = len(fake.calls_of("setMyCommands"))
    await admin.send(f"/grant {THERAPIST}")
    [call] = fake.calls_of("setMyCommands")[before:]
    assert call["scope"] == {"type": "chat", "chat_id": THERAPIST}
    commands = {c["command"]: c["description"] for c in call["commands"]}
    assert list(commands)[1:6] == list(menus.THERAPIST_COMMANDS)
    assert commands["patients"] == tx("workspace.commands.patients", "es")
    _, therapist = await therapist_row(sessions)
    assert therapist.menu_language == "es"
    # /help lists the therapist commands.
    await carla.send("/help")
    assert "/patients" in carla.last.text and "/invite" in carla.last.text

    await admin.send(f"/revoke_therapist {THERAPIST}")
    # Back to the patient menu, in the language she chose.
    [after] = fake.calls_of("setMyCommands")[-1:]
    assert after["scope"] == {"type": "chat", "chat_id": THERAPIST}
    assert [c["command"] for c in after["commands"]] == list(menus.MENU_COMMANDS)
    await carla.send("/help")
    assert "/patients" not in carla.last.text


async def test_menu_of_a_therapist_granted_from_the_command_line(app, fake, sessions, engine):
    dora = fake.user(THERAPIST, "Dora", language_code="da")
    await dora.send("/start")
    async with sessions() as s, s.begin():
        await therapists.grant(s, THERAPIST)  # the CLI: no bot to call
    # At start-up every therapist without a menu gets one.
    from bot.handlers.workspace import refresh_stale_menus

    assert await refresh_stale_menus(app.bot, app.bot_data.sessions) == 1
    call = fake.calls_of("setMyCommands")[-1]
    assert call["scope"]["chat_id"] == THERAPIST
    assert call["commands"][1]["description"] == tx("workspace.commands.patients", "da")
    assert await refresh_stale_menus(app.bot, app.bot_data.sessions) == 0
    # /language changes the menu's language at once.
    await dora.send("/language")
    await dora.press("Español")
    call = fake.calls_of("setMyCommands")[-1]
    assert call["commands"][1]["description"] == tx("workspace.commands.patients", "es")
    # Removed from the CLI: the next /start takes the menu away.
    async with sessions() as s, s.begin():
        await therapists.revoke(s, THERAPIST)
    await dora.send("/start")
    # Her Telegram is in Danish, the bot in Spanish: the patient menu in Spanish, chat-scoped.
    call = fake.calls_of("setMyCommands")[-1]
    assert call["scope"]["chat_id"] == THERAPIST
    assert [c["command"] for c in call["commands"]] == list(menus.MENU_COMMANDS)
    assert call["commands"][1]["description"] == tx("commands.settings", "es")


# ---------------------------------------------------------------------------------------------
# 3. The patient page
# ---------------------------------------------------------------------------------------------


async def record_session(sessions, uid, before, after, at, *, flagged=False, next_day=None):
    async with sessions() as s, s.begin():
        user = await s.scalar(select(User).where(User.telegram_id == uid))
        s.add(
            CheckIn(
                user_id=user.id,
                kind="log",
                status="completed",
                pain_before=before,
                pain_after=after,
                effort="moderate",
                flagged=flagged,
                next_day_response=next_day,
                created_at=at,
                completed_at=at,
            )
        )


async def test_patient_page_shows_weeks_flags_chart_and_buttons(app, fake, sessions, clock):
    anna = await set_up_therapist(fake, sessions)
    ben = await linked_patient(fake, anna)
    await linked_patient(fake, anna, PATIENT2, "Ceci")
    clock.advance(timedelta(days=2))
    await record_session(sessions, PATIENT, 4, 8, clock.now() - timedelta(hours=3), flagged=True)
    await record_session(
        sessions, PATIENT, 5, 3, clock.now() - timedelta(hours=1), next_day="worse"
    )
    await anna.send("/patients")
    # Ben is flagged (pain 8, a rise of 3+), so he comes first, with his flag count.
    labels = [row[0] for row in anna.last.buttons]
    assert labels[0].startswith("⚠️ Ben (") and labels[1] == "Ceci"
    await anna.press(labels[0])
    page = anna.last.text
    assert page.startswith("Ben, shares with you since 23 November 2026")
    assert "Sessions: none planned (+2 logged on their own)" in page
    # The flags are the digest's (issue 13's rules), with their dates and numbers.
    assert tx("therapist.flag.too_much", "en", count=1, date="25 November") in page
    assert "The morning after: better 0, same 0, worse 1" in page
    assert anna.messages[-2].photo is not None  # the chart
    assert anna.last.buttons == [
        [tx("workspace.button_note", "en"), tx("workspace.button_report", "en")],
        [tx("workspace.button_plan", "en")],
    ]
    # Weeks before Ben joined are not listed: he joined this week.
    assert "Week of" not in page
    assert not fake.errors
    del ben


async def test_second_therapist_and_forged_ids_see_nothing(app, fake, sessions, clock):
    anna = await set_up_therapist(fake, sessions)
    await linked_patient(fake, anna)
    eva = await set_up_therapist(fake, sessions, OTHER, "Eva")
    await anna.send("/patients")
    data = anna.last.button_data("Ben")
    shown = len(eva.messages)
    for forged in (data, "tw:p:999999", "tw:n:" + data.rsplit(":", 1)[1], "tw:r:1", "tw:p:x"):
        await eva.press(callback_data=forged)
    assert len(eva.messages) == shown  # no page, no photo, no document
    assert eva.answers[-5:-1] == [tx("workspace.not_available", "en")] * 4
    # A revoked link: Anna's own old button shows nothing either.
    ben = fake.user(PATIENT, "Ben")
    await ben.send("/therapist")
    await ben.press(tx("therapist.stop_button", "en", therapist="Anna"))
    shown = len(anna.messages)
    await anna.press(callback_data=data)
    assert len(anna.messages) == shown and anna.answers[-1] == tx("workspace.not_available", "en")


# ---------------------------------------------------------------------------------------------
# 4. Notes
# ---------------------------------------------------------------------------------------------


async def count_notes(sessions) -> int:
    async with sessions() as s:
        return await s.scalar(select(func.count()).select_from(TherapistNote))


@pytest.mark.parametrize("erase", ["patient", "therapist"])
async def test_note_and_reply_delivered_then_erased_by_delete(app, fake, sessions, erase):
    anna = await set_up_therapist(fake, sessions)
    ben = await linked_patient(fake, anna, name="Ben <b>")
    await anna.send("/patients")
    await anna.press(anna.last.buttons[0][0])
    await anna.press(tx("workspace.button_note", "en"))
    await anna.send("x" * 1001)
    assert anna.last.text == tx("workspace.note_too_long", "en", count=1001, max=1000)
    await anna.send("Try 3 <i>slow</i> squats & rest")
    assert anna.last.text == tx("workspace.note_sent", "en", name="Ben &lt;b&gt;")
    assert (
        ben.last.text == "Note from Anna (your physiotherapist):\n\nTry 3 <i>slow</i> squats & rest"
    )
    await ben.press(tx("workspace.note_reply_button", "en"))
    await ben.send("Done, knee felt fine")
    assert ben.last.text == tx("workspace.reply_sent", "en", name="Anna")
    assert anna.last.text == "Reply from Ben <b>:\n\nDone, knee felt fine"
    assert await count_notes(sessions) == 2
    # Both show on the page and in the patient's export.
    await anna.press(t("workspace.open_page_button", "en", name="Ben <b>"))
    assert "you: Try 3 <i>slow</i> squats" in anna.last.text
    assert "Ben <b>: Done, knee felt fine" in anna.last.text
    await ben.send("/export")
    csv_text = ben.messages[-2].document.decode("utf-8-sig")
    assert "Done, knee felt fine" in csv_text and "squats" in csv_text

    who = ben if erase == "patient" else anna
    await who.send("/delete")
    await who.press(tx("privacy_export.delete_yes", "en"))
    assert await count_notes(sessions) == 0
    if erase == "therapist":  # item 7: the patient's name went with the last link
        async with sessions() as s:
            user = await s.scalar(select(User).where(User.telegram_id == PATIENT))
        assert user.display_name is None
    assert not fake.errors


async def test_revoked_link_stops_notes_both_ways(app, fake, sessions):
    anna = await set_up_therapist(fake, sessions)
    ben = await linked_patient(fake, anna)
    await anna.send("/patients")
    await anna.press(anna.last.buttons[0][0])
    await anna.press(tx("workspace.button_note", "en"))
    await anna.send("Hello")
    await ben.send("/therapist")
    await ben.press(tx("therapist.stop_button", "en", therapist="Anna"))
    await ben.press(tx("workspace.note_reply_button", "en"))
    assert ben.answers[-1] == tx("workspace.link_ended", "en")
    await anna.press(tx("workspace.button_note", "en"))
    assert anna.answers[-1] == tx("workspace.not_available", "en")
    assert await count_notes(sessions) == 1


# ---------------------------------------------------------------------------------------------
# 5. The report
# ---------------------------------------------------------------------------------------------


def pdf_text(data: bytes) -> tuple[str, int]:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(data))
    return "\n".join(p.extract_text() for p in reader.pages), len(reader.pages)


@pytest.mark.parametrize("loc", ["en", "da"])
async def test_report_names_the_patient_and_lists_sessions(app, fake, sessions, clock, loc):
    anna = await set_up_therapist(fake, sessions, loc=loc)
    await linked_patient(fake, anna, name="Søren Ñúñez", loc=loc)
    clock.advance(timedelta(days=1))
    await record_session(sessions, PATIENT, 4, 8, clock.now() - timedelta(hours=2), flagged=True)
    await record_session(sessions, PATIENT, 6, 3, clock.now() - timedelta(hours=1))
    await anna.send("/patients")
    await anna.press(anna.last.buttons[0][0])
    await anna.press(tx("workspace.button_report", loc))
    pdf = anna.last.document
    text, pages = pdf_text(pdf)
    assert 1 <= pages <= 2
    assert tx("workspace.report_title", loc, name="Søren Ñúñez") in text
    assert tx("workspace.report_flag_yes", loc) in text
    assert tx("checkin.effort_moderate", loc) in text
    assert "self" in text or "selvrapporterede" in text
    flat = " ".join(text.split())  # the footer: what is flagged, numbers from the rules module
    assert "%{" not in flat
    assert "ended above 5" in flat or "endte over 5" in flat
    assert "worse the next morning" in flat or "værre næste morgen" in flat
    assert not fake.errors


async def test_a_note_left_unwritten_does_not_swallow_later_text(app, fake, sessions, clock):
    anna = await set_up_therapist(fake, sessions)
    await linked_patient(fake, anna)
    await anna.send("/patients")
    await anna.press(anna.last.buttons[0][0])
    await anna.press(tx("workspace.button_note", "en"))
    clock.advance(timedelta(hours=2))
    await anna.send("5")
    assert anna.last.text == tx("general.hint_start", "en")  # not a note any more
    assert await count_notes(sessions) == 0


async def test_report_of_a_busy_month_is_two_pages_in_spanish(app, fake, sessions, clock):
    anna = await set_up_therapist(fake, sessions, loc="es")
    await linked_patient(fake, anna, name="Íñigo", loc="es")
    clock.advance(timedelta(days=27))
    for n in range(60):
        at = clock.now() - timedelta(hours=11 * n + 1)
        await record_session(sessions, PATIENT, 5, 3 + n % 4, at, flagged=n % 9 == 0)
    async with sessions() as s, s.begin():
        user = await s.scalar(select(User).where(User.telegram_id == PATIENT))
        s.add(
            CheckIn(
                user_id=user.id,
                kind="prompt",
                status="skipped",
                barrier="fear",
                due_at=clock.now() - timedelta(days=3),
                created_at=clock.now() - timedelta(days=3),
            )
        )
    await anna.send("/patients")
    await anna.press(anna.last.buttons[0][0])
    await anna.press(tx("workspace.button_report", "es"))
    text, pages = pdf_text(anna.last.document)
    assert pages == 2
    assert tx("workspace.report_title", "es", name="Íñigo") in text
    assert tx("workspace.report_more_rows", "es", count=61 - 34) in text
    assert "preocupado" in text or tx("therapist.barrier.fear", "es") in text
    assert anna.last.filename.startswith("informe-Íñigo-")


@pytest.mark.parametrize("loc", ["en", "es"])
async def test_report_lists_the_programme_changes_in_the_third_person(sessions, clock, loc):
    """Issue 17: every programme change is shown in the clinic report, with who made it."""
    from bot import report
    from bot.services import programmes, workspace

    async with sessions() as s, s.begin():
        patient = User(
            telegram_id=PATIENT,
            language=loc,
            timezone="Europe/Madrid",
            consent_at=clock.now() - timedelta(days=3),
            setup_done_at=clock.now() - timedelta(days=3),
        )
        s.add(patient)
        await s.flush()
        await programmes.choose_starter(s, patient, "back", clock.now() - timedelta(days=2))
        data = await workspace.report_data(s, patient, "Íñigo", clock.now())
    text, pages = pdf_text(report.build_report(data, loc))
    assert tx("workspace.report_programme_title", loc) in text
    assert tx("plan.starter.back", loc) in text
    assert "Íñigo" in text.split(tx("workspace.report_programme_title", loc))[1]
    assert (
        tx("plan.who_you", loc)
        not in text.split(tx("workspace.report_programme_title", loc))[1].split()
    )
