"""`python -m bot` as an operator runs it: errors name the variable, `run` polls a Bot API."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from bot.testing.fake_telegram import FakeTelegram
from tests.conftest import tx

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "987654:SECRET-token-that-must-never-be-logged"


def bot_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "DATABASE_"))}
    env.update({"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}", **extra})
    return env


async def run_cli(*args: str, env: dict[str, str]) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, out.decode()


async def test_run_without_token_names_the_variable(tmp_path):
    code, out = await run_cli("run", env=bot_env(tmp_path))
    assert code != 0
    assert out.strip().splitlines() == [
        "error: TELEGRAM_BOT_TOKEN is not set: export it (see .env.example)"
    ]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DATABASE_URL", "mysql://x"),
        ("LOG_LEVEL", "LOUD"),
        ("ADMIN_IDS", "alice"),
        ("TELEGRAM_BOT_TOKEN", "not-a-token"),
        ("TELEGRAM_API_BASE_URL", "ftp://x"),
    ],
)
async def test_bad_values_stop_with_one_line_naming_the_variable(tmp_path, variable, value):
    env = bot_env(tmp_path, **{"TELEGRAM_BOT_TOKEN": TOKEN, variable: value})
    code, out = await run_cli("run", env=env)
    assert code != 0
    [line] = out.strip().splitlines()
    assert line.startswith(f"error: {variable} is invalid")


async def test_therapist_add_and_remove(tmp_path):
    env = bot_env(tmp_path)
    assert await run_cli("therapist", "add", "42", env=env) == (0, "42 is now a therapist\n")
    assert await run_cli("therapist", "add", "42", env=env) == (0, "42 is already a therapist\n")
    assert await run_cli("therapist", "remove", "42", env=env) == (
        0,
        "42 is no longer a therapist\n",
    )


async def test_run_polls_a_bot_api_server_and_never_logs_the_token(tmp_path):
    async with FakeTelegram(token=TOKEN) as fake:
        env = bot_env(
            tmp_path,
            TELEGRAM_BOT_TOKEN=TOKEN,
            TELEGRAM_API_BASE_URL=fake.api_base_url,
            LOG_LEVEL="DEBUG",
        )
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
            await fake.wait_for(lambda: ("default", "da") in fake.commands, timeout=30)
            for loc, uid in (("en", 1), ("da", 2), ("es", 3)):
                user = fake.user(uid, "Ana", language_code=loc)
                await user.send("/start")
                await fake.wait_for(lambda u=user: u.last is not None, timeout=10)
                assert tx("start.greeting", loc, name="Ana") in user.last.text
                await user.send("/help")
                await fake.wait_for(lambda u=user: len(u.messages) == 2, timeout=10)
                assert tx("help.intro", loc) in user.last.text
                await user.send("/language")
                await fake.wait_for(lambda u=user: len(u.messages) == 3, timeout=10)
                await user.press("Español")
                # "I'll speak Spanish", then the greeting again in Spanish (before consent).
                await fake.wait_for(lambda u=user: len(u.messages) == 5, timeout=10)
                assert user.messages[-2].text == tx("setup.language_set", "es")
        finally:
            proc.send_signal(signal.SIGINT)
            out, _ = await asyncio.wait_for(proc.communicate(), 30)
        log = out.decode()
        assert "bot starting" in log
        assert TOKEN not in log and TOKEN.split(":")[1] not in log
        assert not fake.errors
