# ruff: noqa: E402, E501, E731, ASYNC221, ASYNC230  (a manual scenario script, run by hand)
"""Scenario: PostgreSQL restarted under load; the running bot recovers by itself.

Not collected by pytest (it restarts the machine's PostgreSQL, which a test run must not do
to itself). Run from the repo root as root on a machine with a local cluster:

    python tests/bench/scenario_pg_restart.py

It starts `python -m bot run` against a fake Bot API and a scratch database, lets 50 prompts
go out, restarts PostgreSQL with pg_ctlcluster, then makes 50 more patients due and checks
they are prompted and /help is answered, without restarting the bot.
"""

import asyncio
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from bot.db.migrate import upgrade
from bot.db.models import Schedule, User
from bot.db.session import create_engine, make_session_factory, transaction
from bot.i18n import load_locales, t
from bot.testing.fake_telegram import FakeTelegram

TOKEN = "123456:PGRESTART"
ADMIN = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/pg_restart_scenario"


async def add_due(sessions, first, count, when):
    async with transaction(sessions) as s:
        for i in range(count):
            u = User(
                telegram_id=first + i,
                language="en",
                timezone="UTC",
                consent_at=when - timedelta(days=1),
                setup_done_at=when - timedelta(days=1),
            )
            s.add(u)
            await s.flush()
            s.add(Schedule(user_id=u.id, local_time="08:00", days=127, next_due_at=when))


async def main():
    load_locales()
    admin = create_engine(ADMIN, isolation_level="AUTOCOMMIT")
    async with admin.connect() as c:
        await c.exec_driver_sql("DROP DATABASE IF EXISTS pg_restart_scenario WITH (FORCE)")
        await c.exec_driver_sql("CREATE DATABASE pg_restart_scenario")
    await admin.dispose()
    eng = create_engine(URL)
    await upgrade(eng)
    sessions = make_session_factory(eng)
    now = datetime.now(UTC)
    await add_due(sessions, 100, 50, now - timedelta(seconds=30))
    async with FakeTelegram(token=TOKEN) as fake:
        users = [fake.user(100 + i) for i in range(50)] + [fake.user(200 + i) for i in range(50)]
        env = dict(
            os.environ,
            TELEGRAM_BOT_TOKEN=TOKEN,
            TELEGRAM_API_BASE_URL=fake.api_base_url,
            DATABASE_URL=URL,
            DISPATCH_INTERVAL_SECONDS="0.5",
            LOG_LEVEL="WARNING",
        )
        log = open(os.devnull, "w")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "run", cwd=ROOT, env=env, stdout=log, stderr=log
        )
        prompt = t("checkin.prompt", "en")
        got = lambda ids: sum(
            1 for u in users if u.id in ids and any(m.text == prompt for m in u.messages)
        )
        await fake.wait_for(lambda: got(range(100, 150)) == 50, timeout=30)
        print("first 50 prompts delivered")
        await eng.dispose()
        t0 = time.time()
        print(
            subprocess.run(
                [
                    "pg_ctlcluster",
                    "--skip-systemctl-redirect",
                    sorted(os.listdir("/etc/postgresql"))[-1],
                    "main",
                    "restart",
                ],
                capture_output=True,
                text=True,
            )
        )
        print(f"postgres restarted in {time.time() - t0:.1f}s")
        # a patient writes during/after the outage
        await users[0].send("/help")
        eng = create_engine(URL)
        sessions = make_session_factory(eng)
        await add_due(sessions, 200, 50, datetime.now(UTC))
        await fake.wait_for(lambda: got(range(200, 250)) == 50, timeout=60)
        print(
            f"second 50 prompts delivered {time.time() - t0:.1f}s after the restart began, without restarting the bot"
        )
        await users[1].send("/help")
        await fake.wait_for(lambda: len(users[1].messages) >= 2, timeout=10)
        print("bot answers /help after the restart:", users[1].messages[-1].text[:60])
        print("bot still running:", proc.returncode is None)
        proc.terminate()
        await proc.wait()
    await eng.dispose()


asyncio.run(main())
