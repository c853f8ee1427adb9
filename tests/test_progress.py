"""/progress: streak rules, weekly statistics, the pain trend, the before/after effect (pure,
on known data), ``compute_progress`` on the database (SQLite and PostgreSQL, incl. a DST week)
and the conversation in every language.
"""

from __future__ import annotations

import itertools
import re
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from bot.db.models import CheckIn, PainScore, Schedule, User
from bot.handlers.progress import number, summary_lines
from bot.i18n import t
from bot.services.progress import (
    CheckInRecord,
    Cheer,
    DayState,
    ScoreRecord,
    Trend,
    WeekStats,
    before_after_effect,
    compute_progress,
    day_states,
    encouragement,
    pain_trend,
    remaining_slots,
    streaks,
    weekly_stats,
)
from bot.services.reminders import Status
from bot.services.schedule_rules import ALL_DAYS, WEEKDAYS, next_occurrence
from bot.testing.fake_telegram import parse_html
from tests.conftest import T0, setup_through, tx

LOCALES = ("en", "da", "es")
CPH = "Europe/Copenhagen"
ZI = ZoneInfo(CPH)
MONDAY = date(2026, 11, 16)  # a Monday; day offsets below count from here
_ids = itertools.count(7_000_000)


def ci(offset: int, status: str = "completed", kind: str = "prompt", before=None, after=None):
    """A check-in on MONDAY + offset days at 08:30 Copenhagen time."""
    at = datetime.combine(MONDAY + timedelta(days=offset), time(8, 30), ZI)
    return CheckInRecord(at, kind, status, before, after)


# --- Streaks ---------------------------------------------------------------------------------

C, M, S, U = Status.COMPLETED, Status.MISSED, Status.SKIPPED, Status.UNDELIVERABLE

STREAK_CASES = {
    "five weekdays in a row": ([ci(d) for d in range(5)], (5, 5)),
    # Weekdays schedule: Saturday and Sunday have no prompt row, so they are neutral.
    "an unscheduled weekend does not break it": ([ci(d) for d in (0, 1, 2, 3, 4, 7)], (6, 6)),
    "a missed day breaks it": ([ci(0), ci(1), ci(2, M), ci(3)], (1, 2)),
    "a skipped day breaks it": ([ci(0), ci(1, S), ci(2), ci(3)], (2, 2)),
    "an undeliverable day breaks it": ([ci(0), ci(1), ci(2), ci(3, U)], (0, 3)),
    # A paused patient gets no rows at all (the dispatcher writes none): neutral days.
    "a paused stretch does not break it": ([ci(0), ci(1), ci(9), ci(10)], (4, 4)),
    "today's open prompt does not break it": ([ci(0), ci(1), ci(2, Status.PROMPTED)], (2, 2)),
    "today's snoozed prompt does not break it": ([ci(0), ci(1, Status.SNOOZED)], (1, 1)),
    "a /log session rescues a missed day": ([ci(0), ci(1, M), ci(1, C, "log"), ci(2)], (3, 3)),
    "a /log session on an unscheduled day counts": ([ci(4), ci(5, C, "log"), ci(7)], (3, 3)),
    "an abandoned /log is neutral": ([ci(0), ci(5, M, "log"), ci(7)], (2, 2)),
    "one of two prompts done makes the day": ([ci(0, M), ci(0), ci(1)], (2, 2)),
    "two prompts both unanswered break the day": ([ci(0), ci(1, M), ci(1, S), ci(2)], (1, 1)),
    "the best run stays in the history": ([ci(d) for d in range(6)] + [ci(6, M), ci(7)], (1, 6)),
    "nothing recorded": ([], (0, 0)),
    "reminders but never a session": ([ci(0, M), ci(1, S)], (0, 0)),
}


@pytest.mark.parametrize(("records", "expected"), STREAK_CASES.values(), ids=STREAK_CASES.keys())
def test_streaks(records, expected):
    assert streaks(day_states(records)) == expected


def test_day_states_are_per_local_date():
    states = day_states([ci(0), ci(1, M), ci(2, Status.STARTED), ci(3, M, "log")])
    assert states == {
        MONDAY: DayState.DONE,
        MONDAY + timedelta(days=1): DayState.BROKEN,
        MONDAY + timedelta(days=2): DayState.OPEN,
    }


# --- Weeks, pain, effect, trend --------------------------------------------------------------


def test_weekly_stats_on_known_data():
    last_week = MONDAY - timedelta(weeks=1)
    records = [
        ci(-7, C, before=6, after=4),
        ci(-6, M),
        ci(-5, S, before=7),  # a score recorded before giving up still counts for the week
        ci(-1, C, "log", before=5, after=5),  # Sunday: last week; a log is done, not planned
        ci(0, C, before=3, after=2),
        ci(1, Status.PROMPTED),
    ]
    scores = [
        ScoreRecord(datetime(2026, 11, 15, 23, 30, tzinfo=ZI), 8),  # Sunday night: last week
        ScoreRecord(datetime(2026, 11, 16, 0, 30, tzinfo=ZI), 1),  # Monday just after midnight
    ]
    weeks = weekly_stats(records, scores, [last_week, MONDAY], {MONDAY: 3})
    # Resting scores only (before a session, /pain): the score after is the session's effect.
    assert weeks[0] == WeekStats(last_week, 3, 2, (6 + 7 + 5 + 8) / 4, 4, 0)
    # Two scores are too few for a weekly average (the digest's rule too).
    assert weeks[1] == WeekStats(MONDAY, 2 + 3, 1, None, 2, 3)


def test_week_without_anything():
    [week] = weekly_stats([], [], [MONDAY])
    assert (week.planned, week.done, week.pain_mean, week.pain_count) == (0, 0, None, 0)


@pytest.mark.parametrize(
    ("records", "sessions", "mean_change", "fell"),
    [
        (
            [ci(0, C, before=6, after=4), ci(1, C, before=5, after=5), ci(2, C, before=3, after=6)],
            3,
            1 / 3,
            1,
        ),
        ([ci(0, C, before=8, after=5), ci(1, C, before=6, after=4)], 2, -2.5, 2),
        # Not completed (abandoned at the effort step, skipped) or missing a score: left out.
        (
            [ci(0, Status.EFFORT, before=6, after=2), ci(1, S, before=5), ci(2, C, before=4)],
            0,
            None,
            0,
        ),
        ([], 0, None, 0),
    ],
)
def test_before_after_effect(records, sessions, mean_change, fell):
    effect = before_after_effect(records)
    assert effect.sessions == sessions and effect.fell == fell
    if mean_change is None:
        assert effect.mean_change is None and effect.share_fell is None
    else:
        assert effect.mean_change == pytest.approx(mean_change)
        assert effect.share_fell == pytest.approx(fell / sessions)


@pytest.mark.parametrize(
    ("means", "trend"),
    [
        ([6, 5.5, 5, 4.5, 4], Trend.FALLING),
        ([3, 3.5, 4, 4.5, 5], Trend.RISING),
        ([5, 5.2, 4.9, 5.1, 5], Trend.STEADY),
        ([5, None, None, None, 3.4], Trend.FALLING),  # gaps: read across the weeks with scores
        ([5, None, None, None, 3.9], Trend.STEADY),  # 1.1 of 5: under 2 points and 30 %
        ([5, 6], Trend.STEADY),  # a point is noise (Farrar et al. 2001)
        ([5, 6.5], Trend.RISING),  # 30 %
        ([2, 3], Trend.RISING),  # 50 % of a low level
        ([8, 6], Trend.FALLING),  # 2 points
        ([None, None, 5, None, None], Trend.UNKNOWN),
        ([None] * 5, Trend.UNKNOWN),
        ([7, 2, 7, 2, 7], Trend.STEADY),  # noisy, no direction
    ],
)
def test_pain_trend(means, trend):
    assert pain_trend(means) is trend


def week(planned=5, done=5, remaining=0, start=MONDAY):
    return WeekStats(start, planned, done, None, 0, remaining)


@pytest.mark.parametrize(
    ("weeks", "trend", "streak", "paused", "completed", "cheer"),
    [
        ([week(5, 0)], Trend.UNKNOWN, 0, False, 0, Cheer.FIRST_STEPS),
        ([week(), week()], Trend.RISING, 9, False, 10, Cheer.PAIN_RISING),  # honest first
        ([week(), week(0, 0)], Trend.STEADY, 2, True, 10, Cheer.PAUSED),
        ([week(5, 1), week(5, 1, remaining=3)], Trend.FALLING, 1, False, 10, Cheer.STRUGGLING),
        ([week(5, 5), week(5, 0, remaining=5)], Trend.STEADY, 5, False, 10, Cheer.STREAK),
        ([week(5, 4), week(5, 2, remaining=2)], Trend.FALLING, 1, False, 10, Cheer.PAIN_FALLING),
        ([week(5, 4), week(5, 2, remaining=2)], Trend.STEADY, 3, False, 10, Cheer.STREAK),
        ([week(5, 4), week(5, 2, remaining=2)], Trend.STEADY, 2, False, 10, Cheer.STEADY),
        # Monday morning: this week's slots are all still to come, last week was fine.
        ([week(5, 3), week(5, 0, remaining=5)], Trend.UNKNOWN, 0, False, 3, Cheer.STEADY),
    ],
)
def test_encouragement(weeks, trend, streak, paused, completed, cheer):
    assert encouragement(weeks, trend, streak, paused, completed) is cheer


# --- Slots still to come this week -----------------------------------------------------------

WEEK_START = datetime.combine(MONDAY, time(0), ZI)
WEEK_END = datetime.combine(MONDAY + timedelta(days=7), time(0), ZI)


def slot(offset: int, hhmm: str = "08:30") -> datetime:
    at = time.fromisoformat(hhmm)
    return datetime.combine(MONDAY + timedelta(days=offset), at, ZI).astimezone(UTC)


@pytest.mark.parametrize(
    ("schedules", "counts_on", "expected"),
    [
        ([("08:30", WEEKDAYS, slot(1))], None, 4),  # Tuesday to Friday
        ([("08:30", ALL_DAYS, slot(1)), ("19:00", ALL_DAYS, slot(0, "19:00"))], None, 6 + 7),
        ([("08:30", WEEKDAYS, slot(1))], lambda d: d > MONDAY + timedelta(days=2), 2),  # paused
        ([("08:30", WEEKDAYS, None)], None, 0),  # no days chosen
        ([("08:30", WEEKDAYS, slot(-3))], None, 5),  # stale (bot was down): this week only
        ([("08:30", WEEKDAYS, slot(7))], None, 0),  # next slot is next week
    ],
)
def test_remaining_slots(schedules, counts_on, expected):
    got = remaining_slots(schedules, CPH, WEEK_START, WEEK_END, counts_on or (lambda d: True))
    assert got == expected


# --- compute_progress on the database ---------------------------------------------------------


async def add_patient(session, *, tz=CPH, **fields) -> User:
    values = {
        "telegram_id": next(_ids),
        "language": "en",
        "timezone": tz,
        "consent_at": datetime(2026, 1, 1, tzinfo=UTC),
        "setup_done_at": datetime(2026, 1, 1, tzinfo=UTC),
    }
    values.update(fields)
    user = User(**values)
    session.add(user)
    await session.flush()
    return user


def add_checkin(session, user, due: datetime | None, status=Status.COMPLETED, **fields):
    created = fields.pop("created_at", due)
    session.add(CheckIn(user_id=user.id, due_at=due, status=status, created_at=created, **fields))


async def test_compute_progress_on_known_data(session):
    user = await add_patient(session)
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)  # Wednesday 13:00 in Copenhagen
    session.add(Schedule(user_id=user.id, local_time="08:30", days=WEEKDAYS, next_due_at=slot(10)))
    # Last week: Mon-Fri prompts, 4 done (one fall, one rise, two the same), Friday missed.
    for d, (status, b, a) in enumerate(
        [(C, 6, 4), (C, 5, 5), (C, 4, 7), (C, 5, 5), (M, None, None)]
    ):
        add_checkin(session, user, slot(d), status, pain_before=b, pain_after=a)
    # This week (23 Nov): Monday and Tuesday done; Wednesday's prompt is still open.
    add_checkin(session, user, slot(7), C, pain_before=5, pain_after=3)
    add_checkin(session, user, slot(8), C, pain_before=4, pain_after=3)
    add_checkin(session, user, slot(9), Status.PROMPTED)
    # A /log session on Sunday 22 Nov (unscheduled): done, not planned.
    sunday = datetime(2026, 11, 22, 17, 0, tzinfo=UTC)
    add_checkin(session, user, None, C, kind="log", created_at=sunday, pain_before=6, pain_after=6)
    session.add(
        PainScore(user_id=user.id, score=2, recorded_at=datetime(2026, 11, 24, 20, 0, tzinfo=UTC))
    )
    # Outside the five weeks: counted in the effect and the best streak only.
    for d in range(-70, -60):
        add_checkin(session, user, slot(d), C, pain_before=8, pain_after=6)
    add_checkin(session, user, slot(-60), M)
    session.add(PainScore(user_id=user.id, score=9, recorded_at=slot(-70)))
    await session.flush()

    p = await compute_progress(session, user, now)

    assert p.today == date(2026, 11, 25)
    assert [w.start for w in p.weeks] == [date(2026, 10, 26) + timedelta(weeks=n) for n in range(5)]
    last, this = p.weeks[-2], p.weeks[-1]
    assert (last.planned, last.done, last.remaining) == (5, 5, 0)  # 4 of 5 prompts + the log
    assert last.pain_mean == pytest.approx((6 + 5 + 4 + 5 + 6) / 5)  # before each session
    # 3 prompt rows (Mon, Tue, Wed) + Thursday and Friday still to come.
    assert (this.planned, this.done, this.remaining) == (5, 2, 2)
    assert this.pain_mean == pytest.approx((5 + 4 + 2) / 3)  # two befores and one /pain
    assert all(w.planned == w.done == w.pain_count == 0 for w in p.weeks[:3])
    # Thu 19 Nov done, Fri 20 missed, weekend log, Mon, Tue done; Wednesday open.
    assert (p.current_streak, p.best_streak) == (3, 10)
    assert p.effect.sessions == 4 + 1 + 2 + 10
    assert p.effect.fell == 1 + 2 + 10
    assert p.effect.mean_change == pytest.approx((-2 + 0 + 3 + 0 + 0 - 2 - 1 - 20) / 17)
    assert [(s.before, s.after) for s in p.sessions] == [
        (6, 4),
        (5, 5),
        (4, 7),
        (5, 5),
        (6, 6),
        (5, 3),
        (4, 3),
    ]
    assert p.completed_total == 17 and not p.paused and p.has_data


async def test_paused_patient_plans_nothing_more_this_week(session):
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    user = await add_patient(session, paused_at=now, paused_until=date(2026, 11, 26))
    session.add(Schedule(user_id=user.id, local_time="08:30", days=ALL_DAYS, next_due_at=slot(10)))
    add_checkin(session, user, slot(7), C, pain_before=5, pain_after=4)
    await session.flush()
    p = await compute_progress(session, user, now)
    # Thursday 26 is paused; Friday to Sunday count again.
    assert (p.weeks[-1].planned, p.weeks[-1].remaining) == (1 + 3, 3)
    assert p.paused and p.cheer is Cheer.PAUSED
    user.paused_until = None  # until /resume: nothing more is planned
    p = await compute_progress(session, user, now)
    assert p.weeks[-1].planned == 1


async def test_new_patient_has_no_data(session):
    user = await add_patient(session)
    session.add(Schedule(user_id=user.id, local_time="08:30", days=ALL_DAYS, next_due_at=slot(10)))
    await session.flush()
    p = await compute_progress(session, user, datetime(2026, 11, 25, 12, 0, tzinfo=UTC))
    assert not p.has_data and p.weeks[-1].remaining == 4  # Thursday to Sunday
    assert p.cheer is Cheer.FIRST_STEPS


async def test_a_dst_week_counts_local_dates(session):
    """Spring forward in Copenhagen on Sunday 28 March 2027: 08:30 moves from 07:30 to 06:30
    UTC; a 00:30 slot on Monday 29 March is 22:30 UTC on Sunday but belongs to the new week.
    """
    user = await add_patient(session)
    first = datetime(2027, 3, 22, 0, 0, tzinfo=UTC)
    slots, at = [], first
    while (at := next_occurrence("08:30", ALL_DAYS, CPH, at)) < datetime(2027, 3, 29, tzinfo=UTC):
        slots.append(at)
    assert [s.hour for s in slots] == [7] * 6 + [6]  # the last one is after the change
    for s in slots[:-1]:
        add_checkin(session, user, s, C, pain_before=6, pain_after=4)
    add_checkin(session, user, slots[-1], M)  # Sunday after the change: missed
    monday_night = next_occurrence("00:30", ALL_DAYS, CPH, datetime(2027, 3, 28, 12, tzinfo=UTC))
    assert monday_night == datetime(2027, 3, 28, 22, 30, tzinfo=UTC)
    add_checkin(session, user, monday_night, C, pain_before=3, pain_after=1)
    await session.flush()

    p = await compute_progress(session, user, datetime(2027, 3, 29, 10, 0, tzinfo=UTC))
    prev, this = p.weeks[-2], p.weeks[-1]
    assert prev.start == date(2027, 3, 22) and this.start == date(2027, 3, 29)
    assert (prev.planned, prev.done, prev.pain_mean) == (7, 6, 6.0)
    assert (this.planned, this.done, this.pain_mean, this.pain_count) == (1, 1, None, 1)
    # Mon-Sat done, Sunday missed, Monday (local) done.
    assert (p.current_streak, p.best_streak) == (1, 6)


# --- Text --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "loc", "signed", "text"),
    [
        (1.25, "en", False, "1.2"),
        (4.75, "da", False, "4,8"),
        (-1.0, "es", True, "−1,0"),
        (0.5, "en", True, "+0.5"),
        (-0.04, "en", True, "0.0"),
    ],
)
def test_number(value, loc, signed, text):
    assert number(value, loc, signed=signed) == text


LOCALE_DIR = Path(__file__).resolve().parent.parent / "locales"
PLACEHOLDER = re.compile(r"%\{(\w+)\}")


def flat(data: dict, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def load(namespace: str, loc: str) -> dict[str, str]:
    with (LOCALE_DIR / f"{namespace}.{loc}.yml").open(encoding="utf-8") as fh:
        return flat(yaml.safe_load(fh)[loc])


@pytest.mark.parametrize("namespace", ["progress", "privacy_export"])
def test_locales_have_the_same_keys_and_placeholders(namespace):
    en = load(namespace, "en")
    for loc in LOCALES:
        texts = load(namespace, loc)
        assert set(texts) == set(en), loc
        for key, text in texts.items():
            assert set(PLACEHOLDER.findall(text)) == set(PLACEHOLDER.findall(en[key])), key
            # python-i18n reads any other "%" as a placeholder; "%%" is a literal percent sign.
            assert "%" not in PLACEHOLDER.sub("", text).replace("%%", ""), key
            parse_html(text)  # Telegram's HTML parser would accept it


@pytest.mark.parametrize("loc", LOCALES)
async def test_summary_text_is_valid_html_in_every_state(session, loc):
    user = await add_patient(session, language=loc)
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    empty = await compute_progress(session, user, now)
    assert summary_lines(empty, loc)[-1] == t("progress.no_data", loc)
    add_checkin(session, user, slot(7), C, pain_before=5, pain_after=3)
    await session.flush()
    one = "\n".join(summary_lines(await compute_progress(session, user, now), loc))
    text, _ = parse_html(one)
    # One session: no "effect" from it yet (feedback.EFFECT_MIN_SESSIONS), and one score is
    # not a weekly average.
    assert tx("progress.effect_none", loc, min=3) in text
    assert tx("progress.pain_few", loc, min=3) in text
    add_checkin(session, user, slot(8), C, pain_before=5, pain_after=4)
    add_checkin(session, user, slot(9), C, pain_before=6, pain_after=4)
    await session.flush()
    full = "\n".join(summary_lines(await compute_progress(session, user, now), loc))
    text, _ = parse_html(full)
    assert tx("progress.effect_title", loc) in text
    assert tx("progress.sessions", loc, count=3) in text


# --- The conversation ---------------------------------------------------------------------------


async def do_one_session(user, app, clock, loc: str, before: str = "6", after: str = "4"):
    """Set up for 08:30 on weekdays and answer Monday's prompt with a whole session."""
    await setup_through(user, loc)
    clock.set(T0 + timedelta(hours=2))  # 09:00 UTC: 08:30 has passed in every suggested zone
    assert (await app.bot_data.dispatcher.tick()).sent == 1
    for label in (before, tx("checkin.done", loc), after):
        await user.press(label)
    await user.press(tx("checkin.effort_easy", loc))


@pytest.mark.parametrize("loc", LOCALES)
async def test_progress_command_sends_the_summary_and_the_chart(app, fake, clock, loc):
    user = fake.user(7101, language_code=loc)
    await do_one_session(user, app, clock, loc)
    await user.send("/progress")
    summary, chart = user.messages[-2], user.messages[-1]
    assert summary.text.startswith(tx("progress.title", loc))
    assert tx("progress.week_current_left", loc, done=1, planned=5, left=4) in summary.text
    one_day = tx("progress.days", loc, count=1)
    assert tx("progress.streak", loc, current=one_day, best=one_day) in summary.text
    # One session says nothing yet about what exercise does to their pain (3 needed).
    assert tx("progress.effect_none", loc, min=3) in summary.text
    assert {"en": "(100%)", "da": "(100\xa0%)", "es": "(100\xa0%)"}[loc] not in summary.text
    assert chart.photo.startswith(b"\x89PNG\r\n\x1a\n")
    # Set up this Monday: one week shown, never the four before the patient started.
    assert chart.text == tx("habit.chart_caption_one", loc)
    assert not fake.errors


async def test_progress_before_consent_and_before_any_data(app, fake, clock):
    user = fake.user(7102, language_code="es")
    await user.send("/progress")
    assert user.last.text == tx("settings.need_start", "es")
    await setup_through(user, "es")
    await user.send("/progress")
    assert user.last.text.endswith(tx("progress.no_data", "es"))
    assert user.last.photo is None  # no empty chart
    assert not fake.errors
