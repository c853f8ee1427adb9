"""Several replicas on one PostgreSQL: migrations serialized, one shared send limit (a leader
sends the fan-out), another replica takes over when the leader dies. Skipped on SQLite
(one process by construction: always the leader, no lock)."""

from __future__ import annotations

import asyncio
import os
import secrets
from contextlib import AsyncExitStack
from datetime import timedelta

import pytest
from sqlalchemy import make_url, select

from bot.bench_support import max_in_sliding_window
from bot.db.migrate import current_revision, upgrade
from bot.db.models import Schedule, User
from bot.db.session import create_engine
from bot.scheduling.leader import Leadership
from tests.conftest import T0
from tests.test_webhook import running_bot

PG = os.environ.get("TEST_DATABASE_URL", "")
pytestmark = pytest.mark.skipif(
    not PG.startswith("postgresql"), reason="replicas share a PostgreSQL (TEST_DATABASE_URL)"
)


async def fresh_database() -> str:
    name = f"paincoach_replicas_{os.getpid()}_{secrets.token_hex(3)}"
    admin = create_engine(PG, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    await admin.dispose()
    return make_url(PG).set(database=name).render_as_string(hide_password=False)


async def drop_database(url: str) -> None:
    admin = create_engine(PG, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.exec_driver_sql(
            f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'
        )
    await admin.dispose()


async def test_replicas_starting_together_migrate_once(tmp_path):
    url = await fresh_database()
    engines = [create_engine(url) for _ in range(3)]
    try:
        await asyncio.gather(*(upgrade(e) for e in engines))  # no UniqueViolation
        revisions = {await current_revision(e) for e in engines}
        assert len(revisions) == 1 and None not in revisions
    finally:
        for e in engines:
            await e.dispose()
        await drop_database(url)


async def test_one_leader_at_a_time_and_a_takeover_when_it_dies(engine):
    url = engine.url.render_as_string(hide_password=False)
    a, b = Leadership(engine), Leadership(create_engine(url))
    try:
        assert await a.is_leader()
        assert not await b.is_leader()
        assert await a.is_leader()  # still ours
        await a._conn.invalidate()  # its process died: the connection is gone
        assert await b.is_leader()
        assert not await a.is_leader()
        await b.release()
        assert await a.is_leader()
    finally:
        await a.release()
        await b.release()
        await b.engine.dispose()


async def add_due(sessions, fake, ids: range) -> None:
    async with sessions() as s, s.begin():
        for tid in ids:
            user = User(
                telegram_id=tid,
                language="da",
                timezone="Europe/Copenhagen",
                consent_at=T0 - timedelta(days=30),
                setup_done_at=T0 - timedelta(days=30),
            )
            s.add(user)
            await s.flush()
            s.add(
                Schedule(user_id=user.id, local_time="07:59", next_due_at=T0 - timedelta(minutes=1))
            )
            fake.user(tid, "P", language_code="da")


async def test_two_replicas_prompt_each_patient_once_within_one_limit(
    fake, engine, sessions, clock
):
    first = range(7_100_000, 7_100_090)
    await add_due(sessions, fake, first)
    second_engine = create_engine(engine.url.render_as_string(hide_password=False))
    try:
        async with AsyncExitStack() as stack:
            apps = []
            for eng in (engine, second_engine):
                app, _base = await stack.enter_async_context(
                    running_bot(fake, eng, clock, dispatch_interval_seconds=0.3)
                )
                # Small claim batches: without one leader, both replicas would claim rounds
                # side by side and each send at its own 30/s.
                app.bot_data.dispatcher.batch = 10
                apps.append(app)

            def prompted(ids) -> int:
                return sum(1 for tid in ids if fake.chat_messages(tid))

            await fake.wait_for(lambda: prompted(first) == len(first), timeout=30)
            leaders = [app for app in apps if app.bot_data.leader._conn is not None]
            assert len(leaders) == 1
            # The leader dies (its connection closes, as when the process is killed); the
            # other replica takes over at its next tick.
            dead = leaders[0]
            dead.job_queue.get_jobs_by_name("dispatcher")[0].enabled = False
            await dead.bot_data.leader._conn.invalidate()
            later = range(7_200_000, 7_200_030)
            await add_due(sessions, fake, later)
            await fake.wait_for(lambda: prompted(later) == len(later), timeout=30)
            [survivor] = [app for app in apps if app is not dead]
            assert survivor.bot_data.leader._conn is not None
    finally:
        await second_engine.dispose()
    for tid in (*first, *later):
        assert len(fake.chat_messages(tid)) == 1, tid  # exactly once
    sends = [r.at for r in fake.requests if r.method == "sendMessage" and r.status == 200]
    assert len(sends) == len(first) + len(later)
    assert max_in_sliding_window(sends) <= 30
    assert fake.stats.max_sends_per_second <= 30
    assert fake.stats.too_many_requests == 0
    async with sessions() as s:
        assert len((await s.scalars(select(Schedule))).all()) == len(first) + len(later)
