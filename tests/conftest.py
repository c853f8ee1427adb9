"""Shared fixtures: a migrated database (SQLite by default, PostgreSQL with TEST_DATABASE_URL)."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import delete, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from telegram import Update

from bot.app import build_application
from bot.clock import ManualClock
from bot.config import load_settings
from bot.context import BotApp
from bot.db.migrate import upgrade
from bot.db.models import Base
from bot.db.session import SessionFactory, create_engine, make_session_factory
from bot.i18n import load_locales, t
from bot.testing.fake_telegram import FakeTelegram, parse_html


def database_url(tmp_dir: Path) -> str:
    """TEST_DATABASE_URL names a PostgreSQL to test on; otherwise a fresh SQLite file."""
    return os.environ.get("TEST_DATABASE_URL") or f"sqlite+aiosqlite:///{tmp_dir / 'test.sqlite3'}"


@pytest.fixture(scope="session", autouse=True)
def locales() -> None:
    """Load every locale file once, strictly: a missing key fails the test that uses it."""
    load_locales(strict=True)


@pytest.fixture(scope="session")
async def engine(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[AsyncEngine]:
    """A database migrated with `upgrade head`: a fresh SQLite file, or a fresh PostgreSQL
    database created next to TEST_DATABASE_URL's (so parallel runs never share tables)."""
    url = database_url(tmp_path_factory.mktemp("db"))
    scratch = None
    if url.startswith("postgresql"):
        base = make_url(url)
        scratch = f"paincoach_test_{os.getpid()}_{secrets.token_hex(3)}"
        admin = create_engine(url, isolation_level="AUTOCOMMIT")
        async with admin.connect() as conn:
            await conn.exec_driver_sql(f'CREATE DATABASE "{scratch}"')
        await admin.dispose()
        url = base.set(database=scratch).render_as_string(hide_password=False)
    eng = create_engine(url)
    await upgrade(eng)
    yield eng
    await eng.dispose()
    if scratch:
        admin = create_engine(database_url(Path()), isolation_level="AUTOCOMMIT")
        async with admin.connect() as conn:
            await conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')
        await admin.dispose()


@pytest.fixture
async def sessions(engine: AsyncEngine) -> AsyncIterator[SessionFactory]:
    """A session factory on the migrated database; every table is emptied after the test."""
    yield make_session_factory(engine)
    async with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            await conn.execute(delete(table))


@pytest.fixture
async def session(sessions: SessionFactory) -> AsyncIterator[AsyncSession]:
    """One session for a service test; the test commits (or not) as the caller would."""
    async with sessions() as s:
        yield s


# --- Conversations: the real Application against the fake Bot API -------------------------

# Monday 23 November 2026, 07:00 UTC: a fixed "now" every conversation test starts from.
T0 = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
TEST_TOKEN = "123456:TEST-TOKEN-never-logged"


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(token=TEST_TOKEN) as server:
        yield server


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


async def start_app(fake: FakeTelegram, engine: AsyncEngine, clock: ManualClock) -> BotApp:
    """Build and initialise the bot as `run` would, with updates handed in by the fake."""
    settings = load_settings(
        telegram_bot_token=TEST_TOKEN,
        telegram_api_base_url=fake.api_base_url,
        database_url=engine.url.render_as_string(hide_password=False),
    )
    app = build_application(settings, clock=clock, engine=engine)
    app.bot_data.run_jobs = False  # tests tick the dispatcher by hand, on the manual clock
    await app.initialize()
    await app.post_init(app)

    async def deliver(data: dict) -> None:
        await app.process_update(Update.de_json(data, app.bot))

    fake.deliver = deliver
    return app


@pytest.fixture
async def app(
    fake: FakeTelegram, engine: AsyncEngine, sessions: SessionFactory, clock: ManualClock
) -> AsyncIterator[BotApp]:
    """The bot, ready: a user action returns once every handler for it has run."""
    application = await start_app(fake, engine, clock)
    yield application
    await application.shutdown()


def prompt_seen(locale: str, **kw: object) -> str:
    """The reminder prompt as the patient sees it (``checkin.prompt_text``, HTML parsed away)."""
    from bot.handlers.checkin import prompt_text

    return parse_html(prompt_text(locale, **kw))[0].strip()


def tx(key: str, locale: str, **values: object) -> str:
    """A locale string as the patient sees it: HTML tags parsed away, as Telegram does."""
    return parse_html(t(key, locale, **values))[0].strip()


async def consent(user, loc: str) -> None:
    await user.send("/start")
    await user.press(tx("start.consent_yes", loc))


async def setup_through(
    user,
    loc: str,
    *,
    zone: str | None = None,
    times: str = "08:30",
    days_button: str = "setup.days_weekdays",
    now: datetime = T0,
) -> None:
    """Consent and answer every setup step with buttons (the zone by its button label)."""
    from bot.services.timezones import SUGGESTED

    await consent(user, loc)
    # Setup skips the language question when Telegram's language is one we speak; a patient
    # whose Telegram is in another language picks theirs with /language.
    if user.last.text != tx("setup.ask_timezone", loc):
        if user.last.text not in {tx("setup.ask_language", c) for c in ("en", "da", "es")}:
            await user.send("/language")
        await user.press(tx(f"common.language_name.{loc}", loc))
    # The zone buttons read "København · 08.30" (the clock there now): pressed by their data.
    zone = zone or SUGGESTED[loc][0]
    offered = [data for row in user.last.callback_data for data in row]
    assert f"tz:{zone}" in offered or zone not in SUGGESTED[loc], (zone, offered)
    await user.press(callback_data=f"tz:{zone}")
    await user.send(times)
    await user.press(tx(days_button, loc))
