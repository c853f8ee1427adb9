"""The therapist role: granted and removed by an operator, never by typing."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Therapist
from bot.services import patients


async def grant(session: AsyncSession, telegram_id: int) -> bool:
    """Make this Telegram user a therapist; False if they already were."""
    user, _ = await patients.ensure_user(session, telegram_id, None)
    if await session.scalar(select(Therapist.id).where(Therapist.user_id == user.id)):
        return False
    session.add(Therapist(user_id=user.id))
    await session.flush()
    return True


async def revoke(session: AsyncSession, telegram_id: int) -> bool:
    """Remove the role (and with it every link and invite of that therapist)."""
    user = await patients.get_user(session, telegram_id)
    if user is None:
        return False
    result = await session.execute(delete(Therapist).where(Therapist.user_id == user.id))
    return bool(result.rowcount)


async def is_therapist(session: AsyncSession, user_id: int) -> bool:
    return (
        await session.scalar(select(Therapist.id).where(Therapist.user_id == user_id)) is not None
    )
