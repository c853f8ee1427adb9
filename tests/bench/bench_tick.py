"""One whole dispatcher tick at scale: claim, render, send, record (issue 4; bar B1's pipeline).

Not collected by pytest. From the repo root:

    python tests/bench/bench_tick.py --patients 100000 --due 1000
    python tests/bench/bench_tick.py --patients 100000 --due 1000 \\
        --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/bench_tick

A fresh database (SQLite file, or the named PostgreSQL database, created and dropped here)
gets N patients, ``--due`` of them due now. A local fake Bot API answers the sends. Printed:
the wall time of one tick with the rate limiter off (the pipeline's own speed), the same
number of bare ``send_message`` calls with the same concurrency for reference (their
ratio is bar B1), and how many prompts went out exactly once.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_claim import populate  # noqa: E402
from sqlalchemy import func, make_url, select  # noqa: E402
from telegram.ext import ExtBot  # noqa: E402

from bot.config import load_settings  # noqa: E402
from bot.db.migrate import upgrade  # noqa: E402
from bot.db.models import CheckIn  # noqa: E402
from bot.db.session import create_engine, make_session_factory  # noqa: E402
from bot.i18n import load_locales  # noqa: E402
from bot.scheduling.dispatcher import SEND_CONCURRENCY, Dispatcher  # noqa: E402
from bot.testing.fake_telegram import FakeTelegram  # noqa: E402

TOKEN = "123456:BENCH"


class FixedClock:
    def __init__(self, now: datetime) -> None:
        self._now = now

    def now(self) -> datetime:
        return self._now


async def bare_sends(bot: ExtBot, chat_ids: list[int]) -> float:
    """The reference: the same sends with the same concurrency, nothing else."""
    gate = asyncio.Semaphore(SEND_CONCURRENCY)

    async def one(chat_id: int) -> None:
        async with gate:
            await bot.send_message(chat_id, "Time for your exercises!")

    t0 = time.perf_counter()
    await asyncio.gather(*(one(c) for c in chat_ids))
    return time.perf_counter() - t0


async def main(args: argparse.Namespace) -> None:
    load_locales()
    scratch = None
    if args.database_url:
        url = make_url(args.database_url)
        admin = create_engine(
            args.database_url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT"
        )
        scratch = url.database
        async with admin.connect() as conn:
            await conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')
            await conn.exec_driver_sql(f'CREATE DATABASE "{scratch}"')
        db_url = args.database_url
    else:
        db_url = f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/tick.sqlite3"
    engine = create_engine(db_url)
    await upgrade(engine)
    now = datetime.now(UTC).replace(microsecond=0)
    await populate(engine, args.patients, args.due, 0, now)
    sessions = make_session_factory(engine)
    async with FakeTelegram(token=TOKEN) as fake:
        for i in range(1, args.due + 1):
            fake.user(10_000_000 + i)
        settings = load_settings(
            telegram_bot_token=TOKEN, telegram_api_base_url=fake.api_base_url, database_url=db_url
        )
        async with ExtBot(TOKEN, base_url=settings.bot_api_url) as bot:
            await bare_sends(bot, [10_000_000 + i for i in range(1, 51)])  # warm the pool
            reference = await bare_sends(bot, [10_000_000 + i for i in range(1, args.due + 1)])
            dispatcher = Dispatcher(bot, sessions, settings, FixedClock(now), batch=args.due)
            t0 = time.perf_counter()
            report = await dispatcher.tick()
            tick = time.perf_counter() - t0
    async with sessions() as s:
        prompted = await s.scalar(
            select(func.count()).select_from(CheckIn).where(CheckIn.status == "prompted")
        )
    await engine.dispose()
    if scratch:
        async with admin.connect() as conn:
            await conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')
        await admin.dispose()
    print(f"engine: {engine.dialect.name}, patients: {args.patients}, due: {args.due}")
    print(
        f"one tick (claim, render, send, record), limiter off: {tick * 1000:.0f} ms "
        f"({report.sent / tick:.0f} prompts/s); sent {report.sent}, prompted rows {prompted}"
    )
    print(
        f"bare send_message x {args.due}, same concurrency: {reference * 1000:.0f} ms "
        f"({args.due / reference:.0f} msg/s)"
    )
    print(f"pipeline / bare throughput ratio (bar B1 >= 0.5): {reference / tick:.2f}")
    print(
        f"with the 30/s limiter the same {args.due} prompts take >= {args.due / 30:.0f} s by design"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--due", type=int, default=1_000)
    parser.add_argument("--database-url", help="a PostgreSQL URL naming a scratch database")
    asyncio.run(main(parser.parse_args()))
