"""Command line: python -m bot run | migrate | therapist add|remove <telegram_user_id> | demo."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from bot.config import ENV_FILE, ConfigError, Settings, load_settings

log = logging.getLogger("bot")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bot",
        description="An exercise-habit companion for people with chronic pain, on Telegram. "
        "Configured by environment variables (see README.md and .env.example).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser(
        "run",
        help="apply pending database migrations, then run the bot (long polling)",
        description="Apply pending migrations, then run the bot until interrupted. Needs "
        "TELEGRAM_BOT_TOKEN; TELEGRAM_API_BASE_URL may name a self-hosted or test Bot API server.",
    )
    sub.add_parser(
        "migrate",
        help="apply pending database migrations and exit",
        description="Bring DATABASE_URL's schema to the newest Alembic revision.",
    )
    therapist = sub.add_parser(
        "therapist",
        help="grant or remove the therapist role",
        description="Grant or remove the therapist role for a Telegram user id "
        "(the number Telegram shows as the user's id, not the @username).",
    )
    therapist.add_argument("action", choices=("add", "remove"))
    therapist.add_argument("telegram_user_id", type=int)
    from bot.i18n import SUPPORTED_LOCALES

    demo = sub.add_parser(
        "demo",
        help="try the bot in this terminal: no token, no network, a throw-away database",
        description="Chat with the real bot in this terminal, against a local Telegram Bot API "
        "emulator, on a temporary SQLite database. Type :help inside for the demo commands.",
    )
    demo.add_argument(
        "--out",
        default="demo-output",
        metavar="DIR",
        help="where photos and documents the bot sends are saved (default: ./demo-output)",
    )
    demo.add_argument(
        "--lang",
        default="en",
        choices=SUPPORTED_LOCALES,
        help="the language your Telegram app reports (default: en)",
    )
    demo.add_argument(
        "--start",
        metavar="ISO",
        help="the bot clock's first instant, e.g. 2026-11-23T07:00Z "
        "(default: Monday 07:00 UTC of this week)",
    )
    return parser


async def _migrate(settings: Settings) -> None:
    from bot.db.migrate import upgrade
    from bot.db.session import create_engine

    engine = create_engine(settings.database_url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


async def _therapist(settings: Settings, action: str, telegram_id: int) -> str:
    from bot.db.session import create_engine, make_session_factory, transaction
    from bot.services import therapists

    await _migrate(settings)
    engine = create_engine(settings.database_url)
    try:
        async with transaction(make_session_factory(engine)) as session:
            if action == "add":
                changed = await therapists.grant(session, telegram_id)
                return f"{telegram_id} is {'now' if changed else 'already'} a therapist"
            changed = await therapists.revoke(session, telegram_id)
            return f"{telegram_id} {'is no longer' if changed else 'was not'} a therapist"
    finally:
        await engine.dispose()


def _ensure_sqlite_dir(settings: Settings) -> None:
    path = settings.sqlite_path()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)


def run_bot(settings: Settings) -> int:
    """Polling or webhook mode, with the same start-up and shutdown (bot/webhook.py serve)."""
    from telegram.error import InvalidToken

    from bot.app import build_application
    from bot.i18n import load_locales
    from bot.webhook import run

    asyncio.run(_migrate(settings))
    load_locales()
    app = build_application(settings)
    mode = "webhook" if settings.webhook_url else "polling"
    log.info("bot starting mode=%s api=%s", mode, settings.telegram_api_base_url)
    try:
        run(app, settings)
    except InvalidToken:
        # One line for the operator; the token itself is never printed.
        print("error: Telegram rejected TELEGRAM_BOT_TOKEN", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "demo":  # needs no settings from the environment: it makes its own
        from bot.demo import main as demo_main

        return demo_main(args)
    try:
        settings = load_settings(ENV_FILE) if args.command == "run" else _settings_without_token()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from bot.logging_setup import configure

    configure(settings.log_level, settings.telegram_bot_token.get_secret_value())
    _ensure_sqlite_dir(settings)
    if args.command == "run":
        return run_bot(settings)
    if args.command == "migrate":
        asyncio.run(_migrate(settings))
        print("database is up to date")
    elif args.command == "therapist":
        print(asyncio.run(_therapist(settings, args.action, args.telegram_user_id)))
    return 0


def _settings_without_token() -> Settings:
    """migrate and therapist work on the database only: the token may be absent."""
    from dotenv import dotenv_values

    if os.environ.get("TELEGRAM_BOT_TOKEN") or dotenv_values(ENV_FILE).get("TELEGRAM_BOT_TOKEN"):
        return load_settings(ENV_FILE)
    return load_settings(ENV_FILE, telegram_bot_token="0:offline")


if __name__ == "__main__":
    sys.exit(main())
