"""Fair update processing: concurrent across users, one at a time per user, a command budget.

PTB handles updates one after another unless ``concurrent_updates`` is set; then it runs them
side by side with no regard for who sent them, so one user's 60 /export commands would fill
every slot. This processor (a ``telegram.ext.BaseUpdateProcessor``):

- runs different users' updates concurrently (at most ``workers`` at once);
- runs one user's updates one at a time, in arrival order (a per-user lock: their check-in
  answers, edits and commands never race each other, and one user holds one worker at most);
- gives each user a budget of ``budget`` commands per ``window`` seconds: the next command
  gets one polite "slow down" (``on_throttled``) and the ones after it are dropped in silence
  until the window has room again. Button presses and plain text are not budgeted (they are
  serialized per user, so a flood of them only delays its sender).

The budget is checked before the update waits for anything, so a flooding user's excess never
occupies a slot of PTB's own semaphore (``max_pending``); and one user never has more than
``max_per_user`` updates waiting (a flood of buttons or text beyond that is dropped), so no
single user can fill the in-flight slots of ``UpdateQueue``.

With ``concurrent_updates`` PTB takes every update off its queue at once and makes it a task,
so a ``maxsize`` on the queue alone bounds nothing. ``UpdateQueue`` hands out at most
``in_flight`` updates that have not finished yet (PTB calls ``task_done`` when one has): past
that the queue fills up, and then the webhook answers 503 (Telegram retries) and polling waits.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from telegram import Update
from telegram.ext import BaseUpdateProcessor

log = logging.getLogger(__name__)


class UpdateQueue(asyncio.Queue):
    """An update queue that gives PTB's update fetcher at most ``in_flight`` unfinished updates."""

    def __init__(self, maxsize: int, in_flight: int = 256) -> None:
        super().__init__(maxsize)
        self._slots = asyncio.Semaphore(in_flight)

    async def get(self) -> Any:
        await self._slots.acquire()
        try:
            return await super().get()
        except BaseException:
            self._slots.release()
            raise

    def task_done(self) -> None:
        """PTB: this update has been handled (or the stop signal was taken)."""
        super().task_done()
        self._slots.release()


def user_key(update: object) -> int | None:
    if isinstance(update, Update) and update.effective_user is not None:
        return update.effective_user.id
    return None


def is_command(update: object) -> bool:
    message = update.message if isinstance(update, Update) else None
    return bool(message and message.text and message.text.startswith("/"))


class FairUpdateProcessor(BaseUpdateProcessor):
    def __init__(
        self,
        *,
        workers: int = 16,
        budget: int = 10,
        window: float = 10.0,
        on_throttled: Callable[[Update], Awaitable[None]] | None = None,
        max_pending: int = 512,
        max_per_user: int = 20,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(max_concurrent_updates=max_pending)
        self.workers = workers
        self.budget = budget
        self.window = window
        self.on_throttled = on_throttled
        self.clock = clock
        self.max_per_user = max_per_user
        self._workers = asyncio.Semaphore(workers)
        self._locks: dict[int, asyncio.Lock] = {}
        self._users_waiting: dict[int, int] = {}
        self._commands: dict[int, deque[float]] = {}
        self._warned: set[int] = set()
        self.dropped = 0

    async def initialize(self) -> None:
        """Nothing to allocate."""

    async def shutdown(self) -> None:
        """Nothing to free: PTB awaits the updates in flight before calling this."""

    def allow(self, key: int) -> bool | None:
        """True: within budget. False: over it, say "slow down" once. None: over, be silent."""
        now = self.clock()
        recent = self._commands.setdefault(key, deque())
        while recent and now - recent[0] >= self.window:
            recent.popleft()
        if len(recent) < self.budget:
            recent.append(now)
            self._warned.discard(key)
            if len(self._commands) > 10_000:
                self._forget(now)
            return True
        if key in self._warned:
            return None
        self._warned.add(key)
        return False

    def _forget(self, now: float) -> None:
        for key in [k for k, q in self._commands.items() if not q or now - q[-1] >= self.window]:
            del self._commands[key]
            self._warned.discard(key)

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        key = user_key(update)
        if key is None:
            async with self._workers:
                await coroutine
            return
        if is_command(update):
            verdict = self.allow(key)
            if verdict is not True:
                _discard(coroutine)
                self.dropped += 1
                if verdict is False:
                    log.info("throttled user_budget=%s window=%.0f", self.budget, self.window)
                    await self._say_slow_down(update)
                return
        if self._users_waiting.get(key, 0) >= self.max_per_user:
            _discard(coroutine)  # a flood: this user already has plenty waiting
            self.dropped += 1
            log.info("dropped update: user_pending=%s", self.max_per_user)
            return
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        self._users_waiting[key] = self._users_waiting.get(key, 0) + 1
        try:
            async with lock, self._workers:
                await coroutine
        finally:
            left = self._users_waiting[key] - 1
            if left:
                self._users_waiting[key] = left
            else:  # nobody else of theirs waiting: forget the lock
                del self._users_waiting[key]
                del self._locks[key]

    async def _say_slow_down(self, update: object) -> None:
        if self.on_throttled is None or not isinstance(update, Update):
            return
        try:
            async with self._workers:
                await self.on_throttled(update)
        except Exception:  # noqa: BLE001 - a failed "slow down" must not reach PTB
            log.warning("could not send the slow-down message", exc_info=True)


def _discard(coroutine: Awaitable[Any]) -> None:
    """A dropped update's coroutine is closed, not left to warn "never awaited"."""
    close = getattr(coroutine, "close", None)
    if close is not None:
        close()
