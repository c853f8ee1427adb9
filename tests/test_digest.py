"""The therapists' weekly digest: statistics and flags, text and splitting, delivery once per
week in the therapist's time zone (issue 7)."""

from __future__ import annotations

import asyncio
import itertools
import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from bot.app import schedule_jobs
from bot.db.models import CheckIn, DigestSent, PainScore, Therapist, TherapistLink, User
from bot.handlers import digest_view
from bot.i18n import t
from bot.scheduling.digest import DigestSender
from bot.services import digest
from bot.services.digest import Digest, Flag, PatientWeek, Period
from bot.testing.fake_telegram import parse_html, utf16_len
from tests.conftest import start_app, tx

# The digest of Monday 30 November 2026 covers Monday 23 - Sunday 29 November.
MON = datetime(2026, 11, 23, tzinfo=UTC)
SLOT_UTC = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
_ids = itertools.count(50_000)


def day(n: int, hour: int = 8, minute: int = 30) -> datetime:
    """Day ``n`` of the covered week (0 = Monday 23 November; negative: the week before)."""
    return MON + timedelta(days=n, hours=hour, minutes=minute)


async def add_therapist(s, name: str, *, tz: str | None = None, loc: str = "en", uid=None):
    user = User(telegram_id=uid or next(_ids), language=loc, timezone=tz, active=True)
    s.add(user)
    await s.flush()
    therapist = Therapist(user_id=user.id, display_name=name)
    s.add(therapist)
    await s.flush()
    return therapist


async def add_patient(s, name: str, *shares_with, consented=True, revoked=False) -> User:
    user = User(
        telegram_id=next(_ids),
        language="en",
        timezone="UTC",
        consent_at=MON - timedelta(days=30),
        setup_done_at=MON - timedelta(days=30),
        display_name=name,
        active=True,
    )
    s.add(user)
    await s.flush()
    for therapist in shares_with:
        s.add(
            TherapistLink(
                therapist_id=therapist.id,
                patient_id=user.id,
                requested_at=MON - timedelta(days=20),
                consented_at=MON - timedelta(days=20) if consented else None,
                revoked_at=MON - timedelta(days=1) if revoked else None,
            )
        )
    await s.flush()
    return user


def session_row(user, when, status="completed", before=None, after=None, kind="prompt", **kw):
    return CheckIn(
        user_id=user.id,
        kind=kind,
        status=status,
        due_at=when if kind == "prompt" else None,
        created_at=when,
        completed_at=when + timedelta(minutes=30) if status == "completed" else None,
        pain_before=before,
        pain_after=after,
        **kw,
    )


async def known_week(sessions):
    """Two therapists; Ana (many flags), Bo (steady), Cy (stopped), and patients who must not
    show: Dee revoked, Eli never confirmed, Fay shares only with the other therapist."""
    async with sessions() as s, s.begin():
        anna = await add_therapist(s, "Anna")
        other = await add_therapist(s, "Olaf")
        ana = await add_patient(s, "Ana", anna)
        bo = await add_patient(s, "Bo", anna, other)
        cy = await add_patient(s, "Cy", anna)
        dee = await add_patient(s, "Dee", anna, revoked=True)
        eli = await add_patient(s, "Eli", anna, consented=False)
        fay = await add_patient(s, "Fay", other)
        s.add_all(
            [
                session_row(ana, day(0), before=5, after=4, next_day_response="better"),
                session_row(
                    ana, day(1), before=6, after=9, flagged=True, next_day_response="worse"
                ),
                session_row(ana, day(2), "skipped", barrier="pain"),
                session_row(ana, day(3), "skipped", barrier="pain"),
                session_row(ana, day(4), "skipped", barrier="time"),
                session_row(ana, day(5, 10), kind="log", before=7, after=6),
                PainScore(user_id=ana.id, score=8, recorded_at=day(6, 12)),
                session_row(ana, day(-7), before=4, after=3),
                PainScore(user_id=ana.id, score=4, recorded_at=day(-5)),
                # Bo: every weekday done, steady at 4 -> 3, the same as the week before.
                *(session_row(bo, day(d), before=4, after=3) for d in range(5)),
                *(session_row(bo, day(d - 7), before=4, after=3) for d in range(5)),
                # Not in the week: just before it, and after it (the digest's own Monday).
                session_row(bo, MON - timedelta(minutes=1), "missed"),
                session_row(bo, day(7, 7, 0), "pending"),
                # Cy: stopped this week after a good week before.
                *(session_row(cy, day(d), "missed") for d in range(5)),
                *(session_row(cy, day(d - 7), before=3, after=2) for d in range(5)),
                # Data of patients who must never show: all alarming.
                *(session_row(p, day(1), before=9, after=10, flagged=True) for p in (dee, eli)),
                session_row(fay, day(1), before=9, after=10, flagged=True),
            ]
        )
    return anna, other


def period_utc() -> Period:
    return digest.week_before(SLOT_UTC, "UTC")


async def test_statistics_and_flags_on_known_data(sessions):
    anna, other = await known_week(sessions)
    async with sessions() as s:
        result = await digest.compute(s, [anna.id, other.id], period_utc())
    ana, cy, bo = result[anna.id].patients
    assert [p.name for p in (ana, cy, bo)] == ["Ana", "Cy", "Bo"]  # flagged first, by name

    assert (ana.planned, ana.done, ana.logged) == (5, 2, 1)
    assert (ana.pain_sum, ana.pain_n, ana.pain_avg) == (26, 4, 6.5)  # 5, 6, 7 before; /pain 8
    # Two scores the week before: too few for an average, so no week-on-week change.
    assert (ana.prev_pain_n, ana.prev_pain_avg, ana.avg_change) == (2, None, None)
    assert ana.pain_max == 9
    assert (ana.change_n, ana.session_change) == (3, pytest.approx(1 / 3))  # -1, +3, -1
    assert ana.next_day == {"better": 1, "same": 0, "worse": 1}
    assert ana.rises == 1
    assert ana.barriers == {"pain": 2, "time": 1, "fear": 0, "tired": 0, "other": 0}
    assert not ana.inactive  # the /log session on Saturday counts
    # No 9+ at rest and no usual level yet (2 scores in 4 weeks): no high-pain flag. The
    # session 6 -> 9 was too much and its next morning worse; "pain too high" came twice.
    assert ana.flags == [Flag.TOO_MUCH, Flag.WORSE_MORNINGS, Flag.BARRIERS]
    worse = next(f for f in ana.flag_details if f.kind is Flag.WORSE_MORNINGS)
    assert worse.on == day(1).date() and worse.numbers == {"worse": 1}

    assert (bo.planned, bo.done, bo.pain_avg, bo.avg_change) == (5, 5, 4.0, 0.0)
    assert (bo.session_change, bo.pain_max, bo.flags) == (-1.0, 4, [])

    assert (cy.planned, cy.done, cy.pain_avg, cy.avg_change) == (5, 0, None, None)
    assert cy.inactive and cy.flags == [Flag.INACTIVE]

    # The other therapist sees Bo and Fay, never Anna's patients; nobody sees Dee or Eli.
    assert sorted(p.name for p in result[other.id].patients) == ["Bo", "Fay"]


async def test_flags_relative_to_the_patients_own_usual_level(sessions):
    """High pain against the 4-week usual level, 8+ before sessions on two days, worse twice
    in the morning, adherence falling: each flag with its date and numbers."""
    async with sessions() as s, s.begin():
        anna = await add_therapist(s, "Anna")
        low = await add_patient(s, "Low", anna)  # usually 2: a 6 is high for her
        s.add_all(PainScore(user_id=low.id, score=2, recorded_at=day(-20 + d)) for d in range(6))
        s.add(PainScore(user_id=low.id, score=5, recorded_at=day(2)))
        s.add(PainScore(user_id=low.id, score=6, recorded_at=day(4)))
        high = await add_patient(s, "High", anna)  # usually 7: an 8 is not
        s.add_all(PainScore(user_id=high.id, score=7, recorded_at=day(-20 + d)) for d in range(6))
        s.add_all(
            [
                session_row(high, day(1), before=8, after=8, next_day_response="worse"),
                session_row(high, day(3), before=8, after=8, next_day_response="worse"),
            ]
        )
        # Done every weekday for two weeks, then one in the last two: adherence falling.
        gone = await add_patient(s, "Gone", anna)
        s.add_all(session_row(gone, day(d - 21), before=3, after=3) for d in range(5))
        s.add_all(session_row(gone, day(d - 14), before=3, after=3) for d in range(5))
        s.add_all(session_row(gone, day(d - 7), "missed") for d in range(5))
        s.add_all(session_row(gone, day(d), "missed" if d else "completed") for d in range(5))
    async with sessions() as s:
        patients = (await digest.compute(s, [anna.id], period_utc()))[anna.id].patients
    by_name = {p.name: p for p in patients}
    [high_pain] = by_name["Low"].flag_details
    assert (high_pain.kind, high_pain.on) == (Flag.HIGH_PAIN, day(4).date())
    assert high_pain.numbers == {"score": 6, "usual": 2.0}
    high = by_name["High"]
    assert high.usual == 7.0
    assert [f.kind for f in high.flag_details] == [Flag.WORSE_MORNINGS, Flag.HIGH_BEFORE]
    assert high.flag_details[1].numbers == {"days": 2} and high.flag_details[1].on == day(3).date()
    gone = by_name["Gone"]
    assert Flag.ADHERENCE_FALLING in gone.flags
    text = digest_view.patient_block(gone, 1, "en")
    assert (
        "⚠️ Fewer sessions done: 1 of 10 in the last 2 weeks, against 10 of 10 in the 2 weeks before"
    ) in text
    text = digest_view.patient_block(by_name["Low"], 1, "en")
    assert "⚠️ High pain for this patient: 6 on 27 November (usual level about 2.0)" in text
    assert "Pain: 2 scores this week, too few for an average (it needs 3)" in text


async def test_inactivity_needs_four_scheduled_days(sessions):
    async with sessions() as s, s.begin():
        anna = await add_therapist(s, "Anna")
        new = await add_patient(s, "New", anna)
        s.add_all(session_row(new, day(d), "missed") for d in (4, 5, 6))
    async with sessions() as s:
        [patient] = (await digest.compute(s, [anna.id], period_utc()))[anna.id].patients
    assert not patient.inactive and patient.flags == []


@pytest.mark.parametrize(
    ("prev", "now", "flagged"),
    [
        ((3, 3, 3), (5, 5, 5), True),
        ((3, 3, 3), (4, 5, 5), False),  # +1.7: less than 2 points
        ((3, 3), (5, 5, 5), False),  # two scores are not a weekly average
        ((), (9, 9, 9), False),
    ],
)
async def test_weekly_average_rise_of_two_flags(sessions, prev, now, flagged):
    async with sessions() as s, s.begin():
        anna = await add_therapist(s, "Anna")
        p = await add_patient(s, "P", anna)
        s.add_all(
            PainScore(user_id=p.id, score=v, recorded_at=day(-6 + i)) for i, v in enumerate(prev)
        )
        s.add_all(
            PainScore(user_id=p.id, score=v, recorded_at=day(1 + i)) for i, v in enumerate(now)
        )
    async with sessions() as s:
        [patient] = (await digest.compute(s, [anna.id], period_utc()))[anna.id].patients
    # Without 3 scores in each week there is no rise to flag (only the high score of 9 is).
    assert (Flag.AVERAGE_UP in patient.flags) is flagged
    assert (Flag.HIGH_PAIN in patient.flags) is (max(now) >= 9)


async def test_digest_text_in_each_language(sessions):
    anna, _ = await known_week(sessions)
    async with sessions() as s:
        result = (await digest.compute(s, [anna.id], period_utc()))[anna.id]
    [text] = digest_view.render(result, "UTC", "en")
    plain = parse_html(text)[0]
    assert plain.startswith("Weekly digest, 23 November – 29 November 2026\n")
    assert "Patients sharing with you: 3. Flagged: 2 (listed first)." in plain
    ana = plain.split("\n\n")[1]
    assert ana.splitlines() == [
        "1. Ana ⚠️",
        "Sessions: 2 of 5 planned (+1 logged on their own)",
        "Pain, weekly average: 6.5",
        "Before → after a session: +0.3 on average (sessions: 3)",
        "The morning after: better 1, same 0, worse 1",
        "⚠️ Sessions where pain rose 2+ points to above the acceptable level, or rose 3+ and"
        " was worse the next morning: 1 (latest 24 November)",
        "⚠️ Worse the morning after a session: 1× (latest 24 November)",
        "⚠️ Skipped more than once because of pain or worry: pain too high ×2, no time ×1",
    ]
    assert "⚠️ No completed session on the last 4 scheduled days" in plain.split("\n\n")[2]
    [da] = digest_view.render(result, "UTC", "da")
    assert "Smerter, ugens gennemsnit: 6,5\n" in da
    assert (
        "Træninger, hvor smerterne steg 2+ point til over det acceptable niveau, eller steg 3+"
        " og var værre næste morgen: 1 (senest 24. november)"
    ) in da
    assert da.startswith("<b>Ugentlig oversigt</b>, 23. november – 29. november 2026")
    [es] = digest_view.render(result, "UTC", "es")
    assert es.startswith("<b>Resumen semanal</b>, del 23 de noviembre al 29 de noviembre de 2026")


def many_patients(n: int) -> list[PatientWeek]:
    """Worst case per block: the longest first names, full of characters HTML escapes, every
    flag and every line."""
    patients = []
    for i in range(n):
        name = f"{i:03d} <&> " + "Æ&" * 29  # 64 characters, 5 of them escaped
        patients.append(
            PatientWeek(
                patient_id=i,
                link_id=i,
                name=name,
                planned=14,
                done=3,
                logged=2,
                pain_sum=70,
                pain_n=10,
                prev_pain_sum=20,
                prev_pain_n=10,
                pain_max=10,
                change_sum=30,
                change_n=10,
                rises=3,
                next_day={"better": 1, "same": 2, "worse": 3},
                barriers=dict.fromkeys(("pain", "time", "fear", "tired", "other"), 12),
                inactive=True,
                rise_last=day(6),
                worse_after_flagged=2,
                worse_last=day(6),
                high_before_days=7,
                high_before_last=day(6),
                worrying_barrier_last=day(6),
                usual_scores={2: 20},
                rest_last={10: day(6)},
                recent_planned=28,
                recent_done=3,
                earlier_planned=28,
                earlier_done=28,
            )
        )
    return patients


@pytest.mark.parametrize("loc", ["en", "da", "es"])
def test_two_hundred_patients_split_under_the_limit_never_inside_a_block(loc):
    result = Digest(1, period_utc(), many_patients(200))
    messages = digest_view.render(result, "UTC", loc)
    assert len(messages) > 5
    names = []
    for i, message in enumerate(messages):
        assert utf16_len(message) <= 4096
        plain, _ = parse_html(message)  # valid Telegram HTML, whole tags in every message
        blocks = message.split("\n\n")
        if i:
            assert blocks[0] == t("therapist.digest_continued", loc)
        for block in blocks[1:]:
            assert re.fullmatch(r"<b>\d+\. .*</b> ⚠️", block.splitlines()[0])
            assert len(block.splitlines()) == 13  # a whole block: name, 4 lines, 8 flags
            names.append(block.splitlines()[0])
    assert len(names) == 200
    assert [re.match(r"<b>(\d+)\.", n)[1] for n in names] == [str(n) for n in range(1, 201)]


def test_pack_never_splits_a_block():
    blocks = ["a" * 40, "b" * 40, "c" * 40]
    assert digest_view.pack("H", blocks, "…", limit=90) == [
        "H\n\n" + "a" * 40 + "\n\n" + "b" * 40,
        "…\n\n" + "c" * 40,
    ]
    with pytest.raises(ValueError):
        digest_view.pack("H", ["x" * 100], "…", limit=90)


def test_week_before_a_new_york_monday_across_the_dst_change():
    tz = "America/New_York"
    # 1 November 2026: clocks go back; the covered week is 7 days and 1 hour long in UTC.
    slot = digest.next_slot(0, "08:00", tz, datetime(2026, 11, 1, tzinfo=UTC))
    assert slot == datetime(2026, 11, 2, 13, 0, tzinfo=UTC)  # 08:00 EST
    period = digest.week_before(slot, tz)
    assert period.start == datetime(2026, 10, 26, 4, 0, tzinfo=UTC)  # Monday 00:00 EDT
    assert period.end == datetime(2026, 11, 2, 5, 0, tzinfo=UTC)  # Monday 00:00 EST
    assert period.week == "2026-W44"
    assert digest.latest_slot(0, "08:00", tz, slot) == slot
    assert digest.latest_slot(0, "08:00", tz, slot - timedelta(seconds=1)) == slot - timedelta(
        days=7, hours=1
    )


def test_current_week_runs_from_monday_midnight_to_now():
    now = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)
    period = digest.current_week(now, "Europe/Copenhagen")
    assert (period.start, period.end, period.week) == (
        datetime(2026, 11, 22, 23, 0, tzinfo=UTC),
        now,
        "2026-W48",
    )


# --- Delivery through the fake Bot API ------------------------------------------------------


def sender(app) -> DigestSender:
    return DigestSender(app.bot, app.bot_data.sessions, app.bot_data.clock)


def no_chat_spacing(app) -> None:
    """The limiter spaces scheduled sends to one chat by a second (tested with the limiter);
    a digest of many messages would make this test wait for nothing."""
    app.bot.rate_limiter.per_chat_interval = 0


async def therapist_with_patient(sessions, uid: int, tz: str | None, loc="en"):
    async with sessions() as s, s.begin():
        therapist = await add_therapist(s, "Anna", tz=tz, loc=loc, uid=uid)
        patient = await add_patient(s, f"Pat{uid}", therapist)
        s.add(session_row(patient, day(-6), before=6, after=3))
    return therapist


async def digests_sent(sessions) -> list[DigestSent]:
    async with sessions() as s:
        return list(await s.scalars(select(DigestSent).order_by(DigestSent.id)))


def digest_titles(user, loc="en") -> list[str]:
    head = tx("therapist.digest_title", loc, period="")
    return [m.text for m in user.messages if m.text and m.text.startswith(head)]


async def test_delivered_monday_0800_in_the_therapists_own_zone(app, fake, sessions, clock):
    clock.set(datetime(2026, 11, 22, 12, 0, tzinfo=UTC))  # Sunday
    await therapist_with_patient(sessions, 7101, "America/New_York")
    await therapist_with_patient(sessions, 7102, "Europe/Copenhagen", "da")
    await therapist_with_patient(sessions, 7103, None)  # no zone: UTC
    new_york, copenhagen, utc = fake.user(7101), fake.user(7102), fake.user(7103)
    no_chat_spacing(app)
    job = sender(app)
    await job.tick()  # first sight of the therapists: their next Monday 08:00 is computed
    async with sessions() as s:
        due = dict(
            (
                await s.execute(select(User.telegram_id, Therapist.next_digest_at).join(Therapist))
            ).all()
        )
    assert due == {
        7101: datetime(2026, 11, 23, 13, 0, tzinfo=UTC),
        7102: datetime(2026, 11, 23, 7, 0, tzinfo=UTC),
        7103: datetime(2026, 11, 23, 8, 0, tzinfo=UTC),
    }
    for at, expected in (
        ((6, 59), []),
        ((7, 0), [copenhagen]),
        ((8, 0), [utc]),
        ((12, 59), []),
        ((13, 0), [new_york]),
    ):
        clock.set(datetime(2026, 11, 23, *at, tzinfo=UTC))
        before = {u: len(u.messages) for u in (new_york, copenhagen, utc)}
        report = await job.tick()
        got = [u for u in (new_york, copenhagen, utc) if len(u.messages) > before[u]]
        assert got == expected and report.sent == len(expected), at
    # Each got the week before their own Monday, in their language, text then chart.
    assert new_york.messages[-2].text.startswith(
        tx("therapist.digest_title", "en", period="16 November – 22 November 2026")
    )
    assert new_york.last.photo.startswith(b"\x89PNG")
    assert copenhagen.messages[-2].text.startswith("Ugentlig oversigt, 16. november")
    assert [d.iso_week for d in await digests_sent(sessions)] == ["2026-W47"] * 3
    assert all(d.sent_at is not None for d in await digests_sent(sessions))
    assert not fake.errors


async def test_once_per_week_across_a_restart(app, fake, engine, sessions, clock):
    clock.set(datetime(2026, 11, 29, 12, 0, tzinfo=UTC))
    anna = fake.user(7201)
    no_chat_spacing(app)
    await therapist_with_patient(sessions, 7201, "UTC")
    await sender(app).tick()
    clock.set(SLOT_UTC + timedelta(seconds=30))
    assert (await sender(app).tick()).sent == 1
    assert (await sender(app).tick()).sent == 0
    # A restart: a new process with nothing in memory, the same database.
    await app.shutdown()
    restarted = await start_app(fake, engine, clock)
    no_chat_spacing(restarted)
    try:
        clock.advance(timedelta(minutes=5))
        assert (await sender(restarted).tick()).sent == 0
        # Even if next_digest_at were lost (set back), the week's row stops a second send.
        async with sessions() as s, s.begin():
            await s.execute(update(Therapist).values(next_digest_at=SLOT_UTC))
        assert (await sender(restarted).tick()).sent == 0
        assert len(digest_titles(anna)) == 1
        clock.set(SLOT_UTC + timedelta(days=7))
        assert (await sender(restarted).tick()).sent == 1
    finally:
        await restarted.shutdown()
    assert [d.iso_week for d in await digests_sent(sessions)] == ["2026-W48", "2026-W49"]
    assert len(digest_titles(anna)) == 2


async def test_two_dispatchers_send_each_digest_once(app, fake, engine, sessions, clock):
    async with sessions() as s, s.begin():
        for uid in range(7300, 7316):
            fake.user(uid)
            therapist = await add_therapist(s, "T", tz="UTC", uid=uid)
            therapist.next_digest_at = SLOT_UTC
            await add_patient(s, f"P{uid}", therapist)
    clock.set(SLOT_UTC + timedelta(seconds=5))
    other = await start_app(fake, engine, clock)
    no_chat_spacing(app)
    no_chat_spacing(other)
    try:
        first = DigestSender(app.bot, sessions, clock, batch=5)
        second = DigestSender(other.bot, sessions, clock, batch=5)
        a, b = await asyncio.gather(first.tick(), second.tick())
    finally:
        await other.shutdown()
    assert a.sent + b.sent == 16
    for uid in range(7300, 7316):
        assert len(digest_titles(fake.user(uid))) == 1, uid
    rows = await digests_sent(sessions)
    assert len(rows) == 16 and all(r.sent_at is not None for r in rows)


async def test_skip_locked_second_claimer_gets_nothing_while_the_first_holds(sessions):
    """PostgreSQL: replica B skips the therapist rows A has locked, and after A commits, the
    unique (therapist, week) row stops B even if it were to see the therapist as due."""
    if sessions.kw["bind"].dialect.name != "postgresql":
        pytest.skip("SKIP LOCKED is PostgreSQL's (SQLite serialises writers)")
    async with sessions() as s, s.begin():
        for _ in range(5):
            therapist = await add_therapist(s, "T", tz="UTC")
            therapist.next_digest_at = SLOT_UTC
    now = SLOT_UTC + timedelta(seconds=1)
    a_claimed, b_done = asyncio.Event(), asyncio.Event()

    async def replica_a():
        async with sessions() as s, s.begin():
            claims = await digest.claim_due(s, now)
            a_claimed.set()
            await asyncio.wait_for(b_done.wait(), timeout=10)
            return claims

    async def replica_b():
        await a_claimed.wait()
        async with sessions() as s, s.begin():
            claims = await digest.claim_due(s, now)
        b_done.set()
        return claims

    a, b = await asyncio.gather(replica_a(), replica_b())
    assert (len(a), len(b)) == (5, 0)
    async with sessions() as s, s.begin():
        await s.execute(update(Therapist).values(next_digest_at=SLOT_UTC))
    async with sessions() as s, s.begin():
        assert await digest.claim_due(s, now) == []


async def test_a_claim_never_sent_is_sent_after_the_lease(app, fake, sessions, clock):
    anna = fake.user(7401)
    await therapist_with_patient(sessions, 7401, "UTC")
    async with sessions() as s, s.begin():
        await s.execute(update(Therapist).values(next_digest_at=SLOT_UTC))
    clock.set(SLOT_UTC)
    async with sessions() as s, s.begin():  # a process claims, commits, and dies
        [claim] = await digest.claim_due(s, clock.now())
    clock.advance(timedelta(minutes=10))
    assert (await sender(app).tick()).sent == 0  # the lease still holds
    clock.advance(timedelta(minutes=6))
    assert (await sender(app).tick()).sent == 1
    [row] = await digests_sent(sessions)
    assert row.id == claim.digest_id and row.sent_at == clock.now()
    assert len(digest_titles(anna)) == 1


async def test_blocked_therapist_is_not_retried(app, fake, sessions, clock):
    await therapist_with_patient(sessions, 7501, "UTC")
    async with sessions() as s, s.begin():
        await s.execute(update(Therapist).values(next_digest_at=SLOT_UTC))
    await fake.user(7501).block()
    clock.set(SLOT_UTC)
    assert (await sender(app).tick()).undeliverable == 1
    clock.advance(timedelta(hours=1))
    assert (await sender(app).tick()).undeliverable == 0
    [row] = await digests_sent(sessions)
    assert row.sent_at is None and row.detail.startswith("undeliverable")


async def test_no_patients_no_message(app, fake, sessions, clock):
    async with sessions() as s, s.begin():
        therapist = await add_therapist(s, "Anna", tz="UTC", uid=7601)
        therapist.next_digest_at = SLOT_UTC
    clock.set(SLOT_UTC)
    report = await sender(app).tick()
    assert (report.sent, report.empty) == (0, 1)
    assert fake.user(7601).messages == []


async def test_two_hundred_patients_through_telegram(app, fake, sessions, clock):
    anna = fake.user(7701)
    no_chat_spacing(app)
    async with sessions() as s, s.begin():
        therapist = await add_therapist(s, "Anna", tz="UTC", uid=7701)
        therapist.next_digest_at = SLOT_UTC
        for i in range(200):
            patient = await add_patient(s, f"{i:03d} " + "Zoë&<" * 12, therapist)
            s.add(session_row(patient, day(i % 7), before=3, after=6 + i % 2, flagged=True))
    clock.set(SLOT_UTC)
    assert (await sender(app).tick()).sent == 1
    texts = [m.text for m in anna.messages if m.text and m.photo is None]
    assert len(texts) > 1 and all(utf16_len(text) <= 4096 for text in texts)
    everything = "\n".join(texts)
    for i in range(200):
        assert everything.count(f". {i:03d} Zoë&<") == 1, i
    assert anna.last.photo is not None
    assert not fake.errors


async def test_digest_on_demand_does_not_count_as_the_weekly_one(app, fake, sessions, clock):
    await therapist_with_patient(sessions, 7801, "UTC")
    anna = fake.user(7801, "Anna")
    clock.set(SLOT_UTC - timedelta(days=2))
    await anna.send("/digest")
    assert anna.messages[-2].text.startswith(
        tx("therapist.digest_title_now", "en", period="23 November – 28 November 2026")
    )
    # Nothing recorded this week yet: a line of text, not an empty chart (issue 16).
    assert anna.last.text == tx("workspace.digest_no_chart", "en")
    assert await digests_sent(sessions) == []
    async with sessions() as s, s.begin():
        await s.execute(update(Therapist).values(next_digest_at=SLOT_UTC))
    clock.set(SLOT_UTC)
    assert (await sender(app).tick()).sent == 1


async def test_weekly_job_is_scheduled_with_deliberate_misfire_settings(app):
    schedule_jobs(app)
    try:
        [job] = app.job_queue.get_jobs_by_name("weekly-digest")
        assert (job.job.misfire_grace_time, job.job.coalesce, job.job.max_instances) == (
            None,
            True,
            1,
        )
    finally:
        for job in app.job_queue.jobs():
            job.schedule_removal()


async def test_counts_are_per_therapist_and_week(sessions):
    async with sessions() as s, s.begin():
        therapist = await add_therapist(s, "Anna", tz="UTC")
        therapist.next_digest_at = SLOT_UTC
    async with sessions() as s, s.begin():
        [claim] = await digest.claim_due(s, SLOT_UTC)
    assert claim.period.week == "2026-W48"
    async with sessions() as s:
        assert await s.scalar(select(func.count()).select_from(DigestSent)) == 1
        assert await s.scalar(select(Therapist.next_digest_at)) == SLOT_UTC + timedelta(days=7)


async def test_time_away_is_one_line_of_the_digest(sessions):
    from bot.db.models import HabitEvent
    from bot.handlers.digest_view import patient_block

    async with sessions() as s, s.begin():
        anna = await add_therapist(s, "Anna")
        away = await add_patient(s, "Away", anna)
        back = await add_patient(s, "Back", anna)
        s.add(HabitEvent(user_id=away.id, kind="away", at=day(2)))
        s.add(HabitEvent(user_id=back.id, kind="away", at=day(-5)))
        s.add(HabitEvent(user_id=back.id, kind="returned", detail="keep", at=day(1)))
    async with sessions() as s:
        patients = (await digest.compute(s, [anna.id], period_utc()))[anna.id].patients
    text = {p.name: patient_block(p, 1, "da") for p in patients}
    assert "Væk (ingen svar) siden 25. november" in text["Away"]
    assert "Væk fra 18. november, tilbage 24. november." in text["Back"]
