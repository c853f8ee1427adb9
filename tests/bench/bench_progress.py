"""Benchmark /progress and /export for a patient with a year of daily data.

Not collected by pytest (the file name does not start with ``test_``). Run from the repo root:

    python tests/bench/bench_progress.py
    python tests/bench/bench_progress.py --others 1000 \\
        --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/bench --reset

Builds one patient with 365 days of 08:30 prompts (about 85% completed with pain before and
after, the rest missed or skipped), a /log session every tenth day and a /pain score every
day, next to ``--others`` patients with the same history (so the per-patient queries run on a
table of realistic size), then times, as medians over ``--runs`` runs:

- ``compute_progress`` (the database reads and the statistics), each in a fresh session;
- the /progress text; the chart (matplotlib Agg, PNG bytes);
- /export: ``export.collect`` (all rows + CSV), the clinic report's data and its PDF.

With a PostgreSQL URL the database must be empty, or pass ``--reset`` to drop and recreate
its ``public`` schema (everything in it is lost).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_claim, beside this file

from bench_claim import prepare  # noqa: E402
from sqlalchemy import insert, select, text  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncEngine  # noqa: E402

from bot import report  # noqa: E402
from bot.charts import render_progress_chart  # noqa: E402
from bot.db.models import CheckIn, PainScore, Schedule, User  # noqa: E402
from bot.db.session import create_engine, make_session_factory  # noqa: E402
from bot.handlers.progress import summary_lines  # noqa: E402
from bot.i18n import load_locales  # noqa: E402
from bot.services import export, workspace  # noqa: E402
from bot.services.progress import compute_progress  # noqa: E402
from bot.services.schedule_rules import ALL_DAYS, next_occurrence  # noqa: E402

TZ = "Europe/Copenhagen"
DAYS = 365
CHUNK = 5_000


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f} ms"


def history(user_id: int, now: datetime) -> tuple[list[dict], list[dict]]:
    """A year of daily prompts, a /log every tenth day, and a /pain score every day."""
    checkins, scores = [], []
    slot = next_occurrence("08:30", ALL_DAYS, TZ, now - timedelta(days=DAYS))
    day = 0
    while slot <= now:
        # executemany needs the same keys in every row
        base = {
            **dict.fromkeys(("due_at", "pain_before", "pain_after", "completed_at", "barrier")),
            "user_id": user_id,
            "flagged": False,
            "created_at": slot,
            "updated_at": slot,
        }
        before = 3 + (day * 7) % 5
        if day % 20 == 7:
            checkins.append({**base, "kind": "prompt", "status": "missed", "due_at": slot})
        elif day % 13 == 4:
            checkins.append(
                {**base, "kind": "prompt", "status": "skipped", "due_at": slot, "barrier": "time"}
            )
        else:
            checkins.append(
                {
                    **base,
                    "kind": "prompt",
                    "status": "completed",
                    "due_at": slot,
                    "pain_before": before,
                    "pain_after": max(0, before - day % 3),
                    "completed_at": slot + timedelta(minutes=30),
                }
            )
        if day % 10 == 0:
            log_at = slot + timedelta(hours=9)
            checkins.append(
                {
                    **base,
                    "kind": "log",
                    "status": "completed",
                    "due_at": None,
                    "created_at": log_at,
                    "pain_before": before,
                    "pain_after": before - 1,
                    "completed_at": log_at + timedelta(minutes=20),
                }
            )
        scores.append(
            {"user_id": user_id, "score": day % 9, "recorded_at": slot + timedelta(hours=4)}
        )
        slot = next_occurrence("08:30", ALL_DAYS, TZ, slot)
        day += 1
    return checkins, scores


async def populate(engine: AsyncEngine, patients: int, now: datetime) -> tuple[int, int]:
    long_ago = now - timedelta(days=DAYS + 1)
    total_checkins = 0
    async with engine.begin() as conn:
        await conn.execute(
            insert(User.__table__),
            [
                {
                    "id": i,
                    "telegram_id": 50_000_000 + i,
                    "language": "da",
                    "timezone": TZ,
                    "consent_at": long_ago,
                    "consent_version": "1",
                    "setup_done_at": long_ago,
                    "active": True,
                    "created_at": long_ago,
                    "updated_at": long_ago,
                }
                for i in range(1, patients + 1)
            ],
        )
        await conn.execute(
            insert(Schedule.__table__),
            [
                {
                    "user_id": i,
                    "local_time": "08:30",
                    "days": ALL_DAYS,
                    "next_due_at": next_occurrence("08:30", ALL_DAYS, TZ, now),
                    "created_at": long_ago,
                }
                for i in range(1, patients + 1)
            ],
        )
        batch_c: list[dict] = []
        batch_s: list[dict] = []
        for i in range(1, patients + 1):
            checkins, scores = history(i, now)
            total_checkins += len(checkins)
            batch_c += checkins
            batch_s += scores
            if len(batch_c) >= CHUNK or i == patients:
                await conn.execute(insert(CheckIn.__table__), batch_c)
                await conn.execute(insert(PainScore.__table__), batch_s)
                batch_c, batch_s = [], []
        if engine.dialect.name == "postgresql":
            await conn.exec_driver_sql(
                f"SELECT setval(pg_get_serial_sequence('users', 'id'), {patients})"
            )
    if engine.dialect.name == "postgresql":
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("VACUUM ANALYZE"))
    else:
        async with engine.begin() as conn:
            await conn.execute(text("ANALYZE"))
    return total_checkins, total_checkins // patients


async def timed(runs: int, fn) -> tuple[float, object]:
    samples, result = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        result = await fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples), result


def timed_sync(runs: int, fn) -> float:
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


async def run(args: argparse.Namespace) -> None:
    load_locales(strict=True)
    tmp = None
    url = args.database_url
    if url is None:
        tmp = tempfile.TemporaryDirectory()
        url = f"sqlite+aiosqlite:///{tmp.name}/bench.sqlite3"
    engine = create_engine(url)
    sessions = make_session_factory(engine)
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    try:
        await prepare(engine, args.reset)
        t0 = time.perf_counter()
        total, per_patient = await populate(engine, args.others + 1, now)
        print(
            f"{engine.dialect.name}: {args.others + 1} patients, {total:,} check-ins "
            f"({per_patient} for the measured patient), built in {time.perf_counter() - t0:.1f} s"
        )
        async with sessions() as s:
            user = await s.scalar(select(User).where(User.id == 1))

        async def progress():
            async with sessions() as s:
                return await compute_progress(s, user, now)

        t_progress, p = await timed(args.runs, progress)
        t_text = timed_sync(args.runs, lambda: summary_lines(p, "da"))
        t_chart, png = await timed(
            args.runs, lambda: asyncio.to_thread(render_progress_chart, p, "da")
        )

        async def collect():
            async with sessions() as s:
                return await export.collect(s, user, now)

        t_collect, bundle = await timed(args.runs, collect)

        async def report_data():
            async with sessions() as s:
                return await workspace.report_data(s, user, "Ana", now)

        t_data, data = await timed(args.runs, report_data)
        t_pdf, pdf = await timed(
            args.runs, lambda: asyncio.to_thread(report.build_report, data, "da")
        )
        print(
            f"  compute_progress     {ms(t_progress)}   (streak {p.current_streak}, best "
            f"{p.best_streak}; {p.effect.sessions} sessions in the effect)"
        )
        print(f"  /progress text       {ms(t_text)}")
        print(f"  chart (PNG)          {ms(t_chart)}   ({len(png) // 1024} KiB)")
        print(f"  /progress total      {ms(t_progress + t_text + t_chart)}")
        print(f"  export.collect (CSV) {ms(t_collect)}   ({len(bundle.csv) // 1024} KiB)")
        print(f"  report data          {ms(t_data)}")
        print(f"  clinic report (PDF)  {ms(t_pdf)}   ({len(pdf) // 1024} KiB)")
        print(f"  /export total        {ms(t_collect + t_data + t_pdf)}")
    finally:
        await engine.dispose()
        if tmp is not None:
            tmp.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="default: a temporary SQLite file")
    parser.add_argument("--reset", action="store_true", help="wipe a PostgreSQL database first")
    parser.add_argument("--others", type=int, default=200, help="other patients with a year each")
    parser.add_argument("--runs", type=int, default=7)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
