"""Errors an operator can read, and that leak nothing: a rejected token, database errors,
forged callback data, SIGTERM during a fan-out, quiet libraries, key=value tick lines."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from bot.db.migrate import upgrade
from bot.db.models import CheckIn, Schedule, User
from bot.db.session import create_engine, make_session_factory
from bot.handlers.ui import parse_id, parse_int
from bot.scheduling.dispatcher import TickReport
from bot.testing.fake_telegram import FakeTelegram
from tests.conftest import setup_through, tx
from tests.test_cli import ROOT, TOKEN, bot_env, run_cli


async def test_a_rejected_token_is_one_line_and_never_printed(tmp_path):
    async with FakeTelegram(token="111:the-right-one") as fake:
        env = bot_env(tmp_path, TELEGRAM_BOT_TOKEN=TOKEN, TELEGRAM_API_BASE_URL=fake.api_base_url)
        code, out = await run_cli("run", env=env)
    assert code == 2
    assert out.strip().splitlines()[-1] == "error: Telegram rejected TELEGRAM_BOT_TOKEN"
    assert "Traceback" not in out
    assert TOKEN not in out and TOKEN.split(":")[1] not in out


def test_ids_in_callback_data_are_parsed_strictly():
    assert parse_id("42") == 42
    assert parse_id(str(2**31 - 1)) == 2**31 - 1
    for forged in ("²", "4²", "٣", "0", "-1", "+1", " 1", "1 ", "", None, str(2**31), "9" * 20):
        assert parse_id(forged) is None, forged
    assert parse_int("0", 0, 10) == 0 and parse_int("11", 0, 10) is None


FORGED = (
    "ci:²:go",
    "ci:99999999999:go",
    "ci:" + "9" * 20 + ":go",
    "ci:2147483648:b:3",
    "pain:²",
    "pain:99999999999",
    "tl:y:99999999999",
    "tl:rv:²",
    "day:²",
    "del:²",
    "set:²",
    "pause:²",
)


async def test_forged_callback_data_gets_a_polite_answer_not_a_traceback(
    app, fake, sessions, clock, caplog
):
    user = fake.user(5301, "Ana", language_code="es")
    await setup_through(user, "es")
    await user.send("/pain")  # the keypad is waiting: pain:² must not be recorded
    with caplog.at_level(logging.ERROR):
        for data in FORGED:
            seen, answered = len(user.messages), len(user.answers)
            await user.press(callback_data=data)
            # Each press is answered: a localized popup or a localized message, never the
            # error handler's "something went wrong".
            popup = user.answers[answered:]
            new = [m.text for m in user.messages[seen:]]
            assert any(popup) or new, data
            assert tx("general.error", "es") not in new, data
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not fake.unanswered_callback_queries
    async with sessions() as s:
        assert await s.scalar(select(func.count()).select_from(CheckIn)) == 0


async def test_database_errors_do_not_log_health_data(engine, sessions):
    async with sessions() as s:
        s.add(User(telegram_id=777_000_123, language="da"))
        await s.commit()
    with pytest.raises(IntegrityError) as info:
        async with sessions() as s:
            s.add(User(telegram_id=777_000_123, language="da"))
            await s.commit()
    assert "777000123" not in str(info.value)
    assert "hidden due to hide_parameters" in str(info.value)


def test_tick_lines_are_key_value():
    line = TickReport(sent=3, failed=1, errors=["x"]).as_log()
    assert line == (
        "sent=3 failed=1 blocked=0 expired=0 missed=0 next_day=0 nudged=0 done_asked=0 cleaned=0"
        " errors=1"
    )


def test_font_libraries_are_quiet_at_info():
    from bot.logging_setup import configure

    root = logging.getLogger()
    saved = (root.level, root.handlers[:])
    try:
        configure("INFO", TOKEN)
        for name in ("matplotlib", "matplotlib.font_manager", "fontTools", "fontTools.subset"):
            assert not logging.getLogger(name).isEnabledFor(logging.INFO), name
    finally:
        root.setLevel(saved[0])
        root.handlers[:] = saved[1]


async def test_sigterm_during_a_fan_out_exits_in_time_and_loses_nothing(tmp_path):
    """300 prompts at 30/s take 10 s; SIGTERM half-way: out within 8 s (Docker kills at 10),
    and every prompt that went out is recorded (a restart will not send it twice)."""
    env = bot_env(tmp_path, TELEGRAM_BOT_TOKEN=TOKEN, DISPATCH_INTERVAL_SECONDS="0.5")
    engine = create_engine(env["DATABASE_URL"])
    await upgrade(engine)
    now = datetime.now(UTC)
    async with FakeTelegram(token=TOKEN) as fake:
        async with make_session_factory(engine)() as s, s.begin():
            for i in range(300):
                user = User(
                    telegram_id=9_000_000 + i,
                    language="es",
                    timezone="UTC",
                    consent_at=now - timedelta(days=3),
                    setup_done_at=now - timedelta(days=3),
                )
                s.add(user)
                await s.flush()
                s.add(
                    Schedule(
                        user_id=user.id, local_time="00:00", next_due_at=now - timedelta(seconds=30)
                    )
                )
                fake.user(9_000_000 + i, "P", language_code="es")
        env["TELEGRAM_API_BASE_URL"] = fake.api_base_url
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "run",
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            await fake.wait_for(lambda: len(fake.calls_of("sendMessage")) >= 60, timeout=60)
        finally:
            proc.send_signal(signal.SIGTERM)
            began = time.monotonic()
            out, _ = await asyncio.wait_for(proc.communicate(), 30)
            took = time.monotonic() - began
        sent = len(fake.calls_of("sendMessage"))
    assert proc.returncode == 0, out.decode()[-2000:]
    assert took < 8, f"SIGTERM took {took:.1f} s"
    assert sent < 300  # it really stopped mid-fan-out
    async with make_session_factory(engine)() as s:
        prompted = await s.scalar(
            select(func.count()).select_from(CheckIn).where(CheckIn.prompt_message_id.is_not(None))
        )
    await engine.dispose()
    assert prompted == sent
    assert "tick sent=" in out.decode() or sent > 0


async def test_settings_are_read_from_dot_env_and_the_environment_wins(tmp_path):
    db = tmp_path / "from-dotenv.sqlite3"
    (tmp_path / ".env").write_text(
        f"# comment\nDATABASE_URL=sqlite+aiosqlite:///{db}\nLOG_LEVEL=warning\nADMIN_IDS=5\n"
    )
    env = bot_env(tmp_path)
    env.pop("DATABASE_URL")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "therapist",
        "add",
        "42",
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert (proc.returncode, out.decode()) == (0, "42 is now a therapist\n")
    assert db.exists()

    from bot.config import load_settings

    settings = load_settings(str(tmp_path / ".env"), telegram_bot_token=TOKEN)
    assert settings.log_level == "WARNING" and settings.admin_ids == {5}
    assert load_settings(str(tmp_path / "missing.env"), telegram_bot_token=TOKEN).admin_ids == set()
