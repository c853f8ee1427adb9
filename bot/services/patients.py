"""Patients: who they are, their language, consent, pause; and the next reminder they will get."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Schedule, User
from bot.i18n import normalize_locale
from bot.services.schedule_rules import next_due

# Bump when the consent text changes in a way that needs asking again.
CONSENT_VERSION = "2026-11"


async def get_user(session: AsyncSession, telegram_id: int) -> User | None:
    return await session.scalar(select(User).where(User.telegram_id == telegram_id))


async def language_of(session: AsyncSession, telegram_id: int) -> str | None:
    """Only the chosen language of a Telegram user (one indexed column), or None if unknown."""
    return await session.scalar(select(User.language).where(User.telegram_id == telegram_id))


async def ensure_user(
    session: AsyncSession, telegram_id: int, language_code: str | None
) -> tuple[User, bool]:
    """The user row for a Telegram id, created with only the id and language if new."""
    user = await get_user(session, telegram_id)
    if user is not None:
        user.active = True  # they wrote to us, so they have not blocked the bot (any more)
        return user, False
    user = User(telegram_id=telegram_id, language=normalize_locale(language_code), active=True)
    session.add(user)
    await session.flush()
    return user, True


def give_consent(user: User, now: datetime) -> None:
    user.consent_at = now
    user.consent_version = CONSENT_VERSION


def set_state(user: User, state: str | None, data: dict | None = None) -> None:
    """Move the patient's conversation to ``state`` (stored in the database, survives restarts)."""
    user.conv_state = state
    user.conv_data = data


def drop_open_question(user: User) -> None:
    """A check-in question takes over from an unanswered /settings edit or /pain, so a typed
    score is not read as a reminder time or a standalone score."""
    state = user.conv_state or ""
    if state == "pain" or state.startswith("edit:"):
        set_state(user, None)


def pause(user: User, now: datetime, until: date | None) -> None:
    from bot.services import habit  # noqa: PLC0415 - habit reads users; no cycle at import

    habit.note_response(user, now, "pause")  # choosing a pause is an answer, not silence
    user.paused_at = now
    user.paused_until = until


def resume(user: User) -> None:
    user.paused_at = None
    user.paused_until = None


def local_today(user: User, now: datetime) -> date:
    return now.astimezone(ZoneInfo(user.timezone or "UTC")).date()


def is_paused(user: User, now: datetime) -> bool:
    if user.paused_at is None:
        return False
    return user.paused_until is None or local_today(user, now) <= user.paused_until


async def schedules_of(session: AsyncSession, user: User) -> list[Schedule]:
    rows = await session.scalars(
        select(Schedule).where(Schedule.user_id == user.id).order_by(Schedule.local_time)
    )
    return list(rows)


async def next_reminder(session: AsyncSession, user: User, now: datetime) -> datetime | None:
    """When the next prompt will really go out: after any pause, None if none will."""
    if not user.timezone or user.setup_done_at is None:
        return None
    after = now
    if user.paused_at is not None:
        if user.paused_until is None:
            return None
        end = datetime.combine(
            user.paused_until + timedelta(days=1), time(0), ZoneInfo(user.timezone)
        )
        after = max(now, end)
    pairs = [(s.local_time, s.days) for s in await schedules_of(session, user)]
    return next_due(pairs, user.timezone, after)


def zone_of(user: User) -> ZoneInfo:
    return ZoneInfo(user.timezone or "UTC")
