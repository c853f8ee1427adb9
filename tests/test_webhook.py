"""Webhook mode: the same start-up as polling (jobs, menus), the secret token, /healthz, and
only real updates reach the bot."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import httpx

from bot.app import build_application
from bot.config import load_settings
from bot.context import BotApp
from bot.db.models import Schedule, User
from bot.webhook import SECRET_HEADER, serve
from tests.conftest import T0, TEST_TOKEN, tx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@asynccontextmanager
async def running_bot(
    fake, engine, clock, *, webhook: bool = True, **overrides: object
) -> AsyncIterator[tuple[BotApp, str]]:
    """The bot as `python -m bot run` runs it (real JobQueue), until the block ends."""
    port = free_port()
    mode = (
        {"webhook_url": "https://bot.example.org/tg/hook", "webhook_listen": "127.0.0.1"}
        if webhook
        else {"health_listen": "127.0.0.1"}
    )
    settings = load_settings(
        telegram_bot_token=TEST_TOKEN,
        telegram_api_base_url=fake.api_base_url,
        database_url=engine.url.render_as_string(hide_password=False),
        **{"webhook_port" if webhook else "health_port": port},
        **mode,
        **overrides,
    )
    app = build_application(settings, clock=clock, engine=engine)
    stop = asyncio.Event()
    server = asyncio.create_task(serve(app, settings, stop))
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(200):
                try:
                    await client.get(f"{base}/healthz")
                    break
                except httpx.ConnectError:
                    assert not server.done(), server.exception()
                    await asyncio.sleep(0.05)
        yield app, base
    finally:
        stop.set()
        await asyncio.wait_for(server, 8)  # SIGTERM budget: Docker kills after 10 s


async def add_due_patient(sessions, telegram_id: int, language: str = "da") -> None:
    async with sessions() as s, s.begin():
        user = User(
            telegram_id=telegram_id,
            language=language,
            timezone="Europe/Copenhagen",
            consent_at=T0 - timedelta(days=30),
            setup_done_at=T0 - timedelta(days=30),
        )
        s.add(user)
        await s.flush()
        s.add(Schedule(user_id=user.id, local_time="07:59", next_due_at=T0 - timedelta(minutes=1)))


async def test_webhook_checks_the_secret_and_serves_health(fake, engine, sessions, clock):
    user = fake.user(8001, "Ana", language_code="da")
    fake.deliver = None  # updates reach the bot only through the webhook below
    async with running_bot(fake, engine, clock) as (_app, base), httpx.AsyncClient() as client:
        health = await client.get(f"{base}/healthz")
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
        # JSON that is not an update is refused with 400 (not a 500 and a traceback).
        for junk in ([1, 2], {"foo": 1}, {"update_id": "x", "message": {}}, 7, {"update_id": 5}):
            bad = await client.post(f"{base}/tg/hook", json=junk, headers={SECRET_HEADER: secret})
            assert bad.status_code == 400, junk
        accepted = await client.post(
            f"{base}/tg/hook", json=update, headers={SECRET_HEADER: secret}
        )
        assert accepted.status_code == 200
        await fake.wait_for(lambda: user.last is not None, timeout=10)
        assert tx("start.greeting", "da", name="Ana") in user.last.text
    assert len(user.messages) == 1  # the refused copies did nothing


async def test_webhook_mode_sends_due_prompts_and_sets_the_menus(fake, engine, sessions, clock):
    """The bug: webhook mode started the Application by hand, so post_init (the dispatcher
    job, the command menus) never ran and not one prompt went out."""
    patient = fake.user(8101, "Bo", language_code="da")
    await add_due_patient(sessions, 8101)
    async with running_bot(fake, engine, clock, dispatch_interval_seconds=0.2) as (app, base):
        await fake.wait_for(lambda: patient.last is not None, timeout=10)
        assert patient.last.text.startswith(tx("checkin.prompt", "da"))
        assert fake.calls_of("setMyCommands"), "command menus are registered in webhook mode"
        assert app.bot_data.last_tick is not None
    assert len(patient.messages) == 1  # prompted exactly once


async def test_healthz_fails_when_the_dispatcher_stops_ticking(fake, engine, sessions, clock):
    async with running_bot(fake, engine, clock, dispatch_interval_seconds=0.2) as (app, base):
        async with httpx.AsyncClient() as client:
            await fake.wait_for(lambda: app.bot_data.last_tick is not None, timeout=10)
            assert (await client.get(f"{base}/healthz")).status_code == 200
            app.job_queue.get_jobs_by_name("dispatcher")[0].enabled = False  # a stuck tick
            statuses: list[int] = []

            async def poll() -> None:
                statuses.append((await client.get(f"{base}/healthz")).status_code)

            async def stalled() -> bool:
                await poll()
                return statuses[-1] == 503

            for _ in range(100):
                if await stalled():
                    break
                await asyncio.sleep(0.05)
            assert statuses[-1] == 503
            body = (await client.get(f"{base}/healthz")).json()
            assert body["status"] == "dispatcher stalled"


async def test_polling_mode_serves_health_and_runs_the_same_start_up(fake, engine, sessions, clock):
    patient = fake.user(8102, "Ana", language_code="es")
    await add_due_patient(sessions, 8102, "es")
    fake.deliver = None  # the bot long-polls the fake
    async with running_bot(fake, engine, clock, webhook=False, dispatch_interval_seconds=0.2) as (
        _app,
        base,
    ):
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"{base}/healthz")).status_code == 200
        await fake.wait_for(lambda: patient.last is not None, timeout=10)
        assert fake.calls_of("setMyCommands")
        await patient.send("/help")
        await fake.wait_for(lambda: len(patient.messages) == 2, timeout=10)


async def test_a_full_update_queue_answers_503_so_telegram_retries(
    fake, engine, sessions, clock, monkeypatch
):
    from aiohttp.test_utils import TestServer

    import bot.webhook as webhook

    monkeypatch.setattr(webhook, "QUEUE_PUT_TIMEOUT", 0.2)
    settings = load_settings(
        telegram_bot_token=TEST_TOKEN,
        telegram_api_base_url=fake.api_base_url,
        database_url=engine.url.render_as_string(hide_password=False),
        webhook_url="https://bot.example.org/tg/hook",
        update_queue_size=1,
    )
    app = build_application(settings, clock=clock, engine=engine)  # not started: nothing drains
    server = TestServer(webhook.make_web_app(app, settings))
    await server.start_server()
    headers = {SECRET_HEADER: settings.webhook_secret_value}
    update = {
        "update_id": 1,
        "message": {"message_id": 1, "date": 0, "chat": {"id": 1, "type": "private"}},
    }
    try:
        async with httpx.AsyncClient(base_url=str(server.make_url(""))) as client:
            first = await client.post("/tg/hook", json=update, headers=headers)
            second = await client.post("/tg/hook", json=update, headers=headers)
    finally:
        await server.close()
    assert (first.status_code, second.status_code) == (200, 503)
    assert app.update_queue.qsize() == 1
