"""The dispatcher's database side: claiming due slots, catch-up after downtime, leases,
snoozes, expiry, and concurrent claimers (SQLite by default, PostgreSQL with TEST_DATABASE_URL).
"""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from bot.db.models import CheckIn, Schedule, User
from bot.db.session import SessionFactory
from bot.services import reminders
from bot.services.reminders import OPEN_STATUSES, ClaimResult, Prompt, Status
from bot.services.schedule_rules import ALL_DAYS, WEEKDAYS

GRACE = timedelta(hours=2)
EXPIRY = timedelta(hours=12)
LEASE = timedelta(seconds=60)
TZ = "Europe/Copenhagen"

# 2026-05-04 is a Monday; 08:30 in Copenhagen (CEST, UTC+2) is 06:30 UTC.
SLOT = datetime(2026, 5, 4, 6, 30, tzinfo=UTC)
DAY = timedelta(days=1)

_telegram_ids = itertools.count(1_000_000)


async def add_user(
    sessions: SessionFactory,
    *,
    local_time: str = "08:30",
    days: int = ALL_DAYS,
    next_due_at: datetime | None = SLOT,
    tz: str = TZ,
    **user_fields: object,
) -> tuple[int, int]:
    """A consented, set-up, active patient with one schedule; returns (user_id, schedule_id)."""
    fields: dict[str, object] = {
        "telegram_id": next(_telegram_ids),
        "language": "da",
        "timezone": tz,
        "consent_at": SLOT - 30 * DAY,
        "setup_done_at": SLOT - 30 * DAY,
    }
    fields.update(user_fields)
    async with sessions() as s, s.begin():
        user = User(**fields)
        s.add(user)
        await s.flush()
        schedule = Schedule(
            user_id=user.id, local_time=local_time, days=days, next_due_at=next_due_at
        )
        s.add(schedule)
        await s.flush()
        return user.id, schedule.id


async def claim(sessions: SessionFactory, now: datetime, **kwargs: object) -> ClaimResult:
    options: dict[str, object] = {"grace": GRACE, "expiry": EXPIRY, "lease": LEASE}
    options.update(kwargs)
    async with sessions() as s, s.begin():
        return await reminders.claim_due(s, now, **options)  # type: ignore[arg-type]


async def checkins(sessions: SessionFactory, user_id: int | None = None) -> list[CheckIn]:
    async with sessions() as s:
        stmt = select(CheckIn).order_by(CheckIn.due_at, CheckIn.id)
        if user_id is not None:
            stmt = stmt.where(CheckIn.user_id == user_id)
        return list(await s.scalars(stmt))


async def get(sessions: SessionFactory, model: type, ident: int):  # noqa: ANN201
    async with sessions() as s:
        return await s.get(model, ident)


async def prompted(
    sessions: SessionFactory, prompt: Prompt, message_id: int, now: datetime
) -> bool:
    async with sessions() as s, s.begin():
        return await reminders.mark_prompted(s, prompt.checkin_id, message_id, now)


# --- eligibility -----------------------------------------------------------------------------


def make_user(**fields: object) -> User:
    base: dict[str, object] = {
        "telegram_id": 1,
        "consent_at": SLOT,
        "setup_done_at": SLOT,
        "active": True,
        "paused_at": None,
        "paused_until": None,
    }
    base.update(fields)
    return User(**base)


@pytest.mark.parametrize(
    ("fields", "on", "eligible"),
    [
        ({}, date(2026, 5, 4), True),
        ({"consent_at": None}, date(2026, 5, 4), False),
        ({"setup_done_at": None}, date(2026, 5, 4), False),
        ({"active": False}, date(2026, 5, 4), False),
        ({"paused_at": SLOT}, date(2026, 5, 4), False),  # paused with no end
        ({"paused_at": SLOT, "paused_until": date(2026, 5, 6)}, date(2026, 5, 6), False),
        ({"paused_at": SLOT, "paused_until": date(2026, 5, 6)}, date(2026, 5, 7), True),
        ({"paused_until": date(2026, 5, 6)}, date(2026, 5, 5), True),  # no paused_at: not paused
    ],
)
def test_is_eligible(fields: dict[str, object], on: date, eligible: bool) -> None:
    assert reminders.is_eligible(make_user(**fields), on) is eligible


def test_open_statuses() -> None:
    assert OPEN_STATUSES == {
        "pending",
        "prompted",
        "snoozed",
        "started",
        "exercising",
        "rating",
        "effort",
    }
    assert Status.PENDING == "pending" and isinstance(Status.MISSED, str)


# --- claiming a due slot ---------------------------------------------------------------------


async def test_due_slot_claimed_once_and_next_due_advanced(sessions: SessionFactory) -> None:
    user_id, schedule_id = await add_user(sessions)
    now = SLOT + timedelta(seconds=3)

    first = await claim(sessions, now)
    assert len(first.prompts) == 1
    prompt = first.prompts[0]
    assert (prompt.user_id, prompt.due_at, prompt.attempt, prompt.language) == (
        user_id,
        SLOT,
        1,
        "da",
    )
    assert prompt.after_snooze is False
    assert first.expired_ids == [] and first.missed_ids == []

    again = await claim(sessions, now)
    assert again.prompts == [] and again.missed_ids == []

    (row,) = await checkins(sessions, user_id)
    assert (row.id, row.status, row.kind, row.schedule_id) == (
        prompt.checkin_id,
        Status.PENDING,
        "prompt",
        schedule_id,
    )
    assert row.due_at == SLOT
    assert row.expires_at == SLOT + EXPIRY
    assert row.lease_until == now + LEASE
    assert row.send_attempts == 1
    schedule = await get(sessions, Schedule, schedule_id)
    assert schedule.next_due_at == SLOT + DAY


async def test_not_yet_due_is_left_alone(sessions: SessionFactory) -> None:
    user_id, schedule_id = await add_user(sessions)
    result = await claim(sessions, SLOT - timedelta(seconds=1))
    assert result.prompts == []
    assert await checkins(sessions, user_id) == []
    assert (await get(sessions, Schedule, schedule_id)).next_due_at == SLOT


async def test_prompt_carries_the_telegram_id(sessions: SessionFactory) -> None:
    user_id, _ = await add_user(sessions, telegram_id=42_4242, language="es")
    (prompt,) = (await claim(sessions, SLOT)).prompts
    assert (prompt.user_id, prompt.telegram_id, prompt.language) == (user_id, 42_4242, "es")


@pytest.mark.parametrize(
    "user_fields",
    [
        {"paused_at": SLOT - DAY},
        {"paused_at": SLOT - DAY, "paused_until": date(2026, 5, 4)},
        {"consent_at": None},
        {"setup_done_at": None},
        {"active": False},
    ],
    ids=["paused", "paused-until-today", "no-consent", "setup-not-done", "inactive"],
)
async def test_ineligible_user_gets_nothing_but_schedule_advances(
    sessions: SessionFactory, user_fields: dict[str, object]
) -> None:
    user_id, schedule_id = await add_user(sessions, **user_fields)
    result = await claim(sessions, SLOT + timedelta(minutes=1))
    assert result.prompts == [] and result.missed_ids == []
    assert await checkins(sessions, user_id) == []
    assert (await get(sessions, Schedule, schedule_id)).next_due_at == SLOT + DAY


async def test_pause_ends_after_paused_until(sessions: SessionFactory) -> None:
    # Paused through Monday 4 May (local): Monday's slot is silent, Tuesday's is sent.
    user_id, _ = await add_user(sessions, paused_at=SLOT - DAY, paused_until=date(2026, 5, 4))
    assert (await claim(sessions, SLOT)).prompts == []
    (prompt,) = (await claim(sessions, SLOT + DAY)).prompts
    assert prompt.due_at == SLOT + DAY


async def test_weekday_mask_skips_the_weekend(sessions: SessionFactory) -> None:
    friday = SLOT + 4 * DAY
    _, schedule_id = await add_user(sessions, days=WEEKDAYS, next_due_at=friday)
    (prompt,) = (await claim(sessions, friday)).prompts
    assert prompt.due_at == friday
    assert (await get(sessions, Schedule, schedule_id)).next_due_at == friday + 3 * DAY


# --- downtime --------------------------------------------------------------------------------


async def test_down_one_hour_sends_one_pending_prompt(sessions: SessionFactory) -> None:
    user_id, schedule_id = await add_user(sessions)
    now = SLOT + timedelta(hours=1)
    result = await claim(sessions, now)
    (prompt,) = result.prompts
    assert prompt.due_at == SLOT
    (row,) = await checkins(sessions, user_id)
    assert row.status == Status.PENDING
    assert row.expires_at == SLOT + EXPIRY  # counted from the slot, not from the late send
    assert (await get(sessions, Schedule, schedule_id)).next_due_at == SLOT + DAY


async def test_down_five_hours_records_missed(sessions: SessionFactory) -> None:
    user_id, schedule_id = await add_user(sessions)
    result = await claim(sessions, SLOT + timedelta(hours=5))
    assert result.prompts == []
    (row,) = await checkins(sessions, user_id)
    assert (row.status, row.due_at, row.kind) == (Status.MISSED, SLOT, "prompt")
    assert result.missed_ids == [row.id]
    assert (await get(sessions, Schedule, schedule_id)).next_due_at == SLOT + DAY


async def test_down_three_days_records_each_slot_missed(sessions: SessionFactory) -> None:
    user_id, schedule_id = await add_user(sessions)
    now = SLOT + 3 * DAY + timedelta(hours=4)  # Thursday 12:30 local
    result = await claim(sessions, now)
    assert result.prompts == []
    rows = await checkins(sessions, user_id)
    assert [r.due_at for r in rows] == [SLOT + n * DAY for n in range(4)]
    assert {r.status for r in rows} == {Status.MISSED}
    assert sorted(result.missed_ids) == sorted(r.id for r in rows)
    assert (await get(sessions, Schedule, schedule_id)).next_due_at == SLOT + 4 * DAY


async def test_down_days_and_back_within_grace_sends_only_the_newest(
    sessions: SessionFactory,
) -> None:
    user_id, _ = await add_user(sessions)
    now = SLOT + 2 * DAY + timedelta(minutes=30)
    result = await claim(sessions, now)
    (prompt,) = result.prompts
    assert prompt.due_at == SLOT + 2 * DAY
    rows = await checkins(sessions, user_id)
    assert [(r.due_at, r.status) for r in rows] == [
        (SLOT, Status.MISSED),
        (SLOT + DAY, Status.MISSED),
        (SLOT + 2 * DAY, Status.PENDING),
    ]


async def test_older_in_grace_slots_become_missed(sessions: SessionFactory) -> None:
    # With a grace longer than a day, two slots are in grace: only the newest is sent.
    user_id, _ = await add_user(sessions)
    result = await claim(sessions, SLOT + DAY + timedelta(hours=1), grace=timedelta(hours=30))
    (prompt,) = result.prompts
    assert prompt.due_at == SLOT + DAY
    rows = await checkins(sessions, user_id)
    assert [(r.due_at, r.status) for r in rows] == [
        (SLOT, Status.MISSED),
        (SLOT + DAY, Status.PENDING),
    ]


async def test_long_downtime_records_at_most_fourteen_slots(sessions: SessionFactory) -> None:
    user_id, schedule_id = await add_user(sessions)
    now = SLOT + 40 * DAY + timedelta(hours=5)
    result = await claim(sessions, now)
    rows = await checkins(sessions, user_id)
    assert len(rows) == reminders.MAX_CATCH_UP_SLOTS == 14
    assert rows[-1].due_at == SLOT + 40 * DAY and rows[0].due_at == SLOT + 27 * DAY
    assert result.prompts == []
    assert (await get(sessions, Schedule, schedule_id)).next_due_at == SLOT + 41 * DAY


async def test_downtime_across_a_pause_records_only_eligible_days(
    sessions: SessionFactory,
) -> None:
    # Paused through Tuesday 5 May: Monday's and Tuesday's slots leave no record.
    user_id, _ = await add_user(sessions, paused_at=SLOT - DAY, paused_until=date(2026, 5, 5))
    await claim(sessions, SLOT + 3 * DAY + timedelta(hours=4))
    rows = await checkins(sessions, user_id)
    assert [r.due_at for r in rows] == [SLOT + 2 * DAY, SLOT + 3 * DAY]


async def test_slot_already_recorded_does_not_break_the_batch(sessions: SessionFactory) -> None:
    """A (schedule_id, due_at) already in the table is skipped; the rest of the batch goes on."""
    user_a, schedule_a = await add_user(sessions)
    user_b, _ = await add_user(sessions)
    async with sessions() as s, s.begin():
        s.add(CheckIn(user_id=user_a, schedule_id=schedule_a, due_at=SLOT, status="completed"))
    result = await claim(sessions, SLOT)
    assert [p.user_id for p in result.prompts] == [user_b]
    (row,) = await checkins(sessions, user_a)
    assert row.status == "completed"
    assert (await get(sessions, Schedule, schedule_a)).next_due_at == SLOT + DAY


async def test_bad_rows_do_not_stop_a_tick(sessions: SessionFactory) -> None:
    bad_zone, _ = await add_user(sessions, tz="Mars/Olympus_Mons")
    _, bad_time_schedule = await add_user(sessions, local_time="8:3")
    good, _ = await add_user(sessions)
    result = await claim(sessions, SLOT + timedelta(hours=3))  # 08:30 UTC = 06:30 + 2 h
    sent = {p.user_id for p in result.prompts}
    assert good not in sent  # 3 h late in Copenhagen: missed
    assert bad_zone in sent  # read as UTC: 08:30 UTC, in grace
    assert (await get(sessions, Schedule, bad_time_schedule)).next_due_at is None


async def test_spring_forward_night_fires_once(sessions: SessionFactory) -> None:
    gap_slot = datetime(2026, 3, 29, 1, 30, tzinfo=UTC)  # 02:30 CET, the wall reads 03:30
    user_id, schedule_id = await add_user(
        sessions, local_time="02:30", next_due_at=datetime(2026, 3, 28, 1, 30, tzinfo=UTC)
    )
    seen: list[datetime] = []
    now = datetime(2026, 3, 28, 1, 0, tzinfo=UTC)
    while now < datetime(2026, 3, 31, tzinfo=UTC):
        for prompt in (await claim(sessions, now)).prompts:
            seen.append(prompt.due_at)
            assert await prompted(sessions, prompt, len(seen), now)
        now += timedelta(minutes=15)
    assert seen == [
        datetime(2026, 3, 28, 1, 30, tzinfo=UTC),
        gap_slot,
        datetime(2026, 3, 30, 0, 30, tzinfo=UTC),
    ]
    assert len(await checkins(sessions, user_id)) == 3


# --- leases, send failures -------------------------------------------------------------------


async def test_crash_between_commit_and_send_is_reclaimed(sessions: SessionFactory) -> None:
    await add_user(sessions)
    (first,) = (await claim(sessions, SLOT)).prompts
    # The process dies before sending. Within the lease nothing is claimed again...
    assert (await claim(sessions, SLOT + LEASE)).prompts == []
    # ...after it, the same check-in comes back as attempt 2.
    (again,) = (await claim(sessions, SLOT + LEASE + timedelta(seconds=1))).prompts
    assert (again.checkin_id, again.attempt, again.due_at) == (first.checkin_id, 2, SLOT)
    row = await get(sessions, CheckIn, first.checkin_id)
    assert row.send_attempts == 2
    assert row.lease_until == SLOT + 2 * LEASE + timedelta(seconds=1)


async def test_reclaim_gives_up_after_max_attempts(sessions: SessionFactory) -> None:
    user_id, _ = await add_user(sessions)
    now = SLOT
    (prompt,) = (await claim(sessions, now, max_attempts=3)).prompts
    attempts = [prompt.attempt]
    for _ in range(5):
        now += timedelta(seconds=5)
        async with sessions() as s, s.begin():
            assert await reminders.mark_send_failed(s, prompt.checkin_id, now, permanent=False)
        now += timedelta(seconds=5)
        result = await claim(sessions, now, max_attempts=3)
        if not result.prompts:
            assert result.missed_ids == [prompt.checkin_id]
            break
        attempts.append(result.prompts[0].attempt)
    assert attempts == [1, 2, 3]
    (row,) = await checkins(sessions, user_id)
    assert (row.status, row.send_attempts, row.lease_until) == (Status.MISSED, 3, None)


async def test_reclaim_past_grace_is_missed(sessions: SessionFactory) -> None:
    await add_user(sessions)
    (prompt,) = (await claim(sessions, SLOT)).prompts
    result = await claim(sessions, SLOT + GRACE + timedelta(minutes=1))
    assert result.prompts == [] and result.missed_ids == [prompt.checkin_id]
    assert (await get(sessions, CheckIn, prompt.checkin_id)).status == Status.MISSED


async def test_transient_failure_is_retried_on_the_next_tick(sessions: SessionFactory) -> None:
    await add_user(sessions)
    (prompt,) = (await claim(sessions, SLOT)).prompts
    async with sessions() as s, s.begin():
        assert await reminders.mark_send_failed(s, prompt.checkin_id, SLOT, permanent=False)
    assert (await get(sessions, CheckIn, prompt.checkin_id)).status == Status.PENDING
    (retry,) = (await claim(sessions, SLOT + timedelta(seconds=2))).prompts
    assert (retry.checkin_id, retry.attempt) == (prompt.checkin_id, 2)


async def test_permanent_failure_marks_undeliverable_and_user_inactive(
    sessions: SessionFactory,
) -> None:
    user_id, _ = await add_user(sessions)
    (prompt,) = (await claim(sessions, SLOT)).prompts
    async with sessions() as s, s.begin():
        assert await reminders.mark_send_failed(s, prompt.checkin_id, SLOT, permanent=True)
    row = await get(sessions, CheckIn, prompt.checkin_id)
    assert (row.status, row.lease_until) == (Status.UNDELIVERABLE, None)
    assert (await get(sessions, User, user_id)).active is False
    # Nothing more is sent or re-claimed: the next slot leaves no record.
    assert (await claim(sessions, SLOT + DAY + timedelta(minutes=1))).prompts == []
    assert len(await checkins(sessions, user_id)) == 1
    # Not pending any more: a second report changes nothing.
    async with sessions() as s, s.begin():
        assert not await reminders.mark_send_failed(s, prompt.checkin_id, SLOT, permanent=True)


async def test_mark_prompted_twice_is_harmless(sessions: SessionFactory) -> None:
    await add_user(sessions)
    (prompt,) = (await claim(sessions, SLOT)).prompts
    at = SLOT + timedelta(seconds=1)
    assert await prompted(sessions, prompt, 501, at) is True
    assert await prompted(sessions, prompt, 502, at + timedelta(seconds=9)) is False
    row = await get(sessions, CheckIn, prompt.checkin_id)
    assert (row.status, row.prompt_message_id, row.prompted_at, row.lease_until) == (
        Status.PROMPTED,
        501,
        at,
        None,
    )
    # A prompted check-in is never re-claimed.
    assert (await claim(sessions, SLOT + 10 * LEASE)).prompts == []


# --- snooze, skip, expiry --------------------------------------------------------------------


async def test_snooze_comes_back_due(sessions: SessionFactory) -> None:
    user_id, _ = await add_user(sessions)
    (prompt,) = (await claim(sessions, SLOT)).prompts
    await prompted(sessions, prompt, 7, SLOT)
    until = SLOT + timedelta(minutes=30)
    async with sessions() as s, s.begin():
        assert await reminders.snooze(s, prompt.checkin_id, user_id, until)
    assert (await get(sessions, CheckIn, prompt.checkin_id)).status == Status.SNOOZED
    assert (await claim(sessions, until - timedelta(seconds=1))).prompts == []

    (back,) = (await claim(sessions, until)).prompts
    assert (back.checkin_id, back.attempt, back.after_snooze, back.due_at) == (
        prompt.checkin_id,
        1,
        True,
        SLOT,
    )
    row = await get(sessions, CheckIn, prompt.checkin_id)
    assert (row.status, row.expires_at, row.lease_until) == (
        Status.PENDING,
        SLOT + EXPIRY,
        until + LEASE,
    )
    # Sent again: prompted again, with the new message.
    assert await prompted(sessions, back, 8, until)
    row = await get(sessions, CheckIn, prompt.checkin_id)
    assert (row.status, row.prompt_message_id) == (Status.PROMPTED, 8)


async def test_snooze_come_back_that_fails_to_send_is_retried(sessions: SessionFactory) -> None:
    user_id, _ = await add_user(sessions)
    (prompt,) = (await claim(sessions, SLOT)).prompts
    await prompted(sessions, prompt, 7, SLOT)
    until = SLOT + 3 * GRACE  # long after the slot's own grace window
    async with sessions() as s, s.begin():
        assert await reminders.snooze(s, prompt.checkin_id, user_id, until)
    (back,) = (await claim(sessions, until)).prompts
    # The sender dies; the re-claim measures grace from snooze_until, not from the slot.
    (again,) = (await claim(sessions, until + 2 * LEASE)).prompts
    assert (again.checkin_id, again.attempt, again.after_snooze) == (back.checkin_id, 2, True)


@pytest.mark.parametrize(
    ("status", "snooze_ok", "skip_ok"),
    [
        (Status.PENDING, False, False),
        (Status.PROMPTED, True, True),
        (Status.SNOOZED, True, True),
        (Status.STARTED, False, True),
        (Status.EXERCISING, False, True),
        (Status.RATING, False, False),
        (Status.EFFORT, False, False),
        (Status.COMPLETED, False, False),
        (Status.SKIPPED, False, False),
        (Status.MISSED, False, False),
        (Status.UNDELIVERABLE, False, False),
    ],
)
async def test_snooze_and_skip_are_guarded(
    sessions: SessionFactory, status: Status, snooze_ok: bool, skip_ok: bool
) -> None:
    user_id, schedule_id = await add_user(sessions)
    other_user, _ = await add_user(sessions)
    async with sessions() as s, s.begin():
        row = CheckIn(
            user_id=user_id,
            schedule_id=schedule_id,
            due_at=SLOT,
            status=status,
            expires_at=SLOT + EXPIRY,
        )
        s.add(row)
        await s.flush()
        checkin_id = row.id
    until = SLOT + timedelta(minutes=30)
    async with sessions() as s, s.begin():
        # Someone else's check-in (forged callback data) is never touched.
        assert not await reminders.snooze(s, checkin_id, other_user, until)
        assert not await reminders.skip(s, checkin_id, other_user)
    async with sessions() as s, s.begin():
        assert await reminders.snooze(s, checkin_id, user_id, until) is snooze_ok
    expected = Status.SNOOZED if snooze_ok else status
    assert (await get(sessions, CheckIn, checkin_id)).status == expected
    async with sessions() as s, s.begin():
        assert await reminders.skip(s, checkin_id, user_id, barrier="pain") is skip_ok
    row = await get(sessions, CheckIn, checkin_id)
    if skip_ok:
        assert (row.status, row.barrier) == (Status.SKIPPED, "pain")
    else:
        assert row.status == expected and row.barrier is None


async def test_snooze_past_expiry_is_refused(sessions: SessionFactory) -> None:
    user_id, _ = await add_user(sessions)
    (prompt,) = (await claim(sessions, SLOT)).prompts
    await prompted(sessions, prompt, 7, SLOT)
    async with sessions() as s, s.begin():
        assert not await reminders.snooze(s, prompt.checkin_id, user_id, SLOT + EXPIRY)
    assert (await get(sessions, CheckIn, prompt.checkin_id)).status == Status.PROMPTED


@pytest.mark.parametrize("status", sorted(OPEN_STATUSES - {Status.PENDING}))
async def test_open_checkin_expires_after_twelve_hours(
    sessions: SessionFactory, status: str
) -> None:
    user_id, _ = await add_user(sessions)
    (prompt,) = (await claim(sessions, SLOT)).prompts
    await prompted(sessions, prompt, 7, SLOT)
    async with sessions() as s, s.begin():
        row = await s.get(CheckIn, prompt.checkin_id)
        row.status = status
        row.snooze_until = SLOT + EXPIRY + DAY if status == Status.SNOOZED else None
    before = await claim(sessions, SLOT + EXPIRY - timedelta(seconds=1))
    assert before.expired_ids == []
    at = await claim(sessions, SLOT + EXPIRY)
    assert at.expired_ids == [prompt.checkin_id]
    assert [p.due_at for p in at.prompts] == []  # tomorrow's slot is not due yet
    # Only the optional effort question unanswered: the session happened, so it counts.
    expected = Status.COMPLETED if status == Status.EFFORT else Status.MISSED
    assert (await get(sessions, CheckIn, prompt.checkin_id)).status == expected
    assert (await claim(sessions, SLOT + EXPIRY + timedelta(minutes=1))).expired_ids == []


async def test_pending_never_sent_expires_too(sessions: SessionFactory) -> None:
    await add_user(sessions)
    (prompt,) = (await claim(sessions, SLOT)).prompts
    result = await claim(sessions, SLOT + EXPIRY, grace=EXPIRY * 2, max_attempts=1000)
    assert result.expired_ids == [prompt.checkin_id]
    assert prompt.checkin_id not in [p.checkin_id for p in result.prompts]


async def test_finished_checkins_do_not_expire(sessions: SessionFactory) -> None:
    await add_user(sessions)
    (prompt,) = (await claim(sessions, SLOT)).prompts
    await prompted(sessions, prompt, 7, SLOT)
    async with sessions() as s, s.begin():
        (await s.get(CheckIn, prompt.checkin_id)).status = Status.COMPLETED
    assert (await claim(sessions, SLOT + EXPIRY)).expired_ids == []
    assert (await get(sessions, CheckIn, prompt.checkin_id)).status == Status.COMPLETED


# --- schedules -------------------------------------------------------------------------------


async def test_replace_schedules(sessions: SessionFactory) -> None:
    user_id, _ = await add_user(sessions)
    (prompt,) = (await claim(sessions, SLOT)).prompts
    now = SLOT + timedelta(hours=1)  # Monday 09:30 in Copenhagen
    async with sessions() as s, s.begin():
        user = await s.get(User, user_id)
        made = await reminders.replace_schedules(
            s, user, ["19:00", "07:15", "19:00"], WEEKDAYS, now
        )
        assert [(m.local_time, m.days, m.next_due_at) for m in made] == [
            ("07:15", WEEKDAYS, datetime(2026, 5, 5, 5, 15, tzinfo=UTC)),
            ("19:00", WEEKDAYS, datetime(2026, 5, 4, 17, 0, tzinfo=UTC)),
        ]
    async with sessions() as s:
        rows = list(await s.scalars(select(Schedule).where(Schedule.user_id == user_id)))
        assert sorted(r.local_time for r in rows) == ["07:15", "19:00"]
    # The old schedule's check-in stays, detached from it.
    row = await get(sessions, CheckIn, prompt.checkin_id)
    assert row.schedule_id is None and row.user_id == user_id


async def test_replace_schedules_needs_a_time_zone(sessions: SessionFactory) -> None:
    user_id, _ = await add_user(sessions, tz=None)
    async with sessions() as s, s.begin():
        user = await s.get(User, user_id)
        with pytest.raises(ValueError, match="no_timezone"):
            await reminders.replace_schedules(s, user, ["08:00"], ALL_DAYS, SLOT)


async def test_reschedule_user_after_a_time_zone_change(sessions: SessionFactory) -> None:
    user_id, schedule_id = await add_user(sessions)
    async with sessions() as s, s.begin():
        user = await s.get(User, user_id)
        user.timezone = "Asia/Kolkata"
        (schedule,) = await reminders.reschedule_user(s, user, SLOT)
        assert schedule.id == schedule_id
    # 08:30 in Kolkata = 03:00 UTC; 06:30 UTC is past today's, so tomorrow's.
    assert (await get(sessions, Schedule, schedule_id)).next_due_at == datetime(
        2026, 5, 5, 3, 0, tzinfo=UTC
    )


async def test_refresh_schedule_with_no_days_disables_it(sessions: SessionFactory) -> None:
    _, schedule_id = await add_user(sessions)
    async with sessions() as s, s.begin():
        schedule = await s.get(Schedule, schedule_id)
        schedule.days = 0
        await reminders.refresh_schedule(s, schedule, TZ, SLOT)
    assert (await get(sessions, Schedule, schedule_id)).next_due_at is None


# --- concurrency -----------------------------------------------------------------------------


async def add_many(sessions: SessionFactory, n: int) -> None:
    async with sessions() as s, s.begin():
        users = [
            User(
                telegram_id=next(_telegram_ids),
                timezone=TZ,
                consent_at=SLOT - DAY,
                setup_done_at=SLOT - DAY,
            )
            for _ in range(n)
        ]
        s.add_all(users)
        await s.flush()
        s.add_all(Schedule(user_id=u.id, local_time="08:30", next_due_at=SLOT) for u in users)


async def test_two_concurrent_claimers_share_200_due_schedules(sessions: SessionFactory) -> None:
    await add_many(sessions, 200)
    now = SLOT + timedelta(seconds=1)

    async def claimer() -> ClaimResult:
        async with sessions() as s, s.begin():
            result = await reminders.claim_due(s, now, limit=10_000, grace=GRACE, expiry=EXPIRY)
            await asyncio.sleep(0.05)  # hold the transaction open while the other runs
            return result

    a, b = await asyncio.gather(claimer(), claimer())
    ids = [p.checkin_id for p in a.prompts + b.prompts]
    assert len(ids) == 200
    assert len(set(ids)) == 200
    assert len({p.user_id for p in a.prompts + b.prompts}) == 200
    async with sessions() as s:
        assert await s.scalar(select(func.count()).select_from(CheckIn)) == 200
        assert await s.scalar(select(func.count()).where(Schedule.next_due_at <= now)) == 0


async def test_concurrent_claimers_in_small_batches(sessions: SessionFactory) -> None:
    await add_many(sessions, 200)
    now = SLOT + timedelta(seconds=1)

    async def claimer() -> list[Prompt]:
        got: list[Prompt] = []
        while True:
            async with sessions() as s, s.begin():
                result = await reminders.claim_due(s, now, limit=7, grace=GRACE, expiry=EXPIRY)
            if not result.prompts:
                return got
            got += result.prompts
            await asyncio.sleep(0)

    a, b = await asyncio.gather(claimer(), claimer())
    ids = [p.checkin_id for p in a + b]
    assert len(ids) == len(set(ids)) == 200


async def test_skip_locked_lets_a_second_replica_take_the_rest(sessions: SessionFactory) -> None:
    """PostgreSQL only: while replica A holds its claimed rows, replica B claims the others
    at once (SKIP LOCKED) instead of waiting. (SQLite serialises writers: B would wait.)"""
    if sessions.kw["bind"].dialect.name != "postgresql":
        pytest.skip("SKIP LOCKED is PostgreSQL's")
    await add_many(sessions, 200)
    now = SLOT + timedelta(seconds=1)
    a_claimed = asyncio.Event()
    b_done = asyncio.Event()

    async def replica_a() -> ClaimResult:
        async with sessions() as s, s.begin():
            result = await reminders.claim_due(s, now, limit=120, grace=GRACE, expiry=EXPIRY)
            a_claimed.set()
            await asyncio.wait_for(b_done.wait(), timeout=10)  # B finishes while A holds locks
            return result

    async def replica_b() -> ClaimResult:
        await a_claimed.wait()
        async with sessions() as s, s.begin():
            result = await reminders.claim_due(s, now, limit=10_000, grace=GRACE, expiry=EXPIRY)
        b_done.set()
        return result

    a, b = await asyncio.gather(replica_a(), replica_b())
    assert (len(a.prompts), len(b.prompts)) == (120, 80)
    assert not {p.checkin_id for p in a.prompts} & {p.checkin_id for p in b.prompts}
