"""The setup conversation as rules: which step comes next and what each answer changes.

State is ``User.conv_state`` = "<mode>:<step>", mode "setup" (first run, steps in order) or
"edit" (one step from /settings). Answers gathered during setup wait in ``conv_data`` and
become schedules only at the end, so an abandoned setup leaves no half-made reminders.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import User
from bot.i18n import SUPPORTED_LOCALES
from bot.services import patients, reminders
from bot.services.schedule_rules import ALL_DAYS, mask_days


class Step(StrEnum):
    LANGUAGE = "lang"
    TIMEZONE = "tz"
    TIMES = "time"
    DAYS = "days"
    CUSTOM_DAYS = "dayset"  # toggling single weekdays after "Choose days"


SETUP_ORDER = (Step.LANGUAGE, Step.TIMEZONE, Step.TIMES, Step.DAYS)


@dataclass(frozen=True)
class Position:
    mode: str  # "setup" | "edit"
    step: Step


@dataclass(frozen=True)
class Advance:
    """What happened after an answer: the step to ask next, or the end of setup / the edit."""

    next: Position | None
    finished_setup: bool = False


def position(user: User) -> Position | None:
    """Where the patient is in setup or an edit, if anywhere."""
    state = user.conv_state or ""
    mode, _, step = state.partition(":")
    if mode not in ("setup", "edit"):
        return None
    try:
        return Position(mode, Step(step))
    except ValueError:
        return None


def _go(user: User, pos: Position | None) -> Advance:
    data = dict(user.conv_data or {})
    patients.set_state(user, f"{pos.mode}:{pos.step}" if pos else None, data if pos else None)
    return Advance(pos)


def begin_setup(user: User, *, language_known: bool = False) -> Position:
    """Setup from its first step; from the time zone when the language is already known
    (Telegram's language is one we speak, or the patient chose one before consenting)."""
    step = Step.TIMEZONE if language_known else Step.LANGUAGE
    patients.set_state(user, f"setup:{step}", {})
    return Position("setup", step)


def begin_edit(user: User, step: Step) -> Position:
    data: dict = {}
    if step == Step.CUSTOM_DAYS:
        data["days"] = 0
    patients.set_state(user, f"edit:{step}", data)
    return Position("edit", step)


def cancel(user: User) -> None:
    """Leave an edit (setup answers are kept so /start can resume them)."""
    pos = position(user)
    if pos and pos.mode == "edit":
        patients.set_state(user, None)


def _after(user: User, pos: Position) -> Advance:
    if pos.mode == "edit":
        return _go(user, None)
    nxt = SETUP_ORDER[SETUP_ORDER.index(pos.step) + 1]
    return _go(user, Position("setup", nxt))


def set_data(user: User, **values: object) -> None:
    user.conv_data = {**(user.conv_data or {}), **values}


async def choose_language(session: AsyncSession, user: User, code: str, now: datetime) -> Advance:
    if code not in SUPPORTED_LOCALES:
        raise ValueError(code)
    user.language = code
    pos = position(user)
    if pos is None or pos.step != Step.LANGUAGE:
        return Advance(None)  # plain /language: no conversation to move on
    return _after(user, pos)


async def choose_timezone(session: AsyncSession, user: User, zone: str, now: datetime) -> Advance:
    user.timezone = zone
    pos = position(user) or Position("edit", Step.TIMEZONE)
    if pos.mode == "edit" and user.setup_done_at is not None:
        await reminders.reschedule_user(session, user, now)
    return _after(user, pos)


async def choose_times(
    session: AsyncSession, user: User, times: list[str], now: datetime
) -> Advance:
    pos = position(user) or Position("edit", Step.TIMES)
    if pos.mode == "edit" and user.setup_done_at is not None:
        current = await patients.schedules_of(session, user)
        days = current[0].days if current else ALL_DAYS
        await reminders.replace_schedules(session, user, times, days, now)
        return _after(user, pos)
    set_data(user, times=times)
    return _after(user, pos)


async def choose_days(session: AsyncSession, user: User, days: int, now: datetime) -> Advance:
    if days == 0:
        raise ValueError("no days")
    pos = position(user) or Position("edit", Step.DAYS)
    if pos.mode == "edit" and user.setup_done_at is not None:
        current = await patients.schedules_of(session, user)
        times = [s.local_time for s in current]
        await reminders.replace_schedules(session, user, times, days, now)
        return _go(user, None)
    times = (user.conv_data or {}).get("times") or []
    if not times:  # the times answer was lost (an old button): ask for it again
        return _go(user, Position("setup", Step.TIMES))
    await reminders.replace_schedules(session, user, times, days, now)
    user.setup_done_at = now
    patients.set_state(user, None)
    return Advance(None, finished_setup=True)


def start_custom_days(user: User) -> Position:
    pos = position(user)
    mode = pos.mode if pos else "edit"
    set_data(user, days=0)
    patients.set_state(user, f"{mode}:{Step.CUSTOM_DAYS}", user.conv_data)
    return Position(mode, Step.CUSTOM_DAYS)


def toggle_day(user: User, weekday: int) -> int:
    """Flip one weekday in the custom set being chosen; return the new mask."""
    mask = int((user.conv_data or {}).get("days", 0)) ^ (1 << weekday)
    set_data(user, days=mask)
    return mask


def custom_days(user: User) -> int:
    return int((user.conv_data or {}).get("days", 0))


def chosen_days(mask: int) -> list[int]:
    return mask_days(mask)
