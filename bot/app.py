"""build_application(settings): the one place that wires the bot together."""

from __future__ import annotations

import logging
import time

from sqlalchemy.ext.asyncio import AsyncEngine
from telegram import Update
from telegram.constants import ParseMode
from telegram.ext import (
    ApplicationBuilder,
    CallbackQueryHandler,
    ChatMemberHandler,
    CommandHandler,
    ContextTypes,
    Defaults,
    MessageHandler,
    TypeHandler,
    filters,
)

from bot.clock import Clock
from bot.config import FREE_RATE, Settings
from bot.context import BotApp, BotData, Ctx
from bot.db.session import create_engine, make_session_factory
from bot.fairness import FairUpdateProcessor, UpdateQueue
from bot.handlers import (
    checkin,
    general,
    habit,
    plan,
    progress,
    settings,
    setup,
    start,
    therapist,
    tips,
    workspace,
)
from bot.handlers.menus import menu_commands
from bot.handlers.throttle import slow_down
from bot.i18n import SUPPORTED_LOCALES
from bot.ratelimit import PriorityRateLimiter
from bot.scheduling.dispatcher import Dispatcher
from bot.scheduling.leader import Leadership

log = logging.getLogger(__name__)


def build_application(
    settings_: Settings, *, clock: Clock | None = None, engine: AsyncEngine | None = None
) -> BotApp:
    """The Application with every handler, the database and the clock; nothing started yet."""
    own_engine = engine is None
    engine = engine or create_engine(settings_.database_url)
    processor = FairUpdateProcessor(
        workers=settings_.update_workers,
        budget=settings_.user_command_budget,
        window=settings_.user_command_window_seconds,
    )
    builder = (
        ApplicationBuilder()
        .token(settings_.telegram_bot_token.get_secret_value())
        .base_url(settings_.bot_api_url)
        .base_file_url(settings_.bot_file_url)
        .context_types(ContextTypes(context=Ctx, bot_data=BotData))
        .defaults(Defaults(parse_mode=ParseMode.HTML))
        # Bounded: a burst beyond this waits (polling) or gets 503 (webhook; Telegram retries)
        # instead of growing memory without limit.
        .update_queue(UpdateQueue(maxsize=settings_.update_queue_size))
        # Concurrent across users, one at a time per user, a per-user command budget.
        .concurrent_updates(processor)
        .post_init(_post_init)
        .post_stop(_post_stop)
        .post_shutdown(_dispose_engine if own_engine else None)
    )
    if settings_.send_rate_per_second:
        rate = settings_.send_rate_per_second
        if settings_.allow_paid_broadcast:  # the fan-out pays for up to `rate`; the rest is free
            limiter = PriorityRateLimiter(min(rate, FREE_RATE), paid_rate=rate)
        else:
            limiter = PriorityRateLimiter(rate)
        builder = builder.rate_limiter(limiter)
    app: BotApp = builder.build()
    app.bot_data.settings = settings_
    app.bot_data.sessions = make_session_factory(engine)
    app.bot_data.clock = clock or Clock()
    app.bot_data.engine = engine
    app.bot_data.dispatcher = Dispatcher(
        app.bot, app.bot_data.sessions, settings_, app.bot_data.clock
    )
    app.bot_data.dispatcher.on_progress = lambda: _heartbeat(app)
    app.bot_data.leader = Leadership(engine)
    processor.on_throttled = lambda update: slow_down(update, app)
    register_handlers(app)
    return app


def schedule_jobs(app: BotApp) -> None:
    """The dispatcher tick. Not per patient: one job claims whatever is due in the database.

    misfire_grace_time=None: a late tick is still worth running (it is idempotent), and
    coalesce/max_instances=1 keep a slow tick from piling up copies of itself.
    """
    app.job_queue.run_repeating(
        _tick,
        interval=app.bot_data.settings.dispatch_interval_seconds,
        first=1,
        name="dispatcher",
        job_kwargs={"misfire_grace_time": None, "coalesce": True, "max_instances": 1},
    )
    # The weekly therapist digest: its own job, so a long Monday round never delays reminders.
    from bot.scheduling.digest import schedule_weekly_digest

    schedule_weekly_digest(app)
    # The weekly programme review (issue 17): one job claims due programmes in the database.
    from bot.scheduling.reviews import schedule_weekly_reviews

    schedule_weekly_reviews(app)


def _heartbeat(app: BotApp) -> None:
    """The dispatcher is alive (read by /healthz): at every tick and during a long fan-out."""
    app.bot_data.last_tick = time.monotonic()


async def _tick(context: Ctx) -> None:
    """Every replica ticks (and stays healthy); only the leader sends (one limit overall)."""
    context.bot_data.last_tick = time.monotonic()
    if await context.bot_data.leader.is_leader():
        await context.bot_data.dispatcher.tick()


def register_handlers(app: BotApp) -> None:
    """Every handler, in an order that matters."""
    # Group -1 runs first for every update: groups and channels are answered and stopped here,
    # so no later handler can store anything about them.
    app.add_handler(TypeHandler(Update, general.private_only), group=-1)

    # Note: order matters! Commands first, then buttons by prefix, then free text and content.
    app.add_handler(CommandHandler("start", start.start))
    app.add_handler(CommandHandler("help", settings.help_command))
    app.add_handler(CommandHandler("language", settings.language))
    app.add_handler(CommandHandler("settings", settings.settings_menu))
    app.add_handler(CommandHandler("pause", settings.pause_command))
    app.add_handler(CommandHandler("resume", settings.resume_command))
    app.add_handler(CommandHandler("privacy", settings.privacy))
    app.add_handler(CommandHandler("pain", checkin.pain_command))
    app.add_handler(CommandHandler("log", checkin.log_command))
    app.add_handler(CommandHandler("plan", plan.plan_command))
    app.add_handler(CommandHandler("tip", tips.tip))
    app.add_handler(CommandHandler("source", tips.source))
    app.add_handler(CommandHandler("therapist", therapist.my_therapists))
    app.add_handler(CommandHandler("invite", therapist.invite))
    app.add_handler(CommandHandler("patients", workspace.patients_command))
    app.add_handler(CommandHandler("digest", therapist.digest_command))
    app.add_handler(CommandHandler("grant", therapist.grant))
    app.add_handler(CommandHandler("revoke_therapist", therapist.revoke_role))
    app.add_handler(CommandHandler("progress", progress.progress_command))
    app.add_handler(CommandHandler("export", progress.export_command))
    app.add_handler(CommandHandler("delete", progress.delete_command))

    app.add_handler(CallbackQueryHandler(start.on_consent, pattern=r"^consent:(yes|no)$"))
    app.add_handler(CallbackQueryHandler(start.restart_setup, pattern=r"^setup:restart$"))
    app.add_handler(CallbackQueryHandler(setup.on_button, pattern=r"^(lang|tz|time|days|day):"))
    app.add_handler(CallbackQueryHandler(settings.on_settings_button, pattern=r"^set:"))
    app.add_handler(CallbackQueryHandler(settings.on_pause_button, pattern=r"^pause:"))
    app.add_handler(CallbackQueryHandler(checkin.on_button, pattern=r"^ci:"))
    app.add_handler(CallbackQueryHandler(checkin.on_pain_button, pattern=r"^pain:"))
    app.add_handler(CallbackQueryHandler(habit.on_button, pattern=r"^hb:"))
    app.add_handler(CallbackQueryHandler(therapist.on_button, pattern=r"^tl:"))
    app.add_handler(CallbackQueryHandler(workspace.on_button, pattern=r"^tw:"))
    app.add_handler(CallbackQueryHandler(progress.on_delete_button, pattern=r"^del:"))
    app.add_handler(CallbackQueryHandler(plan.on_button, pattern=r"^pl:"))
    app.add_handler(CallbackQueryHandler(plan.on_therapist_button, pattern=r"^tplan:"))
    # Anything else pressed (forged data, buttons of a removed feature) gets an answer.
    app.add_handler(CallbackQueryHandler(general.on_unknown_button))

    app.add_handler(ChatMemberHandler(general.on_member_change, ChatMemberHandler.MY_CHAT_MEMBER))

    private = filters.ChatType.PRIVATE
    app.add_handler(MessageHandler(filters.UpdateType.EDITED_MESSAGE, general.on_edited))
    app.add_handler(MessageHandler(private & filters.COMMAND, general.on_unknown_command))
    app.add_handler(MessageHandler(private & filters.TEXT, general.on_text))
    app.add_handler(MessageHandler(private & filters.LOCATION, general.on_location))
    app.add_handler(MessageHandler(private & ~filters.StatusUpdate.ALL, general.on_other))

    app.add_error_handler(general.on_error)
    checkin.register_text_routes()
    workspace.register_text_routes()


async def _post_init(app: BotApp) -> None:
    """The jobs, and the command menu in every language (and English as the default).

    Polling and webhook mode both run this (bot/webhook.py serve)."""
    app.bot_data.started_at = time.monotonic()
    if app.bot_data.run_jobs:
        schedule_jobs(app)
    for locale in (*SUPPORTED_LOCALES, None):
        await app.bot.set_my_commands(menu_commands(locale or "en"), language_code=locale)
    # Therapists granted from the command line (or who changed language) get their own menu.
    await workspace.refresh_stale_menus(app.bot, app.bot_data.sessions)


async def _post_stop(app: BotApp) -> None:
    """Jobs have stopped: hand the leader lock over at once rather than when the process ends."""
    if app.bot_data.leader is not None:
        await app.bot_data.leader.release()


async def _dispose_engine(app: BotApp) -> None:
    if app.bot_data.engine is not None:
        await app.bot_data.engine.dispose()
