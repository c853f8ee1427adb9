"""The chart, /export (CSV and PDF) and /delete: rendering in every language, the CSV read
back against the database, the clinic report as the PDF, erasure that leaves no row naming the
patient (SQLite and PostgreSQL), and the confirmation flow through the fake Bot API.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
import struct
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import String, Text, func, inspect, select

from bot.charts import render_progress_chart
from bot.db.models import (
    Base,
    CheckIn,
    DigestSent,
    HabitEvent,
    InviteCode,
    PainScore,
    Schedule,
    Therapist,
    TherapistLink,
    TherapistNote,
    TipShown,
    User,
)
from bot.db.session import transaction
from bot.l10n import format_hhmm, weekday_name
from bot.services import export, programmes, therapists
from bot.services.progress import compute_progress
from bot.services.reminders import Status
from bot.services.schedule_rules import WEEKDAYS
from tests.conftest import T0, consent, setup_through, tx

LOCALES = ("en", "da", "es")
CPH = "Europe/Copenhagen"
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)  # Wednesday
PNG = b"\x89PNG\r\n\x1a\n"
_ids = itertools.count(8_000_000)


def png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(PNG)
    return struct.unpack(">II", data[16:24])  # the IHDR chunk comes first


def page_count(pdf: bytes) -> int:
    return len(re.findall(rb"/Type\s*/Page\b(?!s)", pdf))


async def add_patient(s, loc: str = "da", **fields) -> User:
    values = {
        "telegram_id": next(_ids),
        "language": loc,
        "timezone": CPH,
        "consent_at": datetime(2026, 9, 1, tzinfo=UTC),
        "consent_version": "2026-11",
        "setup_done_at": datetime(2026, 9, 1, tzinfo=UTC),
    }
    values.update(fields)
    user = User(**values)
    s.add(user)
    await s.flush()
    return user


async def add_history(s, user: User, weeks: int = 6) -> None:
    """A weekday 08:30 schedule and ``weeks`` of check-ins (mostly done, some missed/skipped)."""
    s.add(Schedule(user_id=user.id, local_time="08:30", days=WEEKDAYS, next_due_at=NOW))
    start = datetime(2026, 11, 23, 7, 30, tzinfo=UTC) - timedelta(weeks=weeks)
    for n in range(weeks * 7 + 2):
        due = start + timedelta(days=n)
        if due.weekday() >= 5:
            continue
        if n % 6 == 3:
            s.add(CheckIn(user_id=user.id, due_at=due, status=Status.MISSED, created_at=due))
        elif n % 11 == 5:
            s.add(
                CheckIn(
                    user_id=user.id,
                    due_at=due,
                    status=Status.SKIPPED,
                    barrier="time",
                    created_at=due,
                )
            )
        else:
            before = 4 + n % 4
            s.add(
                CheckIn(
                    user_id=user.id,
                    due_at=due,
                    status=Status.COMPLETED,
                    pain_before=before,
                    pain_after=max(0, before - (n % 3)),
                    completed_at=due + timedelta(minutes=30),
                    created_at=due,
                )
            )
        s.add(PainScore(user_id=user.id, score=n % 9, recorded_at=due + timedelta(hours=9)))
    await s.flush()


# --- The chart ---------------------------------------------------------------------------------


@pytest.mark.parametrize("loc", LOCALES)
async def test_chart_renders_in_every_language(session, loc):
    user = await add_patient(session, loc)
    await add_history(session, user)
    progress = await compute_progress(session, user, NOW)
    assert len(progress.sessions) > 10
    png = render_progress_chart(progress, loc)
    assert png_size(png) == (1000, 1200)
    assert 20_000 < len(png) < 400_000
    # Nothing but labels depends on the language: another language draws other text.
    assert png != render_progress_chart(progress, "en" if loc != "en" else "da")


async def test_chart_without_sessions_still_renders(session):
    user = await add_patient(session)
    session.add(CheckIn(user_id=user.id, due_at=NOW, status=Status.MISSED, created_at=NOW))
    await session.flush()
    progress = await compute_progress(session, user, NOW)
    assert progress.sessions == () and progress.has_data
    assert png_size(render_progress_chart(progress, "es")) == (1000, 1200)


# --- The CSV -----------------------------------------------------------------------------------


SEPARATOR = {"en": ",", "da": ";", "es": ";"}  # what each language's Excel expects


def read_csv(data: bytes, loc: str) -> tuple[list[str], list[dict[str, str]]]:
    """The CSV as a spreadsheet program in ``loc`` reads it, with the localized headers mapped
    back to the column names."""
    assert data.startswith(b"\xef\xbb\xbf")  # UTF-8 byte-order mark, for spreadsheet programs
    text = data.decode("utf-8-sig")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=SEPARATOR[loc])
    header, *body = list(reader)
    assert all(len(row) == len(header) for row in body)  # every row splits into the columns
    names = {tx(f"export.column.{c}", loc): c for c in export.CSV_COLUMNS}
    return header, [{names[h]: v for h, v in zip(header, row, strict=True)} for row in body]


def as_int(text: str) -> int | None:
    return int(text) if text else None


@pytest.mark.parametrize("loc", LOCALES)
async def test_csv_reads_back_as_the_stored_data(session, loc):
    user = await add_patient(session, loc, conv_state="checkin:7", conv_data={"secret": 1})
    await add_history(session, user, weeks=2)
    # 23:30 UTC is already the next day in Copenhagen: the CSV gives the patient's own date.
    late = datetime(2026, 11, 23, 23, 30, tzinfo=UTC)
    session.add(
        CheckIn(
            user_id=user.id,
            kind="log",
            status=Status.COMPLETED,
            pain_before=7,
            pain_after=3,
            effort="hard",
            flagged=True,
            next_day_response="better",
            created_at=late,
            completed_at=late + timedelta(minutes=20),
        )
    )
    session.add(TipShown(user_id=user.id, tip_key="slow_progression", shown_at=late))
    other = await add_patient(session, "en")
    role = Therapist(user_id=other.id, display_name="Søren Ærø")
    session.add(role)
    await session.flush()
    session.add(
        TherapistLink(
            therapist_id=role.id, patient_id=user.id, consented_at=late, requested_at=late
        )
    )
    await session.flush()

    bundle = await export.collect(session, user, NOW)
    header, rows = read_csv(bundle.csv, loc)
    assert header == [tx(f"export.column.{c}", loc) for c in export.CSV_COLUMNS]
    if loc != "en":  # the headers are in the patient's language
        assert header != [tx(f"export.column.{c}", "en") for c in export.CSV_COLUMNS]

    def key(when: datetime, *values) -> tuple:
        return (when.astimezone(UTC), *values)

    def word(group: str, code: str | None) -> str:
        return tx(f"export.{group}.{code}", loc) if code else ""

    stored = await session.scalars(select(CheckIn).where(CheckIn.user_id == user.id))
    expected = {
        key(
            c.due_at or c.created_at,
            word("kind", c.kind),
            word("status", c.status),
            c.pain_before,
            c.pain_after,
            word("barrier", c.barrier),
        )
        for c in stored
    }
    got = {
        key(
            datetime.fromisoformat(r["local_datetime"]),
            r["kind"],
            r["status"],
            as_int(r["pain_before"]),
            as_int(r["pain_after"]),
            r["barrier"],
        )
        for r in rows
        if r["record"] == word("record", "checkin")
    }
    assert got == expected and len(expected) > 10
    [log] = [r for r in rows if r["kind"] == word("kind", "log")]
    assert log["local_datetime"] == "2026-11-24T00:30:00+01:00"
    # Beside the ISO time, the date and clock as the patient writes them.
    assert (log["date"], log["time"]) == {
        "en": ("24/11/2026", "00:30"),
        "da": ("24.11.2026", "00.30"),
        "es": ("24/11/2026", "0:30"),
    }[loc]
    assert (log["effort"], log["flagged"], log["next_day_response"]) == (
        word("effort", "hard"),
        tx("export.answer_yes", loc),
        word("next_day", "better"),
    )
    assert log["completed_local_datetime"] == "2026-11-24T00:50:00+01:00"
    assert log["completed"].startswith(log["date"])

    scores = await session.scalars(select(PainScore).where(PainScore.user_id == user.id))
    assert sorted((p.recorded_at, p.score) for p in scores) == sorted(
        (datetime.fromisoformat(r["local_datetime"]), int(r["pain_score"]))
        for r in rows
        if r["record"] == word("record", "pain_score")
    )
    profile = {r["kind"]: r for r in rows if r["record"] == word("record", "profile")}
    assert profile[word("field", "timezone")]["detail"].endswith(f"({CPH})")
    assert profile[word("field", "telegram_id")]["detail"] == str(user.telegram_id)
    assert profile[word("field", "consent_at")]["local_datetime"] == "2026-09-01T02:00:00+02:00"
    # The bot's own bookkeeping is not the patient's data: no internal state, no row id.
    assert not {"id", "conv_state", "conv_data"} & profile.keys()
    assert "checkin:7" not in bundle.csv.decode("utf-8-sig")
    assert "secret" not in bundle.csv.decode("utf-8-sig")
    [schedule] = [r for r in rows if r["record"] == word("record", "schedule")]
    assert schedule["detail"].startswith(format_hhmm("08:30", loc))
    assert weekday_name(0, loc, "abbreviated") in schedule["detail"]
    [tip] = [r for r in rows if r["record"] == word("record", "tip_shown")]
    assert tip["detail"] == tx("tips.slow_progression", loc)  # the text, not a key
    [link] = [r for r in rows if r["record"] == word("record", "therapist_link")]
    assert (link["status"], link["detail"]) == (word("link", "active"), "Søren Ærø")
    # The check-ins and scores form one timeline, in time order.
    timeline = [
        datetime.fromisoformat(r["local_datetime"])
        for r in rows
        if r["record"] in (word("record", "checkin"), word("record", "pain_score"))
    ]
    assert timeline == sorted(timeline)


# --- Erasure -----------------------------------------------------------------------------------


def naming(row, table, user_id: int, telegram_id: int, therapist_id: int | None) -> bool:
    """Whether a row names the patient: their users.id or therapist id in a key column, or
    their Telegram id anywhere (also inside text, such as a digest's detail).
    """
    users, roles = Base.metadata.tables["users"], Base.metadata.tables["therapists"]
    for column in table.columns:
        value = row._mapping[column.name]
        refers = {fk.column.table.name for fk in column.foreign_keys}
        if table is users and column.name == "id" and value == user_id:
            return True
        if table is roles and column.name == "id" and value == therapist_id:
            return True
        if "users" in refers and value == user_id:
            return True
        if "therapists" in refers and therapist_id is not None and value == therapist_id:
            return True
        if value == telegram_id:
            return True
        if isinstance(column.type, String | Text) and str(telegram_id) in str(value or ""):
            return True
    return False


async def tables_naming(session, user_id, telegram_id, therapist_id) -> dict[str, int]:
    found: dict[str, int] = {}
    for table in Base.metadata.sorted_tables:
        rows = (await session.execute(select(table))).all()
        hits = sum(naming(r, table, user_id, telegram_id, therapist_id) for r in rows)
        if hits:
            found[table.name] = hits
    return found


async def populate_everything(s, user: User) -> Therapist:
    """A row about ``user`` in every table: a patient who is also a therapist."""
    await add_history(s, user, weeks=1)
    s.add(TipShown(user_id=user.id, tip_key="hurt_not_harm", shown_at=NOW))
    s.add(HabitEvent(user_id=user.id, kind="away", at=NOW))
    role = Therapist(user_id=user.id, display_name="Ana")
    s.add(role)
    await s.flush()
    invite = InviteCode(therapist_id=role.id, code_hash="a" * 64, expires_at=NOW)
    s.add(invite)
    s.add(DigestSent(therapist_id=role.id, iso_week="2026-W48", detail=f"for {user.telegram_id}"))
    await s.flush()
    # A patient of this therapist, and this user as the patient of another therapist.
    patient = await add_patient(s)
    s.add(TherapistLink(therapist_id=role.id, patient_id=patient.id, invite_id=invite.id))
    colleague = Therapist(user_id=(await add_patient(s)).id)
    s.add(colleague)
    await s.flush()
    s.add(TherapistLink(therapist_id=colleague.id, patient_id=user.id, consented_at=NOW))
    # Notes both ways: as this therapist's patient's, and as the colleague's patient.
    s.add(TherapistNote(therapist_id=role.id, patient_id=patient.id, author="therapist", text="a"))
    s.add(TherapistNote(therapist_id=colleague.id, patient_id=user.id, author="patient", text="b"))
    user.conv_state, user.conv_data = "delete", {"message_id": 1}
    # An exercise programme with its exercises and a change (issue 17).
    await programmes.choose_starter(s, user, "back", NOW)
    await s.flush()
    return role


async def test_erasure_leaves_no_row_naming_the_patient(sessions):
    async with transaction(sessions) as s:
        user = await add_patient(s)
        role = await populate_everything(s, user)
        bystander = await add_patient(s, "es")
        await add_history(s, bystander, weeks=2)
        ids = (user.id, user.telegram_id, role.id)
        kept = (bystander.id, bystander.telegram_id, None)
    async with sessions() as s:
        before = await tables_naming(s, *ids)
        others_before = await tables_naming(s, *kept)
    # Every table holds a row about the patient, so the check below can fail. A new table
    # fails here until it is populated above: erasure must be tested on it too.
    missing = {table.name for table in Base.metadata.sorted_tables} - set(before)
    assert not missing, f"add a row to {missing} in populate_everything"

    async with transaction(sessions) as s:
        await export.erase_patient(s, user.id)

    async with sessions() as s:
        assert await tables_naming(s, *ids) == {}
        # Everyone else's rows stay, including the people linked to the erased therapist.
        assert await tables_naming(s, *kept) == others_before
        assert await s.scalar(select(func.count()).select_from(User)) == 3
        assert await s.scalar(select(func.count()).select_from(TherapistLink)) == 0


async def test_every_reference_to_a_user_cascades_in_the_migrated_schema(engine):
    """Erasure is one DELETE because of these; checked on the schema migrations built."""

    def foreign_keys(conn):
        inspector = inspect(conn)
        return [
            (table, fk["referred_table"], fk["constrained_columns"], fk["options"].get("ondelete"))
            for table in inspector.get_table_names()
            for fk in inspector.get_foreign_keys(table)
        ]

    async with engine.connect() as conn:
        fks = await conn.run_sync(foreign_keys)
    to_people = [fk for fk in fks if fk[1] in ("users", "therapists")]
    assert to_people and all(fk[3] == "CASCADE" for fk in to_people), to_people


# --- The conversations --------------------------------------------------------------------------


async def one_session(user, app, clock, loc: str) -> None:
    await setup_through(user, loc)
    clock.set(T0 + timedelta(hours=2))  # 09:00 UTC: 08:30 has passed in every suggested zone
    assert (await app.bot_data.dispatcher.tick()).sent == 1
    for label in ("6", tx("checkin.done", loc), "4"):
        await user.press(label)
    await user.press(tx("checkin.effort_easy", loc))


async def user_row(sessions, telegram_id: int) -> User | None:
    async with sessions() as s:
        return await s.scalar(select(User).where(User.telegram_id == telegram_id))


@pytest.mark.parametrize("loc", LOCALES)
async def test_export_sends_the_csv_and_the_pdf(app, fake, clock, loc):
    user = fake.user(8101, language_code=loc)
    await one_session(user, app, clock, loc)
    await user.send("/export")
    data, summary = user.messages[-2], user.messages[-1]
    assert data.filename == "paincoach-data-2026-11-23.csv"
    assert data.text == tx("privacy_export.csv_caption", loc)
    _, rows = read_csv(data.document, loc)
    [checkin] = [r for r in rows if r["record"] == tx("export.record.checkin", loc)]
    assert (checkin["status"], checkin["pain_before"], checkin["pain_after"]) == (
        tx("export.status.completed", loc),
        "6",
        "4",
    )
    assert summary.filename == "paincoach-summary-2026-11-23.pdf"
    assert summary.text == tx("privacy_export.pdf_caption", loc)
    assert summary.document.startswith(b"%PDF-") and 1 <= page_count(summary.document) <= 2
    # The clinic report (issue 16): the first name on top, the session in the table.
    from tests.test_workspace import pdf_text

    text, _ = pdf_text(summary.document)
    assert tx("workspace.report_title", loc, name=user.first_name) in text
    assert tx("workspace.report_status.completed", loc) in text
    assert not fake.errors


async def test_export_needs_consent(app, fake):
    user = fake.user(8102, language_code="da")
    await user.send("/export")
    assert user.last.text == tx("settings.need_start", "da")
    assert user.last.document is None


async def test_delete_after_confirmation_erases_everything_and_stops_reminders(
    app, fake, sessions, clock
):
    user = fake.user(8103, language_code="da")
    await setup_through(user, "da")
    await user.send("/pain 4")
    await user.send("/delete")
    question = user.last
    assert question.text.startswith(tx("privacy_export.delete_ask", "da").split("\n")[0])
    assert question.buttons == [
        [tx("privacy_export.delete_yes", "da")],
        [tx("privacy_export.delete_no", "da")],
    ]
    await user.press(tx("privacy_export.delete_yes", "da"))
    assert user.last.text == tx("privacy_export.deleted", "da")
    assert question.buttons == []  # the keyboard is gone
    assert await user_row(sessions, 8103) is None
    async with sessions() as s:
        for table in (CheckIn, PainScore, Schedule):
            assert await s.scalar(select(func.count()).select_from(table)) == 0
    # Monday's 08:30 reminder never comes.
    clock.set(T0 + timedelta(hours=2))
    sent_before = len(user.messages)
    assert (await app.bot_data.dispatcher.tick()).sent == 0
    assert len(user.messages) == sent_before
    # A double tap on the old button: answered, nothing happens, nothing is re-created.
    await user.press(callback_data="del:yes", message_id=question.message_id)
    assert user.answers[-1] == tx("privacy_export.delete_stale", "da")
    assert await user_row(sessions, 8103) is None
    # Coming back starts from scratch.
    await user.send("/start")
    assert tx("start.consent_yes", "da") in sum(user.last.buttons, [])
    assert not fake.errors and not fake.unanswered_callback_queries


async def test_cancel_keeps_everything_and_the_old_button_then_does_nothing(
    app, fake, sessions, clock
):
    user = fake.user(8104, language_code="es")
    await setup_through(user, "es")
    await user.send("/delete")
    question = user.last
    await user.press(tx("privacy_export.delete_no", "es"))
    assert user.last.text == tx("privacy_export.delete_cancelled", "es")
    row = await user_row(sessions, 8104)
    assert row is not None and row.conv_state is None and row.setup_done_at is not None
    await user.press(callback_data="del:yes", message_id=question.message_id)
    assert user.answers[-1] == tx("privacy_export.delete_stale", "es")
    assert await user_row(sessions, 8104) is not None
    assert not fake.unanswered_callback_queries


async def test_forged_or_stale_confirmations_erase_nothing(app, fake, sessions, clock):
    user = fake.user(8105, language_code="en")
    await setup_through(user, "en")
    earlier = user.last
    # No /delete asked: a forged confirmation does nothing.
    await user.press(callback_data="del:yes", message_id=earlier.message_id)
    assert user.answers[-1] == tx("privacy_export.delete_stale", "en")
    await user.send("/delete")
    question = user.last
    # Pending, but pressed on another message, or with made-up data: nothing.
    await user.press(callback_data="del:yes", message_id=earlier.message_id)
    await user.press(callback_data="del:everything", message_id=question.message_id)
    assert user.answers[-2:] == [tx("privacy_export.delete_stale", "en")] * 2
    # Something else in between (/pain) ends the pending question.
    await user.send("/pain")
    await user.press(tx("privacy_export.delete_yes", "en"), message_id=question.message_id)
    assert user.answers[-1] == tx("privacy_export.delete_stale", "en")
    # Asked twice: the newest question is the one that counts.
    await user.send("/delete")
    first = user.last
    await user.send("/delete")
    await user.press(tx("privacy_export.delete_yes", "en"), message_id=first.message_id)
    assert user.answers[-1] == tx("privacy_export.delete_stale", "en")
    assert await user_row(sessions, 8105) is not None
    await user.press(tx("privacy_export.delete_yes", "en"))
    assert await user_row(sessions, 8105) is None
    assert not fake.errors and not fake.unanswered_callback_queries


async def test_one_patient_cannot_confirm_for_another(app, fake, sessions):
    alice, bob = fake.user(8106, language_code="en"), fake.user(8107, language_code="en")
    await setup_through(alice, "en")
    await setup_through(bob, "en")
    await alice.send("/delete")
    await bob.send("/delete")
    # The button data names nobody: a press erases the one who pressed it, and only them.
    await bob.press(tx("privacy_export.delete_yes", "en"))
    assert await user_row(sessions, 8106) is not None
    assert await user_row(sessions, 8107) is None


async def test_cancel_mid_setup_returns_to_the_step(app, fake, sessions):
    user = fake.user(8108, language_code="da")
    await consent(user, "da")
    before = await user_row(sessions, 8108)
    assert before.conv_state == "setup:tz"  # Danish Telegram: the language is not asked
    await user.send("/delete")
    await user.press(tx("privacy_export.delete_no", "da"))
    after = await user_row(sessions, 8108)
    assert (after.conv_state, after.conv_data) == (before.conv_state, before.conv_data)


async def test_delete_with_nothing_stored_and_for_a_therapist(app, fake, sessions):
    stranger = fake.user(8109, language_code="es")
    await stranger.send("/delete")
    assert stranger.last.text == tx("privacy_export.nothing_stored", "es")
    assert await user_row(sessions, 8109) is None
    therapist = fake.user(8110, language_code="en")
    async with transaction(sessions) as s:
        await therapists.grant(s, 8110)
    await therapist.send("/delete")
    assert tx("privacy_export.delete_ask_therapist", "en") in therapist.last.text
    await therapist.press(tx("privacy_export.delete_yes", "en"))
    async with sessions() as s:
        assert await s.scalar(select(func.count()).select_from(Therapist)) == 0


@pytest.mark.parametrize("loc", ["en", "da", "es"])
async def test_times_away_are_in_the_export(session, loc):
    """Issue 14's habit events (away, weekly, back and how) are the patient's data too."""
    user = await add_patient(session, loc)
    away = datetime(2026, 11, 26, 8, 30, tzinfo=UTC)
    session.add(HabitEvent(user_id=user.id, kind="away", at=away))
    session.add(
        HabitEvent(user_id=user.id, kind="returned", detail="fewer", at=away + timedelta(days=5))
    )
    await session.flush()
    rows = [r for r in await export.export_rows(session, user) if r["kind"]]
    events = [r for r in rows if r["record"] == tx("export.record.habit_event", loc)]
    assert [(r["kind"], r["detail"]) for r in events] == [
        (tx("export.habit_kind.away", loc), ""),
        (tx("export.habit_kind.returned", loc), tx("export.habit_detail.fewer", loc)),
    ]
    assert events[0]["local_datetime"] == "2026-11-26T09:30:00+01:00"
