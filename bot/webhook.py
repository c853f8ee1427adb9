"""Webhook mode (when WEBHOOK_URL is set): an aiohttp server for Telegram's updates and a
health endpoint, with a graceful shutdown that finishes the work in flight.

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

from aiohttp import web
from sqlalchemy import text
from telegram import Update

from bot.config import Settings
from bot.context import BotApp

log = logging.getLogger(__name__)

ALLOWED_UPDATES = ["message", "edited_message", "callback_query", "my_chat_member"]
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


def make_web_app(app: BotApp, settings: Settings) -> web.Application:
    """Routes: POST <webhook path> for updates, GET /healthz for orchestrators."""
    secret = settings.webhook_secret_value.encode()

    async def receive(request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, secret):
            return web.Response(status=403, text="forbidden")
        try:
            data = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return web.Response(status=400, text="bad update")
        await app.update_queue.put(Update.de_json(data, app.bot))
        return web.Response(text="ok")

    async def health(_request: web.Request) -> web.Response:
        try:
            async with app.bot_data.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception as exc:  # noqa: BLE001 - any database failure means unhealthy
            log.warning("health check: database unavailable: %s", exc)
            return web.json_response({"status": "database unavailable"}, status=503)
        return web.json_response({"status": "ok", "running": app.running})

    web_app = web.Application(client_max_size=1024 * 1024)
    web_app.router.add_post(settings.webhook_path, receive)
    web_app.router.add_get("/healthz", health)
    return web_app


async def serve(app: BotApp, settings: Settings, stop: asyncio.Event) -> None:
    """Run until ``stop`` is set, then stop taking updates and finish what is in flight."""
    await app.initialize()
    await app.start()  # update processing and the dispatcher job
    runner = web.AppRunner(make_web_app(app, settings), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.webhook_listen, settings.webhook_port)
    await site.start()
    await app.bot.set_webhook(
        url=settings.webhook_url,
        secret_token=settings.webhook_secret_value,
        allowed_updates=ALLOWED_UPDATES,
    )
    log.info("webhook mode: listening on %s:%s", settings.webhook_listen, settings.webhook_port)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()  # no new updates from here on
        await app.stop()  # handles queued updates, waits for a running dispatcher tick
        await app.shutdown()


def run_webhook(app: BotApp, settings: Settings) -> None:
    """Blocking entry point for `python -m bot run` with WEBHOOK_URL set."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(app, settings, stop)

    asyncio.run(main())
