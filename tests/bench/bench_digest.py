"""Benchmark the weekly digests (ARCHITECTURE.md bar B6: 1,000 therapists x 20 patients, a
week of check-ins, all digests computed in <= 30 s).

Not collected by pytest (the file name does not start with ``test_``). Run from the repo root:

    python tests/bench/bench_digest.py
    python tests/bench/bench_digest.py \\
        --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/bench --reset

Builds N therapists in five time zones, each with M patients who confirmed the link (plus
one revoked link each, which must not count), and two weeks of daily check-ins per patient
(the digest's week and the week before, for the change; ``--history-weeks`` adds older
ones, as a database in service has), with pain scores, skips with barriers, flagged rises
and next-day answers. Then measures, on the real code path:

- the claim: ``digest.claim_due`` in batches of 100, as the weekly job runs it (insert the
  week's DigestSent rows, advance next_digest_at), every therapist due at once;
- the statistics: ``digest.compute`` for every claimed digest, in the job's batches of 100
  therapists, and once more as a single call for all of them;
- the text: ``digest_view.render`` of every digest (the messages, split under 4096);
- the chart: ``digest_view.chart`` for ``--charts`` digests (CPU-bound; the job renders it in
  a worker thread while the rate limiter spaces the sends, 2+ messages per therapist at 30/s).

With a PostgreSQL URL the database must be empty, or pass ``--reset`` to drop and recreate
its ``public`` schema (everything in it is lost).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_claim, beside this file

from bench_claim import prepare  # noqa: E402
from sqlalchemy import func, insert, select, text  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncEngine  # noqa: E402

from bot.db.migrate import upgrade  # noqa: E402
from bot.db.models import (  # noqa: E402
    CheckIn,
    DigestSent,
    PainScore,
    Therapist,
    TherapistLink,
    User,
)
from bot.db.session import create_engine, make_session_factory  # noqa: E402
from bot.handlers import digest_view  # noqa: E402
from bot.i18n import load_locales  # noqa: E402
from bot.services import digest  # noqa: E402
from bot.services.checkins import BARRIERS  # noqa: E402

ZONES = ["Europe/Copenhagen", "Europe/Madrid", "America/New_York", "Asia/Kolkata", "UTC"]
LANGUAGES = ["da", "es", "en", "en", "en"]
CHUNK = 5_000
# Monday 30 November 2026 at 08:00 local: the digest covers 23-29 November.
MONDAY = datetime(2026, 11, 30, tzinfo=UTC)


def s(seconds: float) -> str:
    return f"{seconds:7.2f} s"


async def insert_chunks(conn, table, rows: list[dict]) -> None:
    for start in range(0, len(rows), CHUNK):
        await conn.execute(insert(table), rows[start : start + CHUNK])


async def populate(engine: AsyncEngine, therapists: int, per: int, history: int) -> int:
    """Therapists, their patients, links, check-ins for the digest's week, the week before and
    ``history`` older weeks; returns the number of check-in rows."""
    rng = random.Random(11)
    long_ago = MONDAY - timedelta(days=90)
    users, patients = [], []
    for t in range(1, therapists + 1):
        users.append(
            {
                "id": t,
                "telegram_id": 1_000_000 + t,
                "language": LANGUAGES[t % 5],
                "timezone": ZONES[t % 5],
                "active": True,
                "created_at": long_ago,
                "updated_at": long_ago,
            }
        )
    next_id = therapists + 1
    links = []
    for t in range(1, therapists + 1):
        for k in range(per + 1):
            pid = next_id
            next_id += 1
            patients.append(pid)
            users.append(
                {
                    "id": pid,
                    "telegram_id": 5_000_000 + pid,
                    "language": LANGUAGES[t % 5],
                    "timezone": ZONES[pid % 5],
                    "consent_at": long_ago,
                    "setup_done_at": long_ago,
                    "display_name": f"Patient {pid}",
                    "active": True,
                    "created_at": long_ago,
                    "updated_at": long_ago,
                }
            )
            revoked = k == per  # one revoked link per therapist: never in the digest
            links.append(
                {
                    "therapist_id": t,
                    "patient_id": pid,
                    "requested_at": long_ago,
                    "consented_at": long_ago,
                    "revoked_at": long_ago + timedelta(days=1) if revoked else None,
                }
            )
    therapist_rows = [
        {"id": t, "user_id": t, "display_name": f"T{t}", "granted_at": long_ago,
         "digest_weekday": 0, "digest_time": "08:00",
         "next_digest_at": digest.next_slot(0, "08:00", ZONES[t % 5], MONDAY - timedelta(days=1))}
        for t in range(1, therapists + 1)
    ]  # fmt: skip
    checkins, scores = [], []
    for pid in patients:
        habit = rng.random()  # how regularly this patient exercises
        level = rng.randint(2, 7)
        for d in range(-7 * (2 + history), 0):
            slot = MONDAY + timedelta(days=d, hours=7, minutes=rng.randint(0, 120))
            roll = rng.random()
            row = {
                "user_id": pid,
                "kind": "prompt",
                "due_at": slot,
                "created_at": slot,
                "updated_at": slot,
                "send_attempts": 1,
                "flagged": False,
                # executemany needs the same keys in every row
                "status": "missed",
                "pain_before": None,
                "pain_after": None,
                "completed_at": None,
                "next_day_response": None,
                "barrier": None,
            }
            if roll < habit:
                before = min(10, max(0, level + rng.randint(-2, 2)))
                after = min(10, max(0, before + rng.choice((-3, -2, -1, -1, 0, 1, 3))))
                row |= {
                    "status": "completed",
                    "pain_before": before,
                    "pain_after": after,
                    "flagged": after - before >= 3 or after >= 8,
                    "completed_at": slot + timedelta(minutes=30),
                    "next_day_response": rng.choice((None, "better", "same", "worse")),
                }
            elif roll < habit + 0.15:
                row |= {"status": "skipped", "barrier": rng.choice(BARRIERS)}
            checkins.append(row)
        for d in (-12, -4):
            when = MONDAY + timedelta(days=d, hours=12)
            scores.append({"user_id": pid, "score": rng.randint(1, 9), "recorded_at": when})
    async with engine.begin() as conn:
        await insert_chunks(conn, User.__table__, users)
        await insert_chunks(conn, Therapist.__table__, therapist_rows)
        await insert_chunks(conn, TherapistLink.__table__, links)
        await insert_chunks(conn, CheckIn.__table__, checkins)
        await insert_chunks(conn, PainScore.__table__, scores)
        if engine.dialect.name == "postgresql":
            for table in ("users", "therapists"):
                await conn.exec_driver_sql(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), {next_id})"
                )
    # As a database in service would be: statistics gathered (and, on PostgreSQL, vacuumed).
    if engine.dialect.name == "postgresql":
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("VACUUM ANALYZE"))
    else:
        async with engine.begin() as conn:
            await conn.execute(text("ANALYZE"))
    return len(checkins)


async def run(args: argparse.Namespace) -> None:
    url = args.database_url
    tmp = None
    if url is None:
        tmp = tempfile.TemporaryDirectory()
        url = f"sqlite+aiosqlite:///{tmp.name}/bench.sqlite3"
    engine = create_engine(url)
    sessions = make_session_factory(engine)
    load_locales()
    await prepare(engine, args.reset)
    t0 = time.perf_counter()
    rows = await populate(engine, args.therapists, args.patients, args.history_weeks)
    print(
        f"{engine.dialect.name}: {args.therapists} therapists x {args.patients} patients, "
        f"{rows} check-ins ({2 + args.history_weeks} weeks) built in "
        f"{s(time.perf_counter() - t0)}"
    )
    now = MONDAY + timedelta(hours=14)  # every zone's Monday 08:00 has passed

    # 1. The claim, as the weekly job runs it.
    claims: list[digest.DigestClaim] = []
    t0 = time.perf_counter()
    while True:
        async with sessions() as session, session.begin():
            batch = await digest.claim_due(session, now, limit=100)
        if not batch:
            break
        claims += batch
    t_claim = time.perf_counter() - t0

    # 2. The statistics, in the job's batches (grouped by period, 100 therapists a batch).
    t0 = time.perf_counter()
    digests: dict[int, digest.Digest] = {}
    batch_times = []
    for start in range(0, len(claims), 100):
        group = claims[start : start + 100]
        by_period = defaultdict(list)
        for claim in group:
            by_period[claim.period].append(claim)
        b0 = time.perf_counter()
        async with sessions() as session:
            for period, members in by_period.items():
                result = await digest.compute(session, [c.therapist_id for c in members], period)
                digests.update((c.therapist_id, result[c.therapist_id]) for c in members)
        batch_times.append(time.perf_counter() - b0)
    t_compute = time.perf_counter() - t0

    # The same in one call per period (all therapists of a zone at once).
    t0 = time.perf_counter()
    by_period_all = defaultdict(list)
    for claim in claims:
        by_period_all[claim.period].append(claim.therapist_id)
    async with sessions() as session:
        for period, ids in by_period_all.items():
            await digest.compute(session, ids, period)
    t_compute_once = time.perf_counter() - t0

    # 3. The text.
    t0 = time.perf_counter()
    messages = 0
    longest = 0
    for claim in claims:
        texts = digest_view.render(digests[claim.therapist_id], claim.timezone, claim.language)
        messages += len(texts)
        longest = max(longest, *(len(x) for x in texts))
    t_text = time.perf_counter() - t0

    # 4. The charts (CPU-bound, rendered in a worker thread by the job).
    chart_times = []
    for claim in claims[: args.charts]:
        c0 = time.perf_counter()
        digest_view.chart(digests[claim.therapist_id], claim.timezone, claim.language)
        chart_times.append(time.perf_counter() - c0)

    patients_seen = sum(len(d.patients) for d in digests.values())
    flagged = sum(d.flagged for d in digests.values())
    async with sessions() as session:
        claimed_rows = await session.scalar(select(func.count()).select_from(DigestSent))
    print(f"digests claimed:           {len(claims)} ({claimed_rows} DigestSent rows)")
    print(f"patients in digests:       {patients_seen} ({flagged} flagged); revoked links left out")
    print(f"claim (batches of 100):    {s(t_claim)}")
    print(
        f"statistics, job batches:   {s(t_compute)}  "
        f"(per batch of 100: median {statistics.median(batch_times) * 1000:.0f} ms, "
        f"max {max(batch_times) * 1000:.0f} ms)"
    )
    print(f"statistics, one call/zone: {s(t_compute_once)}")
    print(f"text of every digest:      {s(t_text)}  ({messages} messages, longest {longest} chars)")
    print(f"claim + statistics + text: {s(t_claim + t_compute + t_text)}  (bar B6: <= 30 s)")
    if chart_times:
        mean = statistics.mean(chart_times)
        print(
            f"chart: {len(chart_times)} rendered, mean {mean * 1000:.0f} ms each "
            f"(all {len(claims)}: {mean * len(claims):.0f} s of CPU, in worker threads, "
            f"overlapping the rate-limited sends: {(messages + len(claims)) / 30:.0f} s of "
            f"{messages} texts + {len(claims)} photos at 30 msg/s)"
        )
    await engine.dispose()
    if tmp is not None:
        tmp.cleanup()


async def measure(
    engine: AsyncEngine, *, therapists: int, patients_each: int, days: int = 7
) -> float:
    """Seconds to claim, compute and write every weekly digest of a fresh data set (bar B6).

    Used by ``python -m bot.bench``; ``days`` is the week of check-ins the bar asks for (the
    data set always has the digest's week and the week before it, for the change).
    """
    if days != 7:
        raise ValueError("the data set is built per week")
    load_locales()
    await upgrade(engine)
    await populate(engine, therapists, patients_each, 0)
    sessions = make_session_factory(engine)
    now = MONDAY + timedelta(hours=14)  # every zone's Monday 08:00 has passed
    t0 = time.perf_counter()
    claims: list[digest.DigestClaim] = []
    while batch := await _claim_batch(sessions, now):
        claims += batch
    for start in range(0, len(claims), 100):
        by_period = defaultdict(list)
        for claim in claims[start : start + 100]:
            by_period[claim.period].append(claim)
        async with sessions() as session:
            for period, members in by_period.items():
                result = await digest.compute(session, [c.therapist_id for c in members], period)
                for c in members:
                    digest_view.render(result[c.therapist_id], c.timezone, c.language)
    return time.perf_counter() - t0


async def _claim_batch(sessions, now) -> list:
    async with sessions() as session, session.begin():
        return await digest.claim_due(session, now, limit=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--therapists", type=int, default=1000)
    parser.add_argument("--patients", type=int, default=20, help="confirmed patients each")
    parser.add_argument("--charts", type=int, default=50, help="charts to render and time")
    parser.add_argument(
        "--history-weeks", type=int, default=0, help="older weeks of check-ins, as in service"
    )
    parser.add_argument("--database-url", help="default: a temporary SQLite file")
    parser.add_argument("--reset", action="store_true", help="wipe a PostgreSQL database first")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
