"""The everyday pain score before, recorded by one guarded statement (bar B4).

``checkins.record_before_quick`` must write exactly what the general path (``load_pressed``,
``start``, ``record_before``) writes, and nothing at all in every case the general path has
more to do (so the handler falls back to it). On SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bot.db.models import CheckIn, User
from bot.services import checkins
from bot.services.reminders import Status

NOW = datetime(2026, 11, 23, 8, 40, tzinfo=UTC)
NUDGE = timedelta(minutes=90)
TG = 7_100_000
# updated_at is the time of the write (the column's onupdate): compared apart.
COLUMNS = [c.key for c in CheckIn.__table__.columns if c.key not in ("id", "user_id", "updated_at")]


async def add_checkin(sessions, telegram_id: int, **values) -> int:
    """A consented patient and one check-in with ``values``; returns the check-in id."""
    async with sessions() as s, s.begin():
        user = await s.scalar(select(User).where(User.telegram_id == telegram_id))
        if user is None:
            user = User(
                telegram_id=telegram_id,
                language="da",
                timezone="Europe/Copenhagen",
                consent_at=NOW - timedelta(days=9),
                consent_version="1",
            )
            s.add(user)
            await s.flush()
        checkin = CheckIn(user_id=user.id, kind="prompt", **values)
        s.add(checkin)
        await s.flush()
        return checkin.id


async def row_of(sessions, checkin_id: int) -> dict:
    async with sessions() as s:
        checkin = await s.get(CheckIn, checkin_id)
        return {key: getattr(checkin, key) for key in COLUMNS}


async def general_path(sessions, checkin_id: int, telegram_id: int, score: int) -> None:
    """What ``on_button`` does for a pain score before when the quick path declines."""
    async with sessions() as s, s.begin():
        user, loaded = await checkins.load_pressed(s, checkin_id, telegram_id, NOW)
        assert loaded.outcome is checkins.Outcome.OK
        assert checkins.record_before(loaded.checkin, score, NOW, NUDGE) is checkins.Outcome.OK
        s.add(user)


async def quick_path(engine, checkin_id: int, telegram_id: int, score: int):
    async with engine.begin() as conn:
        return await checkins.record_before_quick(conn, checkin_id, telegram_id, score, NOW, NUDGE)


# Every status a pain score before may come from, with an expiry before, inside and after the
# session window that starting a check-in guarantees (checkins.SESSION_WINDOW).
STARTS = [
    (status, expires)
    for status in (Status.PENDING, Status.PROMPTED, Status.SNOOZED, Status.STARTED)
    for expires in (None, NOW + timedelta(minutes=30), NOW + timedelta(hours=8))
]


@pytest.mark.parametrize(("status", "expires_at"), STARTS)
async def test_quick_path_writes_what_the_general_path_writes(engine, sessions, status, expires_at):
    started = status == Status.STARTED
    values = dict(
        status=status,
        due_at=NOW - timedelta(minutes=10),
        prompted_at=None if status == Status.PENDING else NOW - timedelta(minutes=10),
        prompt_message_id=55,
        snooze_until=NOW + timedelta(minutes=5) if status == Status.SNOOZED else None,
        lease_until=NOW + timedelta(minutes=1) if status == Status.PENDING else None,
        started_at=NOW - timedelta(minutes=2) if started else None,
        expires_at=expires_at,
        created_at=NOW - timedelta(hours=1),
        updated_at=NOW - timedelta(hours=1),
    )
    general = await add_checkin(sessions, TG, **values)
    quick = await add_checkin(sessions, TG + 1, **values)

    await general_path(sessions, general, TG, 6)
    result = await quick_path(engine, quick, TG + 1, 6)

    assert result == checkins.QuickBefore(quick, 6, "da", "Europe/Copenhagen", False)
    assert await row_of(sessions, quick) == await row_of(sessions, general)
    row = await row_of(sessions, quick)
    assert (row["status"], row["pain_before"], row["nudge_due_at"]) == (
        Status.EXERCISING,
        6,
        NOW + NUDGE,
    )
    async with sessions() as s:
        stamps = [(await s.get(CheckIn, i)).updated_at for i in (general, quick)]
    assert all(stamp > values["updated_at"] for stamp in stamps)


async def _silent(s, user):
    user.silent_since = NOW - timedelta(days=3)


async def _unanswered(s, user):
    user.silent_prompts = 2


async def _away(s, user):
    user.absence = "away"


async def _open_question(s, user):
    user.conv_state = "pain"


async def _no_consent(s, user):
    user.consent_at = None


DECLINED = {
    "silent patient (the press ends the silence)": _silent,
    "prompts unanswered (the press resets the count)": _unanswered,
    "away (the press ends the absence)": _away,
    "an open question to drop": _open_question,
    "no consent": _no_consent,
}


@pytest.mark.parametrize("change", DECLINED.values(), ids=DECLINED.keys())
async def test_quick_path_leaves_every_other_patient_state_to_the_general_path(
    engine, sessions, change
):
    checkin_id = await add_checkin(
        sessions, TG, status=Status.STARTED, started_at=NOW, expires_at=NOW + timedelta(hours=3)
    )
    async with sessions() as s, s.begin():
        await change(s, await s.scalar(select(User).where(User.telegram_id == TG)))
    before = await row_of(sessions, checkin_id)

    assert await quick_path(engine, checkin_id, TG, 4) is None
    assert await row_of(sessions, checkin_id) == before


CHECKIN_CASES = {
    "expired (the general path marks it missed)": dict(
        status=Status.STARTED, expires_at=NOW - timedelta(minutes=1)
    ),
    "already scored (a double tap)": dict(
        status=Status.EXERCISING, pain_before=4, expires_at=NOW + timedelta(hours=3)
    ),
    "finished": dict(status=Status.COMPLETED, pain_before=4, pain_after=3),
    "skipped": dict(status=Status.SKIPPED),
}


@pytest.mark.parametrize("values", CHECKIN_CASES.values(), ids=CHECKIN_CASES.keys())
async def test_quick_path_writes_nothing_on_a_checkin_not_waiting_for_the_score(
    engine, sessions, values
):
    checkin_id = await add_checkin(sessions, TG, **values)
    before = await row_of(sessions, checkin_id)

    assert await quick_path(engine, checkin_id, TG, 4) is None
    assert await row_of(sessions, checkin_id) == before


async def test_quick_path_never_writes_someone_elses_checkin(engine, sessions):
    theirs = await add_checkin(sessions, TG, status=Status.STARTED, started_at=NOW)
    await add_checkin(sessions, TG + 1, status=Status.STARTED, started_at=NOW)
    before = await row_of(sessions, theirs)

    assert await quick_path(engine, theirs, TG + 1, 4) is None  # another patient's press
    assert await quick_path(engine, theirs, 99_999_999, 4) is None  # nobody we know
    assert await row_of(sessions, theirs) == before


# --- The fan-out's prompt send (bar B8) -----------------------------------------------------


@pytest.mark.parametrize("loc", ["en", "da", "es"])
async def test_a_prompt_sent_by_id_is_the_request_send_message_makes(app, fake, loc):
    """``send_message_id`` skips PTB's objects, not a byte of the request: same text, parse
    mode, keypad and options as ``send_message`` (what the patient gets is the same)."""
    from bot.handlers.checkin import prompt_content
    from bot.handlers.ui import keyboard, send_message_id

    patient = fake.user(7_200_001, "Ana", language_code=loc)
    text, rows = prompt_content(41, loc, next_day_id=40, programme="<b>Squats</b> 2 × 10")
    sent = await app.bot.send_message(
        patient.id, text, reply_markup=keyboard(rows), allow_paid_broadcast=True
    )
    message_id = await send_message_id(app.bot, patient.id, text, rows, allow_paid_broadcast=True)

    first, second = (r for r in fake.requests if r.method == "sendMessage")
    assert second.params == first.params
    by_ptb, by_id = patient.messages[-2:]
    assert (by_ptb.message_id, by_id.message_id) == (sent.message_id, message_id)
    assert (by_id.text, by_id.buttons, by_id.callback_data) == (
        by_ptb.text,
        by_ptb.buttons,
        [[data for _, data in row] for row in rows],
    )
