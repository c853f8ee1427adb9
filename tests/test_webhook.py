"""Webhook mode: the secret token is checked on every request, /healthz reports the database."""

from __future__ import annotations

import asyncio
import socket

import httpx

from bot.app import build_application
from bot.config import load_settings
from bot.webhook import SECRET_HEADER, serve
from tests.conftest import TEST_TOKEN, tx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_webhook_checks_the_secret_and_serves_health(fake, engine, sessions, clock):
    port = free_port()
    settings = load_settings(
        telegram_bot_token=TEST_TOKEN,
        telegram_api_base_url=fake.api_base_url,
        database_url=engine.url.render_as_string(hide_password=False),
        webhook_url="https://bot.example.org/tg/hook",
        webhook_listen="127.0.0.1",
        webhook_port=port,
    )
    app = build_application(settings, clock=clock, engine=engine)
    stop = asyncio.Event()
    server = asyncio.create_task(serve(app, settings, stop))
    user = fake.user(8001, "Ana", language_code="da")
    fake.deliver = None  # updates reach the bot only through the webhook below
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(100):
                try:
                    health = await client.get(f"{base}/healthz")
                    break
                except httpx.ConnectError:
                    await asyncio.sleep(0.05)
            assert health.status_code == 200 and health.json()["status"] == "ok"
            assert fake.calls_of("setWebhook")[-1]["url"] == "https://bot.example.org/tg/hook"
            secret = fake.calls_of("setWebhook")[-1]["secret_token"]
            await user.send("/start")  # queued in the fake: we forward it as Telegram would
            update = fake.updates[-1]
            refused = await client.post(
                f"{base}/tg/hook", json=update, headers={SECRET_HEADER: "guess"}
            )
            assert refused.status_code == 403
            missing = await client.post(f"{base}/tg/hook", json=update)
            assert missing.status_code == 403
            accepted = await client.post(
                f"{base}/tg/hook", json=update, headers={SECRET_HEADER: secret}
            )
            assert accepted.status_code == 200
            await fake.wait_for(lambda: user.last is not None, timeout=10)
            assert tx("start.greeting", "da", name="Ana") in user.last.text
    finally:
        stop.set()
        await asyncio.wait_for(server, 30)
    assert len(user.messages) == 1  # the refused copies did nothing
