"""Benchmark one dispatcher tick (``claim_due``) at scale (ARCHITECTURE.md bar B5).

Not collected by pytest (the file name does not start with ``test_``). Run from the repo root:

    python tests/bench/bench_claim.py --patients 100000 --due 1000
    python tests/bench/bench_claim.py --patients 100000 --due 1000 \\
        --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/bench --reset

Builds N consented patients with one schedule each (Core ``insert()`` in chunks), ``--due`` of
them due now and the rest spread over the next 24 hours, optionally ``--history-days`` days of
finished check-ins per patient, then measures:

- the due-claim query alone (``reminders.fetch_due``: the indexed SELECT ... FOR UPDATE SKIP
  LOCKED of due schedules with their users' fields), several runs, each rolled back;
- one full ``claim_due`` tick with ``--due`` schedules due (claim transaction incl. commit);
- an idle tick (nothing due: the cost paid every few seconds).

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
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sqlalchemy import event, func, insert, inspect, select, text  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncEngine  # noqa: E402

from bot.db.migrate import upgrade  # noqa: E402
from bot.db.models import CheckIn, Schedule, User  # noqa: E402
from bot.db.session import create_engine, make_session_factory  # noqa: E402
from bot.services import reminders  # noqa: E402
from bot.services.schedule_rules import ALL_DAYS, next_occurrence  # noqa: E402

ZONES = ["Europe/Copenhagen", "Europe/Madrid", "America/New_York", "Asia/Kolkata", "UTC"]
CHUNK = 10_000
GRACE = timedelta(hours=2)
EXPIRY = timedelta(hours=12)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.2f} ms"


async def prepare(engine: AsyncEngine, reset: bool) -> None:
    if engine.dialect.name == "postgresql":
        async with engine.connect() as conn:
            tables = await conn.run_sync(lambda c: inspect(c).get_table_names())
        if tables and not reset:
            sys.exit(f"database not empty ({len(tables)} tables): pass --reset to wipe it")
        if reset:
            async with engine.begin() as conn:
                await conn.exec_driver_sql("DROP SCHEMA public CASCADE")
                await conn.exec_driver_sql("CREATE SCHEMA public")
    await upgrade(engine)


async def populate(engine: AsyncEngine, patients: int, due: int, history_days: int, now: datetime):
    rng = random.Random(7)
    users = User.__table__
    schedules = Schedule.__table__
    checkins = CheckIn.__table__
    long_ago = now - timedelta(days=90)
    t0 = time.perf_counter()
    async with engine.begin() as conn:
        for start in range(1, patients + 1, CHUNK):
            ids = range(start, min(start + CHUNK, patients + 1))
            await conn.execute(
                insert(users),
                [
                    {
                        "id": i,
                        "telegram_id": 10_000_000 + i,
                        "language": "da",
                        "timezone": ZONES[i % len(ZONES)],
                        "consent_at": long_ago,
                        "consent_version": "1",
                        "setup_done_at": long_ago,
                        "active": True,
                        "created_at": long_ago,
                        "updated_at": long_ago,
                    }
                    for i in ids
                ],
            )
            rows = []
            for i in ids:
                tz = ZONES[i % len(ZONES)]
                if i <= due:  # due now: a real slot a few seconds ago
                    local = (now - timedelta(seconds=rng.randint(1, 5))).astimezone(
                        reminders.zone(tz)
                    )
                    local_time = local.strftime("%H:%M")
                    next_due = next_occurrence(local_time, ALL_DAYS, tz, now - timedelta(minutes=2))
                else:  # somewhere in the next 24 hours
                    when = now + timedelta(minutes=rng.randint(2, 24 * 60 - 1))
                    local_time = when.astimezone(reminders.zone(tz)).strftime("%H:%M")
                    next_due = next_occurrence(local_time, ALL_DAYS, tz, now)
                rows.append(
                    {
                        "id": i,
                        "user_id": i,
                        "local_time": local_time,
                        "days": ALL_DAYS,
                        "next_due_at": next_due,
                        "created_at": long_ago,
                    }
                )
            await conn.execute(insert(schedules), rows)
        if engine.dialect.name == "postgresql":
            for table in ("users", "schedules"):
                await conn.exec_driver_sql(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), {patients})"
                )
    t_users = time.perf_counter() - t0

    t0 = time.perf_counter()
    if history_days:
        async with engine.begin() as conn:
            batch: list[dict] = []
            for day in range(1, history_days + 1):
                for i in range(1, patients + 1):
                    slot = now - timedelta(days=day, minutes=i % 600)
                    batch.append(
                        {
                            "user_id": i,
                            "schedule_id": i,
                            "kind": "prompt",
                            "status": "completed" if i % 3 else "missed",
                            "due_at": slot,
                            "prompted_at": slot,
                            "expires_at": slot + EXPIRY,
                            "send_attempts": 1,
                            "flagged": False,
                            "created_at": slot,
                            "updated_at": slot,
                        }
                    )
                    if len(batch) >= CHUNK:
                        await conn.execute(insert(checkins), batch)
                        batch = []
            if batch:
                await conn.execute(insert(checkins), batch)
    t_history = time.perf_counter() - t0

    # As a database in service would be: statistics gathered (and, on PostgreSQL, vacuumed,
    # so the first reads do not pay for setting hint bits on a million fresh rows).
    if engine.dialect.name == "postgresql":
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("VACUUM ANALYZE"))
    else:
        async with engine.begin() as conn:
            await conn.execute(text("ANALYZE"))
    return t_users, t_history


async def explain_tick(engine: AsyncEngine, sessions, now: datetime, limit: int) -> str:
    """The plan of every single-row-set statement of one claim tick (run, then rolled back)."""
    sqlite = engine.dialect.name == "sqlite"
    prefix = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN "
    out: list[str] = []

    def explain(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
        if executemany or not statement.lstrip().upper().startswith(("SELECT", "UPDATE")):
            return
        cursor.execute(prefix + statement, parameters)
        rows = cursor.fetchall()
        lines = [f"    {r[3]}" if sqlite else f"    {r[0]}" for r in rows]
        out.append("  " + " ".join(statement.split())[:110] + "...\n" + "\n".join(lines))

    event.listen(engine.sync_engine, "before_cursor_execute", explain)
    try:
        async with sessions() as s, s.begin():
            await reminders.claim_due(s, now, limit=limit, grace=GRACE, expiry=EXPIRY)
            await s.rollback()
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", explain)
    return "plans of one claim tick:\n" + "\n".join(out)


async def run(args: argparse.Namespace) -> None:
    url = args.database_url
    tmp = None
    if url is None:
        tmp = tempfile.TemporaryDirectory()
        url = f"sqlite+aiosqlite:///{tmp.name}/bench.sqlite3"
    engine = create_engine(url)
    sessions = make_session_factory(engine)
    now = datetime.now(UTC).replace(microsecond=0)
    await prepare(engine, args.reset)
    t_users, t_history = await populate(engine, args.patients, args.due, args.history_days, now)

    async with sessions() as s:
        n_due = await s.scalar(
            select(func.count()).select_from(Schedule).where(Schedule.next_due_at <= now)
        )
        n_checkins = await s.scalar(select(func.count()).select_from(CheckIn))

    # The due-claim query alone (reminders.fetch_due), rolled back each time.
    query_times = []
    for _ in range(args.repeat):
        async with sessions() as s, s.begin():
            t0 = time.perf_counter()
            rows = await reminders.fetch_due(s, now, args.limit)
            query_times.append(time.perf_counter() - t0)
            await s.rollback()
    claimed_rows = len(rows)

    plans = await explain_tick(engine, sessions, now, args.limit) if args.explain else ""

    # One full tick with the due schedules.
    t0 = time.perf_counter()
    async with sessions() as s, s.begin():
        result = await reminders.claim_due(s, now, limit=args.limit, grace=GRACE, expiry=EXPIRY)
    t_tick = time.perf_counter() - t0

    # Idle ticks: nothing due any more (a few seconds later).
    idle_times = []
    for k in range(args.repeat):
        later = now + timedelta(seconds=1 + k)
        t0 = time.perf_counter()
        async with sessions() as s, s.begin():
            idle = await reminders.claim_due(s, later, limit=args.limit, grace=GRACE, expiry=EXPIRY)
        idle_times.append(time.perf_counter() - t0)
        assert not idle.prompts, "an idle tick claimed something"

    # The expiry sweep alone, 12 h on (every prompt just claimed is then past expires_at).
    async with sessions() as s, s.begin():
        t0 = time.perf_counter()
        expired = list(
            await s.scalars(
                reminders.expire_statement(now + EXPIRY, args.limit, engine.dialect.name)
            )
        )
        t_expire = time.perf_counter() - t0
        await s.rollback()

    await engine.dispose()
    if tmp is not None:
        tmp.cleanup()

    print(f"backend            {engine.dialect.name} ({engine.url.render_as_string()})")
    print(f"patients           {args.patients:,} (one schedule each), due now: {n_due:,}")
    print(f"history            {n_checkins:,} check-ins ({args.history_days} days)")
    print(f"populate           users+schedules {t_users:6.1f} s, history {t_history:6.1f} s")
    print(
        f"due-claim query    median {ms(statistics.median(query_times))}, "
        f"min {ms(min(query_times))}, first {ms(query_times[0])}  "
        f"({claimed_rows} rows, {args.repeat} runs)"
    )
    print(
        f"claim tick         {ms(t_tick)}  ({len(result.prompts)} prompts, "
        f"{len(result.missed_ids)} missed, {len(result.expired_ids)} expired; incl. commit)"
    )
    print(
        f"idle tick          median {ms(statistics.median(idle_times))}, min {ms(min(idle_times))}"
    )
    print(f"expiry sweep       {ms(t_expire)}  ({len(expired)} expired, rolled back)")
    if plans:
        print(plans)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--due", type=int, default=1_000)
    parser.add_argument("--limit", type=int, default=1_000, help="claim_due limit (default 1000)")
    parser.add_argument("--history-days", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    parser.add_argument("--reset", action="store_true", help="wipe a PostgreSQL database first")
    parser.add_argument("--explain", action="store_true", help="print each query's plan")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
