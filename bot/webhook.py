"""Running the bot: one lifecycle for polling and webhook mode, a health endpoint for both.

``serve`` does what PTB's ``run_polling``/``run_webhook`` do (initialize, post_init, start;
then stop, post_stop, shutdown, post_shutdown), so both modes run the same start-up: the
dispatcher and digest jobs and the command menus (ARCHITECTURE.md "Telegram I/O"). We run it
ourselves because webhook mode needs our own aiohttp server (the secret check, /healthz, a
400 for bodies that are not updates), and polling mode serves /healthz on a local port too.

Telegram sends every update with the ``X-Telegram-Bot-Api-Secret-Token`` header set to the
``secret_token`` given in ``setWebhook``; a request without the right one is refused, so
nobody who learns the URL can inject updates (Bot API, setWebhook).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import signal
import time

from aiohttp import web
from sqlalchemy import text
from telegram import Update

from bot.config import Settings
from bot.context import BotApp

log = logging.getLogger(__name__)

ALLOWED_UPDATES = ["message", "edited_message", "callback_query", "my_chat_member"]
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# A full update queue answers 503 after this long: Telegram retries the update later.
QUEUE_PUT_TIMEOUT = 5.0
# SIGTERM to exit: Docker kills after 10 s; we give the work in flight this long.
STOP_TIMEOUT = 7.0
# /healthz fails when the dispatcher job has not ticked for this many intervals.
STALE_TICKS = 3


def is_update(data: object) -> bool:
    """A Bot API Update: an object with an integer update_id and at least one other field."""
    return (
        isinstance(data, dict)
        and isinstance(data.get("update_id"), int)
        and not isinstance(data.get("update_id"), bool)
        and len(data) > 1
    )


def health_status(app: BotApp) -> tuple[int, dict]:
    """(HTTP status, body) without the database check: the dispatcher's heartbeat."""
    data = app.bot_data
    if data.run_jobs and data.started_at is not None:
        interval = data.settings.dispatch_interval_seconds
        last = data.last_tick if data.last_tick is not None else data.started_at
        age = time.monotonic() - last
        if age > STALE_TICKS * interval:
            return 503, {"status": "dispatcher stalled", "seconds_since_tick": round(age, 1)}
    return 200, {"status": "ok", "running": app.running}


def make_web_app(app: BotApp, settings: Settings, *, updates: bool = True) -> web.Application:
    """Routes: POST <webhook path> for updates (webhook mode), GET /healthz for orchestrators."""
    secret = settings.webhook_secret_value.encode()

    async def receive(request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, secret):
            return web.Response(status=403, text="forbidden")
        try:
            data = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return web.Response(status=400, text="bad update")
        if not is_update(data):
            return web.Response(status=400, text="bad update")
        try:
            update = Update.de_json(data, app.bot)
        except Exception:  # noqa: BLE001 - malformed nested objects: not an update we can use
            log.warning("webhook: undecodable update")
            return web.Response(status=400, text="bad update")
        try:
            await asyncio.wait_for(app.update_queue.put(update), QUEUE_PUT_TIMEOUT)
        except TimeoutError:  # the queue is full: Telegram retries a non-2xx answer later
            log.warning("webhook: update queue full, answering 503")
            return web.Response(status=503, text="busy")
        return web.Response(text="ok")

    async def health(_request: web.Request) -> web.Response:
        try:
            async with app.bot_data.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception as exc:  # noqa: BLE001 - any database failure means unhealthy
            log.warning("health check: database unavailable: %s", type(exc).__name__)
            return web.json_response({"status": "database unavailable"}, status=503)
        status, body = health_status(app)
        return web.json_response(body, status=status)

    web_app = web.Application(client_max_size=1024 * 1024)
    if updates:
        web_app.router.add_post(settings.webhook_path, receive)
    web_app.router.add_get("/healthz", health)
    return web_app


async def serve(app: BotApp, settings: Settings, stop: asyncio.Event) -> None:
    """Run until ``stop`` is set, then stop taking updates and finish what is in flight.

    Webhook mode when ``settings.webhook_url`` is set, else long polling. Raises
    telegram.error.InvalidToken (from initialize) when Telegram rejects the token.
    """
    await app.initialize()  # getMe: a rejected token raises here
    runner: web.AppRunner | None = None
    started = False
    try:
        if app.post_init:
            await app.post_init(app)  # the jobs and command menus, as run_polling does
        webhook = bool(settings.webhook_url)
        if webhook or settings.health_port:
            runner = web.AppRunner(make_web_app(app, settings, updates=webhook), access_log=None)
            await runner.setup()
            if webhook:
                host, port = settings.webhook_listen, settings.webhook_port
            else:
                host, port = settings.health_listen, settings.health_port
            try:
                await web.TCPSite(runner, host, port).start()
                log.info("listening on %s:%s (%s)", host, port, "webhook" if webhook else "health")
            except OSError as exc:
                if webhook:  # no updates without it
                    raise
                # Polling still works; the orchestrator's health check will say so.
                log.error("health endpoint not served on %s:%s: %s", host, port, exc.strerror)
        if webhook:
            await app.bot.set_webhook(
                url=settings.webhook_url,
                secret_token=settings.webhook_secret_value,
                allowed_updates=ALLOWED_UPDATES,
            )
        else:  # deletes a webhook left by an earlier webhook-mode run before polling
            await app.updater.start_polling(allowed_updates=ALLOWED_UPDATES)
        await app.start()  # update processing and the JobQueue
        started = True
        await stop.wait()
    finally:
        await _stop(app, runner, started)


async def _stop(app: BotApp, runner: web.AppRunner | None, started: bool) -> None:
    """Stop within STOP_TIMEOUT: no new updates, the tick gives up its unsent prompts (their
    lease sends them again), the updates in flight finish; then the post_* hooks."""
    if runner is not None:
        await runner.cleanup()  # no new updates from here on
    if app.updater is not None and app.updater.running:
        await app.updater.stop()
    dispatcher = app.bot_data.dispatcher
    if dispatcher is not None:
        dispatcher.stopping = True
    if started and app.running:
        try:
            await asyncio.wait_for(app.stop(), STOP_TIMEOUT)
        except TimeoutError:
            log.warning("stop: work in flight did not finish within %.0f s", STOP_TIMEOUT)
        if app.post_stop:
            await app.post_stop(app)
    await app.shutdown()
    if app.post_shutdown:
        await app.post_shutdown(app)


def run(app: BotApp, settings: Settings) -> None:
    """Blocking entry point for `python -m bot run`: until SIGINT or SIGTERM."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(app, settings, stop)

    asyncio.run(main())
