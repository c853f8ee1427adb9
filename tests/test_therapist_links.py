"""Therapists link patients with consent, end to end through the fake Bot API (issue 7)."""

from __future__ import annotations

import re
import secrets
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bot.db.models import InviteCode, Therapist, TherapistLink, User
from bot.services import therapists
from tests.conftest import setup_through, tx

ADMIN = 9_000_001
THERAPIST, OTHER_THERAPIST = 7001, 7002
PATIENT, SECOND_PATIENT = 8001, 8002


async def make_therapist(fake, sessions, uid=THERAPIST, name="Anna", loc="en"):
    """A therapist who has talked to the bot once, granted from the command line."""
    user = fake.user(uid, name, language_code=loc)
    await user.send("/privacy")
    async with sessions() as s, s.begin():
        await therapists.grant(s, uid)
    return user


async def new_invite(therapist, args: str = "") -> str:
    await therapist.send(f"/invite {args}".strip())
    found = re.search(
        r"https://t\.me/PainCoachTestBot\?start=([A-Za-z0-9_-]+)", therapist.last.text
    )
    assert found, therapist.last.text
    return found[1]


async def ready_patient(fake, uid=PATIENT, name="Ben", loc="en"):
    patient = fake.user(uid, name, language_code=loc)
    await setup_through(patient, loc)
    return patient


async def links(sessions) -> list[TherapistLink]:
    async with sessions() as s:
        return list(await s.scalars(select(TherapistLink).order_by(TherapistLink.id)))


async def db_user(sessions, telegram_id: int) -> User:
    async with sessions() as s:
        return await s.scalar(select(User).where(User.telegram_id == telegram_id))


def ask_text(loc: str, name: str = "Anna") -> str:
    return tx("therapist.link_ask", loc, therapist=name)


@pytest.mark.parametrize("loc", ["en", "da", "es"])
async def test_invite_confirm_and_revoke(app, fake, sessions, clock, loc):
    anna = await make_therapist(fake, sessions)
    code = await new_invite(anna)
    assert len(code) == 32
    # Only the code's SHA-256 is stored.
    async with sessions() as s:
        [row] = await s.scalars(select(InviteCode))
    assert row.code_hash == therapists.hash_code(code) and code not in row.code_hash
    assert row.expires_at == clock.now() + timedelta(days=14) and not row.multi_use

    ben = await ready_patient(fake, loc=loc)
    await ben.send(f"/start {code}")
    assert ben.last.text == ask_text(loc)
    assert ben.last.buttons == [[tx("therapist.link_yes", loc), tx("therapist.link_no", loc)]]
    [pending] = await links(sessions)
    assert pending.consented_at is None and (await db_user(sessions, PATIENT)).display_name is None

    await ben.press(tx("therapist.link_yes", loc))
    assert ben.last.text == tx("therapist.link_confirmed", loc, therapist="Anna")
    assert anna.last.text == tx("therapist.new_patient", "en", patient="Ben")
    [link] = await links(sessions)
    assert link.consented_at == clock.now() and link.revoked_at is None
    assert (await db_user(sessions, PATIENT)).display_name == "Ben"

    await anna.send("/patients")
    assert "1. Ben" in anna.last.text

    await ben.send("/therapist")
    assert "Anna" in ben.last.text
    stop = tx("therapist.stop_button", loc, therapist="Anna")
    assert ben.last.buttons == [[stop]]
    clock.advance(timedelta(days=3))
    await ben.press(stop)
    assert ben.last.text.startswith(tx("therapist.revoked", loc, therapist="Anna"))
    assert tx("therapist.shared_none", loc) in ben.last.text
    [link] = await links(sessions)
    assert link.revoked_at == clock.now()
    # The name was kept only for the therapist: with no link left, it is gone.
    assert (await db_user(sessions, PATIENT)).display_name is None
    await anna.send("/patients")
    assert anna.last.text == tx("therapist.patients_none", "en")
    assert not fake.errors


async def test_link_before_consent_asks_consent_then_sharing_then_setup(app, fake, sessions):
    anna = await make_therapist(fake, sessions)
    code = await new_invite(anna)
    cleo = fake.user(PATIENT, "Cleo", language_code="es")
    await cleo.send(f"/start {code}")
    assert tx("start.consent_ask", "es") in cleo.last.text
    assert tx("therapist.consent_then_link", "es", therapist="Anna") in cleo.last.text
    # Before consent: only the conversation state (the code's hash), no link, no name.
    user = await db_user(sessions, PATIENT)
    assert user.consent_at is None and user.conv_data == {"invite": therapists.hash_code(code)}
    assert await links(sessions) == []

    await cleo.press(tx("start.consent_yes", "es"))
    assert cleo.messages[-2].text == tx("start.consent_thanks", "es")
    assert cleo.last.text == ask_text("es")
    await cleo.press(tx("therapist.link_yes", "es"))
    # Right after the answer, setup goes on where it was: the first question.
    assert cleo.messages[-2].text == tx("therapist.link_confirmed", "es", therapist="Anna")
    # Telegram in Spanish: setup goes on at the time zone, without asking the language.
    assert cleo.last.text == tx("setup.ask_timezone", "es")
    [link] = await links(sessions)
    assert link.consented_at is not None


async def test_not_now_before_consent_stores_nothing(app, fake, sessions):
    anna = await make_therapist(fake, sessions)
    code = await new_invite(anna)
    dan = fake.user(PATIENT, "Dan", language_code="da")
    await dan.send(f"/start {code}")
    await dan.press(tx("start.consent_no", "da"))
    assert dan.last.text == tx("start.consent_declined", "da")
    user = await db_user(sessions, PATIENT)
    assert (user.consent_at, user.conv_state, user.conv_data) == (None, None, None)
    assert await links(sessions) == []


async def test_declining_deletes_the_request_and_leaves_the_code_usable(app, fake, sessions):
    anna = await make_therapist(fake, sessions)
    code = await new_invite(anna)
    ben = await ready_patient(fake)
    await ben.send(f"/start {code}")
    await ben.press(tx("therapist.link_no", "en"))
    assert ben.last.text == tx("therapist.link_declined", "en", therapist="Anna")
    assert await links(sessions) == []
    other = await ready_patient(fake, SECOND_PATIENT, "Eva")
    await other.send(f"/start {code}")
    await other.press(tx("therapist.link_yes", "en"))
    [link] = await links(sessions)
    assert link.consented_at is not None


async def test_expired_code(app, fake, sessions, clock):
    anna = await make_therapist(fake, sessions)
    code = await new_invite(anna)
    ben = await ready_patient(fake)
    clock.advance(timedelta(days=13, hours=23))
    await ben.send(f"/start {code}")
    assert ben.last.text == ask_text("en")
    # Opened in time, answered too late: the code's expiry decides.
    clock.advance(timedelta(hours=2))
    await ben.press(tx("therapist.link_yes", "en"))
    assert ben.last.text == tx("therapist.invite_expired", "en")
    assert await links(sessions) == []
    eva = await ready_patient(fake, SECOND_PATIENT, "Eva")
    await eva.send(f"/start {code}")
    assert eva.last.text == tx("therapist.invite_expired", "en")
    assert await links(sessions) == []


async def test_single_use_code_used_twice(app, fake, sessions):
    anna = await make_therapist(fake, sessions)
    code = await new_invite(anna)
    ben = await ready_patient(fake)
    eva = await ready_patient(fake, SECOND_PATIENT, "Eva")
    # Both open it before either answers; the first to confirm uses it up.
    await ben.send(f"/start {code}")
    await eva.send(f"/start {code}")
    await ben.press(tx("therapist.link_yes", "en"))
    await eva.press(tx("therapist.link_yes", "en"))
    assert eva.last.text == tx("therapist.invite_used", "en")
    # Opened again after use: refused at once.
    await eva.send(f"/start {code}")
    assert eva.last.text == tx("therapist.invite_used", "en")
    [link] = await links(sessions)
    assert (
        link.consented_at is not None and link.patient_id == (await db_user(sessions, PATIENT)).id
    )
    async with sessions() as s:
        assert await s.scalar(select(InviteCode.uses)) == 1


async def test_double_tap_on_share_links_once(app, fake, sessions):
    anna = await make_therapist(fake, sessions)
    code = await new_invite(anna)
    ben = await ready_patient(fake)
    await ben.send(f"/start {code}")
    ask = ben.last
    await ben.press(tx("therapist.link_yes", "en"))
    data = f"tl:y:{(await links(sessions))[0].id}"
    await ben.press(callback_data=data, message_id=ask.message_id)
    assert ben.answers[-1] == tx("therapist.link_linked", "en")
    async with sessions() as s:
        assert await s.scalar(select(InviteCode.uses)) == 1


async def test_multi_use_code_links_several_patients(app, fake, sessions):
    anna = await make_therapist(fake, sessions)
    code = await new_invite(anna, "multi")
    assert anna.last.text.startswith(
        tx("therapist.invite_created_multi", "en", until="x", link="y")[:40]
    )
    for uid, name in ((PATIENT, "Ben"), (SECOND_PATIENT, "Eva")):
        patient = await ready_patient(fake, uid, name)
        await patient.send(f"/start {code}")
        await patient.press(tx("therapist.link_yes", "en"))
    assert [link.consented_at is not None for link in await links(sessions)] == [True, True]
    await anna.send("/patients")
    assert "1. Ben" in anna.last.text and "2. Eva" in anna.last.text


async def test_guessed_and_malformed_codes_fail_and_write_nothing(app, fake, sessions):
    anna = await make_therapist(fake, sessions)
    await new_invite(anna)
    ben = await ready_patient(fake)
    for _ in range(50):
        await ben.send(f"/start {secrets.token_urlsafe(24)}")
        assert ben.last.text == tx("therapist.invite_invalid", "en")
    for payload in ("abc", "x" * 65, "a b", "../../etc/passwd", "<b>hi</b>", "é" * 32):
        await ben.send(f"/start {payload}")
        assert ben.last.text == tx("therapist.invite_malformed", "en")
    assert await links(sessions) == []
    assert not fake.errors


async def test_bad_link_before_consent_points_to_start(app, fake, sessions):
    eva = fake.user(PATIENT, "Eva", language_code="da")
    await eva.send("/start " + secrets.token_urlsafe(24))
    assert eva.last.text == "\n\n".join(
        (tx("therapist.invite_invalid", "da"), tx("therapist.invite_start_hint", "da"))
    )
    user = await db_user(sessions, PATIENT)
    assert (user.consent_at, user.conv_state, user.conv_data) == (None, None, None)


async def test_revoked_codes(app, fake, sessions):
    anna = await make_therapist(fake, sessions)
    first, second, third = [await new_invite(anna) for _ in range(3)]
    await anna.send(f"/invite revoke https://t.me/PainCoachTestBot?start={first}")
    assert anna.last.text == tx("therapist.invites_revoked", "en", count=1)
    ben = await ready_patient(fake)
    await ben.send(f"/start {first}")
    assert ben.last.text == tx("therapist.invite_revoked", "en")
    await ben.send(f"/start {second}")
    assert ben.last.text == ask_text("en")
    await anna.send("/invite revoke")
    assert anna.last.text == tx("therapist.invites_revoked", "en", count=2)
    # Revoked after opening, before the answer: the answer is refused too.
    await ben.press(tx("therapist.link_yes", "en"))
    assert ben.last.text == tx("therapist.invite_revoked", "en")
    await ben.send(f"/start {third}")
    assert ben.last.text == tx("therapist.invite_revoked", "en")
    await anna.send(f"/invite revoke {first}")
    assert anna.last.text == tx("therapist.invite_not_found", "en")
    assert await links(sessions) == []


async def test_own_link_and_already_linked(app, fake, sessions):
    anna = await make_therapist(fake, sessions)
    await setup_through(anna, "en")
    code = await new_invite(anna, "multi")
    await anna.send(f"/start {code}")
    assert anna.last.text == tx("therapist.invite_own", "en")
    ben = await ready_patient(fake)
    await ben.send(f"/start {code}")
    await ben.press(tx("therapist.link_yes", "en"))
    await ben.send(f"/start {code}")
    assert ben.last.text == tx("therapist.invite_linked", "en", therapist="Anna")
    assert len(await links(sessions)) == 1


async def test_a_therapist_never_sees_another_ones_patients(app, fake, sessions):
    anna = await make_therapist(fake, sessions)
    ben = await ready_patient(fake, name="Benedikte")
    await ben.send(f"/start {await new_invite(anna)}")
    await ben.press(tx("therapist.link_yes", "en"))
    [link] = await links(sessions)
    spare_code = await new_invite(anna)

    mallory = await make_therapist(fake, sessions, OTHER_THERAPIST, "Mallory")
    await mallory.send("/patients")
    assert mallory.last.text == tx("therapist.patients_none", "en")
    await mallory.send("/digest")
    assert tx("therapist.digest_none", "en") in mallory.last.text
    # Forged buttons with Anna's patient's link id: refused, nothing changes.
    for data in (
        f"tl:rv:{link.id}",
        f"tl:y:{link.id}",
        f"tl:n:{link.id}",
        "tl:ok",
        "tl:y:x",
        "tl:rv:²",
    ):
        await mallory.press(callback_data=data)
    await mallory.send(f"/invite revoke {spare_code}")
    assert mallory.last.text == tx("therapist.invite_not_found", "en")
    seen = "\n".join(m.text or "" for m in mallory.messages) + "".join(
        a or "" for a in mallory.answers
    )
    assert "Benedikte" not in seen
    [after] = await links(sessions)
    assert (after.consented_at, after.revoked_at) == (link.consented_at, None)
    # Anna's spare code still works, and her patient still shows.
    async with sessions() as s:
        assert await s.scalar(select(InviteCode.revoked_at).where(InviteCode.uses == 0)) is None
    await anna.send("/patients")
    assert "Benedikte" in anna.last.text
    # A patient pressing someone else's link id changes nothing either.
    eva = await ready_patient(fake, SECOND_PATIENT, "Eva")
    await eva.press(callback_data=f"tl:rv:{link.id}")
    assert eva.answers[-1] == tx("therapist.revoke_stale", "en")
    assert (await links(sessions))[0].revoked_at is None
    assert not fake.unanswered_callback_queries


async def test_therapist_commands_need_the_role(app, fake, sessions):
    ben = await ready_patient(fake)
    for command in ("/invite", "/patients", "/digest", "/invite multi"):
        await ben.send(command)
        assert ben.last.text == tx("therapist.not_therapist", "en")
    async with sessions() as s:
        assert await s.scalar(select(func.count()).select_from(InviteCode)) == 0


async def test_grant_and_revoke_by_an_operator_only(app, fake, sessions):
    app.bot_data.settings = app.bot_data.settings.model_copy(
        update={"admin_ids": frozenset({ADMIN})}
    )
    anna = fake.user(THERAPIST, "Anna", language_code="en")
    await anna.send("/grant 7001")
    assert anna.last.text == tx("general.unknown_command", "en")
    async with sessions() as s:
        assert await s.scalar(select(func.count()).select_from(Therapist)) == 0

    admin = fake.user(ADMIN, "Olga", language_code="da")
    await admin.send("/grant")
    assert admin.last.text == tx("therapist.role_usage", "da")
    await admin.send("/grant @anna")
    assert admin.last.text == tx("therapist.role_usage", "da")
    await admin.send("/grant 7001")
    assert admin.last.text == tx("therapist.role_granted", "da", id=7001)
    await admin.send("/grant 7001")
    assert admin.last.text == tx("therapist.role_already", "da", id=7001)

    code = await new_invite(anna)
    ben = await ready_patient(fake)
    await ben.send(f"/start {code}")
    await ben.press(tx("therapist.link_yes", "en"))
    await admin.send("/revoke_therapist 7001")
    assert admin.last.text == tx("therapist.role_removed", "da", id=7001)
    await admin.send("/revoke_therapist 7001")
    assert admin.last.text == tx("therapist.role_not_found", "da", id=7001)
    assert await links(sessions) == []
    assert (await db_user(sessions, PATIENT)).display_name is None
    await anna.send("/patients")
    assert anna.last.text == tx("therapist.not_therapist", "en")
    await ben.send("/therapist")
    assert ben.last.text == tx("therapist.shared_none", "en")


async def test_therapist_command_before_consent_and_for_a_therapist(app, fake, sessions):
    eva = fake.user(PATIENT, "Eva", language_code="es")
    await eva.send("/therapist")
    assert eva.last.text == tx("settings.need_start", "es")
    anna = await make_therapist(fake, sessions)
    await setup_through(anna, "en")
    await anna.send("/therapist")
    assert anna.last.text == "\n\n".join(
        (tx("therapist.shared_none", "en"), tx("therapist.you_are_therapist", "en"))
    )


async def test_names_are_escaped(app, fake, sessions):
    anna = await make_therapist(fake, sessions, name="<b>Dr & Co</b>")
    code = await new_invite(anna)
    ben = await ready_patient(fake, name="Ben <i>&</i>")
    await ben.send(f"/start {code}")
    assert ben.last.text.startswith("<b>Dr & Co</b> ")
    await ben.press(tx("therapist.link_yes", "en"))
    await anna.send("/patients")
    assert "1. Ben <i>&</i>" in anna.last.text
    assert not fake.errors


async def test_invite_survives_a_plain_start_before_consent(app, fake, sessions):
    anna = await make_therapist(fake, sessions)
    code = await new_invite(anna)
    dana = fake.user(PATIENT, "Dana", language_code="da")
    await dana.send(f"/start {code}")
    await dana.send("/start")  # the patient starts over without the link
    await dana.press(tx("start.consent_yes", "da"))
    assert dana.last.text == ask_text("da")  # the sharing question still comes
    await dana.press(tx("therapist.link_yes", "da"))
    [link] = await links(sessions)
    assert link.consented_at is not None
