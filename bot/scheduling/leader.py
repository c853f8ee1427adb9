"""One replica at a time sends the bulk fan-out and the digests (PostgreSQL advisory lock).

Telegram's ~30 messages/s is per bot, not per process: two replicas each with their own
limiter would send up to 60/s. So the dispatcher and digest jobs run on every replica, but
only the one holding a session-level ``pg_try_advisory_lock`` on a dedicated connection does
the work. When that replica dies, its connection closes, PostgreSQL releases the lock, and
another replica takes it at its next tick (within one dispatch interval). Updates (patients'
own replies) are answered by every replica.

On SQLite there is one process by construction: always the leader, no lock.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger(__name__)

# An arbitrary, fixed 64-bit key ("PainCoach" + 1; migrations use + 2, bot/db/migrate.py).
LEADER_LOCK_KEY = 0x5061696E436F01


class Leadership:
    """``await is_leader()`` before a round of bulk work; ``await release()`` on the way out."""

    def __init__(self, engine: AsyncEngine, key: int = LEADER_LOCK_KEY) -> None:
        self.engine = engine
        self.key = key
        self.shared = engine.dialect.name == "postgresql"
        self._conn: AsyncConnection | None = None
        self._busy = asyncio.Lock()  # the dispatcher and digest jobs share one connection

    @property
    def held(self) -> bool:
        return not self.shared or self._conn is not None

    async def is_leader(self) -> bool:
        """True if this process may send the bulk work now (takes the lock when it is free)."""
        if not self.shared:
            return True
        async with self._busy:
            return await self._check()

    async def _check(self) -> bool:
        if self._conn is not None:
            try:  # still ours only while our connection lives
                await self._conn.execute(text("SELECT 1"))
                return True
            except Exception as exc:  # noqa: BLE001 - a dead connection means a lost lock
                log.warning("leader=lost reason=%s", type(exc).__name__)
                await self._drop()
                return False
        conn = None
        try:
            conn = await self.engine.connect()
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            got = (
                await conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key})
            ).scalar()
        except Exception as exc:  # noqa: BLE001 - database down: not leader this tick
            log.warning("leader=unknown reason=%s", type(exc).__name__)
            if conn is not None:
                await _close(conn, invalidate=True)
            return False
        if not got:
            await conn.close()
            return False
        self._conn = conn
        log.info("leader=acquired")
        return True

    async def release(self) -> None:
        """Give the lock up now (shutdown), so another replica takes over at its next tick."""
        async with self._busy:
            await self._release()

    async def _release(self) -> None:
        if self._conn is None:
            return
        try:
            await self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
            await self._conn.close()
        except Exception:  # noqa: BLE001 - closing the connection releases it anyway
            await self._drop()
            return
        self._conn = None
        log.info("leader=released")

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await _close(conn, invalidate=True)


async def _close(conn: AsyncConnection, *, invalidate: bool) -> None:
    """Close for real (invalidate): a pooled connection would keep a session lock alive."""
    try:
        if invalidate:
            await conn.invalidate()
        await conn.close()
    except Exception:  # noqa: BLE001 - already gone
        pass
