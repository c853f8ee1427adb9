"""The therapists' weekly digest: per-patient statistics, flags, and the once-a-week claim.

Statistics are computed for many therapists at once with a few set-based queries grouped by
patient (ARCHITECTURE.md B6: 1,000 therapists x 20 patients), never one query per patient.
Every query is scoped by active links (confirmed, not revoked): the patients are read from
those links first, and each statistics query is limited to them, so a digest can only
contain patients who chose to share with that therapist.

Once per week per therapist, across restarts and replicas: ``claim_due`` locks the due
therapist rows (``FOR UPDATE SKIP LOCKED``, as the reminder claim does), inserts the
``DigestSent`` row (unique per therapist and ISO week) and advances ``next_digest_at``, in
one transaction. The sender sends after the commit and then records ``sent_at``. A claim
whose send never finished (a crash) is taken again after ``DIGEST_LEASE``, as long as that
week's digest is still the newest one.

``DigestSent.detail`` is NULL while a digest waits to be sent; anything else ends it
("sent: ...", "no patients", "undeliverable: ...", "expired").
"""

from __future__ import annotations

import functools
import logging
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Date, and_, case, cast, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import CheckIn, DigestSent, PainScore, Therapist, TherapistLink, User
from bot.services import feedback, habit, programmes
from bot.services.checkins import BARRIERS, NEXT_DAY_ANSWERS
from bot.services.reminders import Status
from bot.services.schedule_rules import next_occurrence, parse_hhmm, wall_clock_instant, zone
from bot.services.therapists import ACTIVE_LINK

log = logging.getLogger(__name__)

# Flags (PRODUCT.md "Weekly digest"): the rules and their thresholds are the clinical rules
# module's (bot/services/feedback.py: high_pain_flag, average_up_counted, too_much_flag,
# worse_mornings_counted, high_before_counted, adherence_falling_flag, barriers_counted,
# inactive_flag);
# this module only gathers the numbers they need, set-based.
INACTIVE_DAYS = feedback.INACTIVE_DAYS
INACTIVE_LOOKBACK = timedelta(days=28)
# The usual level is read from the resting scores of these weeks before the covered week.
USUAL_LOOKBACK = timedelta(weeks=feedback.DIGEST_USUAL_WEEKS)
# Adherence compares the last two weeks (the covered one and the one before) with the two before.
ADHERENCE_LOOKBACK = timedelta(weeks=3)
DEFAULT_DIGEST_TIME = "08:00"
# A claimed digest not recorded as sent within this time is sent again (the sender crashed).
DIGEST_LEASE = timedelta(minutes=15)
# A digest that fell due while the bot was down is still sent this late; older ones are not
# (by then the next week's is close, and the week is old news).
DIGEST_GRACE = timedelta(days=2)


# The kinds of flag (structured flags: ``feedback.Flag`` with kind, date and numbers).
Flag = feedback.FlagKind


# ---------------------------------------------------------------------------------------------
# Weeks and slots (pure)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """The week a digest covers, in UTC: [start, end); the week before is [prev_start, start)."""

    prev_start: datetime
    start: datetime
    end: datetime
    week: str  # ISO week of the covered days, "2026-W48": the once-a-week key
    # The inactivity flag looks at scheduled days before this instant.
    until: datetime


def week_key(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def valid_zone(name: str | None) -> str:
    """The therapist's zone (users.timezone), UTC if unset or unknown."""
    if not name:
        return "UTC"
    try:
        zone(name)
    except (KeyError, ValueError):
        return "UTC"
    return name


def _midnight(day: date, tz: str) -> datetime:
    return wall_clock_instant(day, time(0), tz)


def week_before(slot: datetime, tz: str) -> Period:
    """The seven local days before the digest's slot: for a Monday digest, the ISO week before."""
    day = slot.astimezone(zone(tz)).date()
    start = _midnight(day - timedelta(days=7), tz)
    end = _midnight(day, tz)
    return Period(
        _midnight(day - timedelta(days=14), tz), start, end, week_key(day - timedelta(days=1)), end
    )


def current_week(now: datetime, tz: str) -> Period:
    """Monday 00:00 local up to now (for /digest on demand)."""
    today = now.astimezone(zone(tz)).date()
    monday = today - timedelta(days=today.weekday())
    return Period(
        _midnight(monday - timedelta(days=7), tz),
        _midnight(monday, tz),
        now,
        week_key(today),
        now,
    )


def _digest_time(value: str | None) -> str:
    try:
        parse_hhmm(value or "")
    except ValueError:
        return DEFAULT_DIGEST_TIME
    return value


def next_slot(weekday: int, at: str, tz: str, after: datetime) -> datetime:
    """The next digest instant strictly after ``after`` (weekday 0 = Monday, local HH:MM)."""
    slot = next_occurrence(_digest_time(at), 1 << (weekday % 7), tz, after)
    assert slot is not None  # a one-day mask always recurs
    return slot


def latest_slot(weekday: int, at: str, tz: str, now: datetime) -> datetime:
    """The newest digest instant at or before ``now``."""
    slot = next_slot(weekday, at, tz, now - timedelta(days=8))
    while (following := next_slot(weekday, at, tz, slot)) <= now:
        slot = following
    return slot


# ---------------------------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------------------------


@dataclass
class PatientWeek:
    """One patient's week as their therapist sees it."""

    patient_id: int
    link_id: int = 0
    name: str | None = None
    planned: int = 0  # prompt check-ins of the week
    done: int = 0  # of those, completed
    logged: int = 0  # sessions recorded with /log, completed
    pain_sum: int = 0  # pain before sessions and /pain scores of the week
    pain_n: int = 0
    prev_pain_sum: int = 0
    prev_pain_n: int = 0
    pain_max: int | None = None  # any score of the week, before, after or /pain
    change_sum: int = 0  # pain after - pain before, completed sessions
    change_n: int = 0
    rises: int = 0  # sessions flagged at check-in (or by their next morning)
    next_day: dict[str, int] = field(default_factory=dict)
    barriers: dict[str, int] = field(default_factory=dict)
    inactive: bool = False
    # For the flags (feedback.py): latest instants, the usual level, the weeks before.
    rise_last: datetime | None = None
    worse_after_flagged: int = 0
    worse_last: datetime | None = None
    high_before_days: int = 0
    high_before_last: datetime | None = None
    worrying_barrier_last: datetime | None = None
    usual_scores: dict[int, int] = field(default_factory=dict)  # score -> count, 4 weeks before
    rest_last: dict[int, datetime] = field(default_factory=dict)  # score -> latest in the week
    recent_planned: int = 0  # prompt check-ins of this week and the one before
    recent_done: int = 0
    # Issue 14: the latest time away (come-back offer to return) open or ended in the week.
    away: habit.Absence | None = None
    earlier_planned: int = 0  # ... and of the two weeks before those
    earlier_done: int = 0
    # When the patient gave consent (joined the bot): a week that ended before it is not theirs.
    joined: datetime | None = None
    # Issue 17: an open programme proposal ("up" / "down") waiting for a decision, now.
    proposal: str | None = None

    @property
    def pain_avg(self) -> float | None:
        """The week's average resting pain, as /progress computes it (at least 3 scores)."""
        return feedback.average_of(self.pain_sum, self.pain_n)

    @property
    def prev_pain_avg(self) -> float | None:
        return feedback.average_of(self.prev_pain_sum, self.prev_pain_n)

    @property
    def avg_change(self) -> float | None:
        """This week's average minus last week's; None unless both weeks have one."""
        now, before = self.pain_avg, self.prev_pain_avg
        return None if now is None or before is None else now - before

    @property
    def usual(self) -> float | None:
        """The patient's usual level: median resting score of the four weeks before."""
        scores = [score for score, n in self.usual_scores.items() for _ in range(n)]
        return feedback.usual_level(scores)

    @property
    def session_change(self) -> float | None:
        return self.change_sum / self.change_n if self.change_n else None

    @functools.cached_property
    def flag_details(self) -> list[feedback.Flag]:
        """The week's flags as structured data (kind, date, numbers), by the clinical rules.
        Computed once, when the statistics are complete (sorting and rendering ask often)."""
        scores = [(_day(at), score) for score, at in self.rest_last.items()]
        found = (
            feedback.high_pain_flag(scores, self.usual),
            feedback.average_up_counted(self.prev_pain_avg, self.pain_avg),
            feedback.too_much_flag(self.rises, _day(self.rise_last)),
            feedback.worse_mornings_counted(
                self.next_day.get("worse", 0), self.worse_after_flagged, _day(self.worse_last)
            ),
            feedback.high_before_counted(self.high_before_days, _day(self.high_before_last)),
            feedback.adherence_falling_flag(
                self.earlier_done, self.earlier_planned, self.recent_done, self.recent_planned
            ),
            feedback.barriers_counted(self.barriers, _day(self.worrying_barrier_last)),
            feedback.inactive_flag(self.inactive),
        )
        return [flag for flag in found if flag is not None]

    @property
    def flags(self) -> list[Flag]:
        return [flag.kind for flag in self.flag_details]


def _day(at: datetime | str | None) -> date | None:
    """The UTC date of an instant read back from either database."""
    if at is None:
        return None
    return _as_datetime(at).astimezone(UTC).date()


@dataclass(frozen=True)
class Digest:
    therapist_id: int
    period: Period
    patients: list[PatientWeek]  # flagged first, then by name

    @property
    def flagged(self) -> int:
        return sum(1 for p in self.patients if p.flags)


def _count_if(condition: Any) -> Any:
    return func.sum(case((condition, 1), else_=0))


# Patients per statistics query. An explicit id list (not a subquery of the links) lets
# both databases walk ix_checkins_user_created patient by patient: with a subquery,
# PostgreSQL misjudged the row count and scanned every check-in ever recorded, per query.
PATIENTS_PER_QUERY = 1000


async def compute(
    session: AsyncSession,
    therapist_ids: list[int],
    period: Period,
    *,
    link_ids: list[int] | None = None,
) -> dict[int, Digest]:
    """These therapists' digests for a period: four queries per 1,000 patients, not each.

    ``link_ids`` narrows it to some of their links (one patient's page); still active ones only.
    """
    query = (
        select(
            TherapistLink.id,
            TherapistLink.therapist_id,
            TherapistLink.patient_id,
            User.display_name,
            User.consent_at,
        )
        .join(User, User.id == TherapistLink.patient_id)
        .where(TherapistLink.therapist_id.in_(therapist_ids), *ACTIVE_LINK)
    )
    if link_ids is not None:
        query = query.where(TherapistLink.id.in_(link_ids))
    links = (await session.execute(query)).all()
    stats = {row.patient_id: PatientWeek(row.patient_id, joined=row.consent_at) for row in links}
    ids = sorted(stats)
    for start in range(0, len(ids), PATIENTS_PER_QUERY):
        chunk = ids[start : start + PATIENTS_PER_QUERY]
        await _checkin_stats(session, chunk, period, stats)
        await _score_stats(session, chunk, period, stats)
        await _resting_levels(session, chunk, period, stats)
        await _inactivity(session, chunk, period, stats)
        for patient_id, absences in (
            await habit.absence_summary(session, chunk, period.start)
        ).items():
            if absences[-1].start < period.end:
                stats[patient_id].away = absences[-1]
        for patient_id, direction in (await programmes.open_proposals(session, chunk)).items():
            stats[patient_id].proposal = direction
    by_therapist: dict[int, list[PatientWeek]] = defaultdict(list)
    for row in links:
        by_therapist[row.therapist_id].append(
            replace(stats[row.patient_id], link_id=row.id, name=row.display_name)
        )
    return {
        tid: Digest(tid, period, sorted(by_therapist[tid], key=_order)) for tid in therapist_ids
    }


def _order(p: PatientWeek) -> tuple[bool, str, int]:
    return (not p.flags, (p.name or "").casefold(), p.link_id)


async def _checkin_stats(
    session: AsyncSession, patients: list[int], period: Period, stats: dict[int, PatientWeek]
) -> None:
    # A prompt belongs to the week of its slot, a /log session to the week it was recorded.
    when = func.coalesce(CheckIn.due_at, CheckIn.created_at)
    week = and_(when >= period.start, when < period.end)
    prev = and_(when >= period.prev_start, when < period.start)
    completed = CheckIn.status == Status.COMPLETED
    both = and_(completed, CheckIn.pain_before.is_not(None), CheckIn.pain_after.is_not(None))
    recent = and_(when >= period.prev_start, when < period.end)
    earlier = and_(when >= period.start - ADHERENCE_LOOKBACK, when < period.prev_start)
    prompt = CheckIn.kind == "prompt"
    worse = and_(week, CheckIn.next_day_response == "worse")
    high_before = and_(week, CheckIn.pain_before >= feedback.HIGH_PAIN)
    worrying = and_(week, CheckIn.barrier.in_(feedback.WORRYING_BARRIERS))
    dialect = session.get_bind().dialect.name
    columns = [
        _count_if(and_(week, CheckIn.kind == "prompt")),
        _count_if(and_(week, CheckIn.kind == "prompt", completed)),
        _count_if(and_(week, CheckIn.kind == "log", completed)),
        func.sum(case((week, CheckIn.pain_before))),
        func.count(case((week, CheckIn.pain_before))),
        func.sum(case((prev, CheckIn.pain_before))),
        func.count(case((prev, CheckIn.pain_before))),
        func.max(case((week, CheckIn.pain_before))),
        func.max(case((week, CheckIn.pain_after))),
        func.sum(case((and_(week, both), CheckIn.pain_after - CheckIn.pain_before))),
        _count_if(and_(week, both)),
        _count_if(and_(week, CheckIn.flagged)),
        *(_count_if(and_(week, CheckIn.next_day_response == a)) for a in NEXT_DAY_ANSWERS),
        *(_count_if(and_(week, CheckIn.barrier == b)) for b in BARRIERS),
        # For the flags (bot/services/feedback.py):
        func.max(case((and_(week, CheckIn.flagged), when))),
        _count_if(and_(worse, CheckIn.flagged)),
        func.max(case((worse, when))),
        func.count(func.distinct(case((high_before, _utc_day(when, dialect))))),
        func.max(case((high_before, when))),
        func.max(case((worrying, when))),
        _count_if(and_(recent, prompt)),
        _count_if(and_(recent, prompt, completed)),
        _count_if(and_(earlier, prompt)),
        _count_if(and_(earlier, prompt, completed)),
    ]
    rows = await session.execute(
        select(CheckIn.user_id, *columns)
        # created_at is never before the slot: a bound ix_checkins_user_created can use. The
        # weeks themselves are in the CASEs (a range on coalesce(...) would be misestimated).
        .where(
            CheckIn.user_id.in_(patients),
            CheckIn.created_at >= period.start - ADHERENCE_LOOKBACK,
        )
        .group_by(CheckIn.user_id)
    )
    n_days = len(NEXT_DAY_ANSWERS)
    n_extra = 10  # the flag columns at the end
    for user_id, *v in rows:
        v, extra = v[:-n_extra], v[-n_extra:]
        s = stats[user_id]
        s.planned, s.done, s.logged = v[0] or 0, v[1] or 0, v[2] or 0
        s.pain_sum, s.pain_n = v[3] or 0, v[4] or 0
        s.prev_pain_sum, s.prev_pain_n = v[5] or 0, v[6] or 0
        s.pain_max = _max(v[7], v[8])
        s.change_sum, s.change_n, s.rises = v[9] or 0, v[10] or 0, v[11] or 0
        s.next_day = dict(zip(NEXT_DAY_ANSWERS, (x or 0 for x in v[12 : 12 + n_days]), strict=True))
        s.barriers = dict(zip(BARRIERS, (x or 0 for x in v[12 + n_days :]), strict=True))
        s.rise_last, s.worse_after_flagged, s.worse_last = extra[0], extra[1] or 0, extra[2]
        s.high_before_days, s.high_before_last = extra[3] or 0, extra[4]
        s.worrying_barrier_last = extra[5]
        s.recent_planned, s.recent_done = extra[6] or 0, extra[7] or 0
        s.earlier_planned, s.earlier_done = extra[8] or 0, extra[9] or 0


async def _resting_levels(
    session: AsyncSession, patients: list[int], period: Period, stats: dict[int, PatientWeek]
) -> None:
    """Per patient and resting score (pain before a session, /pain): how often it came in the
    four weeks before the week (the usual level), and when it last came in the week. At most
    11 rows per patient and table, whatever the number of scores."""
    since = period.start - USUAL_LOOKBACK
    when = func.coalesce(CheckIn.due_at, CheckIn.created_at)
    sources = (
        (
            CheckIn.pain_before,
            when,
            CheckIn.user_id,
            (CheckIn.created_at >= since, CheckIn.pain_before.is_not(None)),
        ),
        (
            PainScore.score,
            PainScore.recorded_at,
            PainScore.user_id,
            (PainScore.recorded_at >= since,),
        ),
    )
    for score, at, user_id, bounds in sources:
        before = and_(at >= since, at < period.start)
        week = and_(at >= period.start, at < period.end)
        rows = await session.execute(
            select(user_id, score, _count_if(before), func.max(case((week, at))))
            .where(user_id.in_(patients), *bounds)
            .group_by(user_id, score)
        )
        for uid, value, n, last in rows:
            s = stats[uid]
            if n:
                s.usual_scores[value] = s.usual_scores.get(value, 0) + n
            if last is not None:
                previous = s.rest_last.get(value)
                last = _as_datetime(last)
                s.rest_last[value] = last if previous is None else max(previous, last)


def _as_datetime(value: datetime | str) -> datetime:
    at = datetime.fromisoformat(value) if isinstance(value, str) else value
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _max(*values: int | None) -> int | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


async def _score_stats(
    session: AsyncSession, patients: list[int], period: Period, stats: dict[int, PatientWeek]
) -> None:
    at = PainScore.recorded_at
    week = and_(at >= period.start, at < period.end)
    prev = and_(at >= period.prev_start, at < period.start)
    rows = await session.execute(
        select(
            PainScore.user_id,
            func.sum(case((week, PainScore.score))),
            func.count(case((week, PainScore.score))),
            func.sum(case((prev, PainScore.score))),
            func.count(case((prev, PainScore.score))),
            func.max(case((week, PainScore.score))),
        )
        .where(PainScore.user_id.in_(patients), at >= period.prev_start, at < period.end)
        .group_by(PainScore.user_id)
    )
    for user_id, total, n, prev_total, prev_n, highest in rows:
        s = stats[user_id]
        s.pain_sum += total or 0
        s.pain_n += n or 0
        s.prev_pain_sum += prev_total or 0
        s.prev_pain_n += prev_n or 0
        s.pain_max = _max(s.pain_max, highest)


def _utc_day(column: Any, dialect: str) -> Any:
    """The UTC calendar date of a timestamp column (SQLite stores naive UTC text)."""
    if dialect == "postgresql":
        return cast(func.timezone("UTC", column), Date)
    return func.date(column)


async def _inactivity(
    session: AsyncSession, patients: list[int], period: Period, stats: dict[int, PatientWeek]
) -> None:
    """No completed session since the start of the 4th-newest scheduled day (UTC dates)."""
    since = period.until - INACTIVE_LOOKBACK
    dialect = session.get_bind().dialect.name
    days = (
        select(CheckIn.user_id, _utc_day(CheckIn.due_at, dialect).label("day"))
        .where(
            CheckIn.user_id.in_(patients),
            CheckIn.kind == "prompt",
            CheckIn.created_at >= since,
            CheckIn.due_at >= since,
            CheckIn.due_at < period.until,
        )
        .distinct()
        .subquery()
    )
    rank = func.row_number().over(partition_by=days.c.user_id, order_by=days.c.day.desc())
    ranked = select(days.c.user_id, days.c.day, rank.label("n")).subquery()
    fourth = (
        select(ranked.c.user_id, func.min(ranked.c.day))
        .where(ranked.c.n <= INACTIVE_DAYS)
        .group_by(ranked.c.user_id)
        .having(func.count() == INACTIVE_DAYS)
    )
    oldest_day = {user_id: _as_date(day) for user_id, day in await session.execute(fourth)}
    if not oldest_day:
        return
    last_done = dict(
        (
            await session.execute(
                select(CheckIn.user_id, func.max(CheckIn.completed_at))
                .where(
                    CheckIn.user_id.in_(patients),
                    CheckIn.status == Status.COMPLETED,
                    CheckIn.created_at >= since,
                )
                .group_by(CheckIn.user_id)
            )
        ).all()
    )
    for user_id, day in oldest_day.items():
        done_at = last_done.get(user_id)
        stats[user_id].inactive = done_at is None or done_at < datetime.combine(day, time(0), UTC)


def _as_date(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)


# ---------------------------------------------------------------------------------------------
# Claiming the week's digest
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DigestClaim:
    digest_id: int
    therapist_id: int
    telegram_id: int
    language: str
    timezone: str
    period: Period


_THERAPIST_FIELDS = (
    Therapist.id,
    Therapist.digest_weekday,
    Therapist.digest_time,
    User.telegram_id,
    User.language,
    User.timezone,
)


async def claim_due(
    session: AsyncSession,
    now: datetime,
    *,
    limit: int = 100,
    lease: timedelta = DIGEST_LEASE,
    grace: timedelta = DIGEST_GRACE,
) -> list[DigestClaim]:
    """The digests to send now, each claimed once for its therapist and week."""
    await _schedule_new(session, now, limit)
    claims = await _claim_slots(session, now, limit, grace)
    return claims + await _reclaim_unsent(session, now, limit, lease, grace)


async def _schedule_new(session: AsyncSession, now: datetime, limit: int) -> None:
    """New therapists (granted from the command line) get their first digest instant."""
    rows = (
        await session.execute(
            select(*_THERAPIST_FIELDS)
            .join(User, User.id == Therapist.user_id)
            .where(Therapist.next_digest_at.is_(None))
            .limit(limit)
            .with_for_update(skip_locked=True, of=Therapist)
        )
    ).all()
    for row in rows:
        await _advance(session, row.id, next_slot(*_slot_args(row), now))


def _slot_args(row: Any) -> tuple[int, str, str]:
    return row.digest_weekday, row.digest_time, valid_zone(row.timezone)


async def _advance(session: AsyncSession, therapist_id: int, when: datetime) -> None:
    await session.execute(
        update(Therapist)
        .where(Therapist.id == therapist_id)
        .values(next_digest_at=when)
        .execution_options(synchronize_session=False)
    )


async def _claim_slots(
    session: AsyncSession, now: datetime, limit: int, grace: timedelta
) -> list[DigestClaim]:
    rows = (
        await session.execute(
            select(*_THERAPIST_FIELDS)
            .join(User, User.id == Therapist.user_id)
            .where(Therapist.next_digest_at <= now)
            .order_by(Therapist.next_digest_at)
            .limit(limit)
            .with_for_update(skip_locked=True, of=Therapist)
        )
    ).all()
    wanted: dict[int, tuple[Any, Period]] = {}
    for row in rows:
        weekday, at, tz = _slot_args(row)
        # Recomputed in the zone the therapist has now, so a changed zone takes effect.
        slot = latest_slot(weekday, at, tz, now)
        await _advance(session, row.id, next_slot(weekday, at, tz, now))
        if now - slot > grace:
            log.info("digest of therapist %s for %s skipped: too late", row.id, slot)
            continue
        wanted[row.id] = (row, week_before(slot, tz))
    if not wanted:
        return []
    inserted = (
        await session.execute(
            _insert_ignoring_duplicates(session),
            [
                {"therapist_id": tid, "iso_week": period.week, "claimed_at": now}
                for tid, (_, period) in wanted.items()
            ],
        )
    ).all()
    # A row that already existed was sent (or is being sent) by someone else: not ours.
    return [
        _claim(digest_id, wanted[tid][0], wanted[tid][1])
        for digest_id, tid in sorted(inserted, key=lambda r: r[0])
    ]


def _claim(digest_id: int, row: Any, period: Period) -> DigestClaim:
    return DigestClaim(
        digest_id, row.id, row.telegram_id, row.language, valid_zone(row.timezone), period
    )


def _insert_ignoring_duplicates(session: AsyncSession) -> Any:
    """INSERT INTO digests_sent ... ON CONFLICT (therapist_id, iso_week) DO NOTHING RETURNING."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table = DigestSent.__table__
    return (
        insert(table)
        .on_conflict_do_nothing(index_elements=["therapist_id", "iso_week"])
        .returning(table.c.id, table.c.therapist_id)
    )


async def _reclaim_unsent(
    session: AsyncSession, now: datetime, limit: int, lease: timedelta, grace: timedelta
) -> list[DigestClaim]:
    rows = (
        await session.execute(
            select(DigestSent.id.label("digest_id"), DigestSent.iso_week, *_THERAPIST_FIELDS)
            .join(Therapist, Therapist.id == DigestSent.therapist_id)
            .join(User, User.id == Therapist.user_id)
            .where(
                DigestSent.sent_at.is_(None),
                DigestSent.detail.is_(None),
                DigestSent.claimed_at < now - lease,
            )
            .order_by(DigestSent.id)
            .limit(limit)
            .with_for_update(skip_locked=True, of=DigestSent)
        )
    ).all()
    claims = []
    for row in rows:
        weekday, at, tz = _slot_args(row)
        slot = latest_slot(weekday, at, tz, now)
        period = week_before(slot, tz)
        if period.week != row.iso_week or now - slot > grace:
            await finish(session, row.digest_id, now, "expired", sent=False)
            continue
        await session.execute(
            update(DigestSent)
            .where(DigestSent.id == row.digest_id)
            .values(claimed_at=now)
            .execution_options(synchronize_session=False)
        )
        claims.append(_claim(row.digest_id, row, period))
    return claims


async def finish(
    session: AsyncSession, digest_id: int, now: datetime, detail: str, *, sent: bool
) -> None:
    """Record how a claimed digest ended (sent, or given up); it is not tried again."""
    await session.execute(
        update(DigestSent)
        .where(DigestSent.id == digest_id)
        .values(sent_at=now if sent else None, detail=detail[:500])
        .execution_options(synchronize_session=False)
    )
