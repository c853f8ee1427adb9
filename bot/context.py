"""The typed CallbackContext every handler receives, and the shared objects it carries."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from telegram.ext import Application, CallbackContext, ExtBot

from bot.clock import Clock
from bot.config import Settings
from bot.db.session import SessionFactory


@dataclass
class BotData:
    """Everything a handler or job needs; filled in once by ``build_application``."""

    settings: Settings | None = None
    sessions: SessionFactory | None = None
    engine: AsyncEngine | None = None
    dispatcher: Any = None  # bot.scheduling.dispatcher.Dispatcher (no import: avoids a cycle)
    # Tests drive the dispatcher by hand with a manual clock; `run` schedules it as a job.
    run_jobs: bool = True
    clock: Clock = field(default_factory=Clock)
    rng: random.Random = field(default_factory=random.Random)
    # Health: when the app started and when the dispatcher job last ticked (time.monotonic()).
    started_at: float | None = None
    last_tick: float | None = None
    # bot.scheduling.leader.Leadership: whether this replica sends the bulk work.
    leader: Any = None


class Ctx(CallbackContext[ExtBot, dict, dict, BotData]):
    """``context.settings`` instead of ``context.bot_data["settings"]`` plus a cast."""

    @property
    def settings(self) -> Settings:
        assert self.bot_data.settings is not None
        return self.bot_data.settings

    @property
    def sessions(self) -> SessionFactory:
        assert self.bot_data.sessions is not None
        return self.bot_data.sessions

    @property
    def engine(self) -> AsyncEngine:
        """For a statement that needs no ORM session (the everyday pain score, bar B4)."""
        assert self.bot_data.engine is not None
        return self.bot_data.engine

    @property
    def clock(self) -> Clock:
        return self.bot_data.clock


BotApp = Application[ExtBot, Ctx, dict, dict, BotData, object]
