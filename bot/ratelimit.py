"""Sending within Telegram's limits, with a patient's own replies ahead of scheduled fan-out.

Telegram allows about 30 messages per second overall and about one per second per chat, and
answers 429 with ``retry_after`` above that. PTB's AIORateLimiter holds 30.5/s on average
but lets about 62 through in its first second (a token bucket that starts full), and it
serves requests first come, first served: a patient who taps a button while 10,000
reminders drain waits behind them. This limiter instead:

- allows at most ``rate`` sends in any sliding one-second window, from the first second on.
  A send occupies its slot from the grant until one window after its *response*: the
  server may receive requests in a burst that was spread out when granted (network and
  event-loop jitter), but never earlier than the previous response, so Telegram's own
  one-second count cannot exceed ``rate``;
- keeps two queues: interactive requests (the default) are always granted before bulk ones
  (the dispatcher's fan-out passes ``rate_limit_args={"bulk": True}``);
- spaces bulk sends to the same chat by ``per_chat_interval`` (interactive replies to one
  patient are few and belong together, so they are not spaced);
- on a 429 pauses the chat it was for (only that chat: one patient flooding, or one chat
  over its own limit, must not hold up everyone's replies and reminders) for ``retry_after``
  and retries the same request, so a rate-limited message is neither lost nor sent twice
  (Telegram did not deliver it). A 429 without a chat, or 429s for several chats within a
  second (the bot-wide limit, then), pause every send.
Only message-sending methods count; answers to callback queries, edits and chat actions
pass straight through (they are not messages in Telegram's broadcast limit).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from telegram.error import RetryAfter
from telegram.ext import BaseRateLimiter

log = logging.getLogger(__name__)

COUNTED_PREFIXES = ("send", "copyMessage", "forwardMessage")
NOT_COUNTED = frozenset({"sendChatAction"})


def counts_as_message(endpoint: str) -> bool:
    return endpoint.startswith(COUNTED_PREFIXES) and endpoint not in NOT_COUNTED


def _seconds(value: Any) -> float:
    return value.total_seconds() if hasattr(value, "total_seconds") else float(value)


class PriorityRateLimiter(BaseRateLimiter[dict]):
    """A sliding-window limiter with an interactive lane ahead of a bulk lane."""

    def __init__(
        self,
        rate: int = 30,
        *,
        window: float = 1.0,
        per_chat_interval: float = 1.0,
        max_retries: int = 5,
        paid_rate: int | None = None,
    ) -> None:
        if rate < 1:
            raise ValueError("rate must be at least 1 message per second")
        self.rate = rate
        # Paid broadcasts (allow_paid_broadcast=True, 0.1 Star each) may go up to paid_rate in
        # any window; all other messages stay within `rate` (Telegram's free limit).
        self.paid_rate = paid_rate
        self.cap = max(rate, paid_rate or 0)
        self._free_in_flight = 0
        self._free_finished: deque[float] = deque()
        self.window = window
        self.per_chat_interval = per_chat_interval
        self.max_retries = max_retries
        self._in_flight = 0
        self._finished: deque[float] = deque()  # response times of recent sends, in order
        self._released = asyncio.Event()
        self._interactive: deque[tuple[asyncio.Future[None], bool]] = deque()
        self._bulk: deque[tuple[asyncio.Future[None], bool]] = deque()
        self._resume_at = 0.0
        self._last_bulk_to_chat: dict[object, float] = {}
        self._pump: asyncio.Task[None] | None = None
        self._last_bulk_grant = 0.0
        self._chat_resume_at: dict[object, float] = {}
        self._recent_429: deque[tuple[float, object]] = deque()

    async def initialize(self) -> None:
        """Nothing to set up: the pump task starts with the first request."""

    async def shutdown(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            try:
                await self._pump
            except asyncio.CancelledError:
                pass
            self._pump = None

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | dict | list[dict]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: dict | None,
    ) -> bool | dict | list[dict]:
        bulk = bool(rate_limit_args and rate_limit_args.get("bulk"))
        counted = counts_as_message(endpoint)
        paid = bool(self.paid_rate and data.get("allow_paid_broadcast"))
        chat_id = data.get("chat_id")
        for attempt in range(self.max_retries + 1):
            await self._chat_pause(chat_id)
            if counted:
                if bulk:
                    await self._space_chat(data.get("chat_id"))
                await self._slot(bulk, paid)
            try:
                return await callback(*args, **kwargs)
            except RetryAfter as exc:
                wait = _seconds(exc.retry_after)
                self._on_429(endpoint, chat_id, wait)
                if attempt == self.max_retries:
                    raise
                if chat_id is None and not counted:  # e.g. answerCallbackQuery: wait here
                    await asyncio.sleep(wait)
            finally:
                if counted:
                    self._release(paid)
        raise AssertionError("unreachable")

    # This many different chats answered 429 within one window: the limit is bot-wide.
    GLOBAL_AFTER_CHATS = 3

    def _on_429(self, endpoint: str, chat_id: object, wait: float) -> None:
        now = time.monotonic()
        self._recent_429.append((now, chat_id))
        while self._recent_429 and now - self._recent_429[0][0] > self.window:
            self._recent_429.popleft()
        chats = {c for _, c in self._recent_429}
        if chat_id is None or len(chats) >= self.GLOBAL_AFTER_CHATS:
            log.warning("rate_limited=all endpoint=%s pause=%.1f", endpoint, wait)
            self.pause(wait)
        else:
            log.warning("rate_limited=chat endpoint=%s pause=%.1f", endpoint, wait)
        if chat_id is not None:  # the retry of this request waits in _chat_pause
            resume = max(self._chat_resume_at.get(chat_id, 0.0), now + wait)
            self._chat_resume_at[chat_id] = resume

    async def _chat_pause(self, chat_id: object) -> None:
        """Wait out a retry_after Telegram gave for this chat (other chats go on)."""
        if chat_id is None or not self._chat_resume_at:
            return
        resume = self._chat_resume_at.get(chat_id)
        if resume is None:
            return
        now = time.monotonic()
        if resume > now:
            await asyncio.sleep(resume - now)
        elif self._chat_resume_at.get(chat_id) == resume:
            del self._chat_resume_at[chat_id]

    def pause(self, seconds: float) -> None:
        """Grant nothing for ``seconds`` (Telegram said so with retry_after)."""
        self._resume_at = max(self._resume_at, time.monotonic() + seconds)

    async def _space_chat(self, chat_id: object) -> None:
        if chat_id is None or self.per_chat_interval <= 0:
            return
        now = time.monotonic()
        last = self._last_bulk_to_chat.get(chat_id)
        if last is not None and now - last < self.per_chat_interval:
            await asyncio.sleep(self.per_chat_interval - (now - last))
        self._last_bulk_to_chat[chat_id] = time.monotonic()
        if len(self._last_bulk_to_chat) > 50_000:  # forget old chats; the interval is short
            cutoff = time.monotonic() - self.per_chat_interval
            self._last_bulk_to_chat = {
                c: t for c, t in self._last_bulk_to_chat.items() if t > cutoff
            }

    def _release(self, paid: bool = False) -> None:
        now = time.monotonic()
        self._in_flight -= 1
        self._finished.append(now)
        if not paid:
            self._free_in_flight -= 1
            self._free_finished.append(now)
        self._released.set()

    async def _slot(self, bulk: bool, paid: bool = False) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        (self._bulk if bulk else self._interactive).append((future, paid))
        if self._pump is None or self._pump.done():
            self._pump = asyncio.create_task(self._run_pump(), name="rate-limiter-pump")
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():  # granted, then the caller gave up
                self._release(paid)
            raise

    async def _run_pump(self) -> None:
        """Hand out slots: never more than ``rate`` per window, interactive lane first."""
        while self._interactive or self._bulk:
            now = time.monotonic()
            if now < self._resume_at:
                await asyncio.sleep(self._resume_at - now)
                continue
            for finished in (self._finished, self._free_finished):
                while finished and now - finished[0] >= self.window:
                    finished.popleft()
            if self._in_flight + len(self._finished) >= self.cap:
                await self._wait_for_room(self._finished, now)
                continue
            lane = self._interactive if self._interactive else self._bulk
            future, paid = lane[0]
            if not paid and self._free_in_flight + len(self._free_finished) >= self.rate:
                await self._wait_for_room(self._free_finished, now)
                continue
            step = self.window / (self.cap if paid else self.rate)
            if not self._interactive:
                # Bulk sends go out evenly (one every window/rate), not in bursts of `rate`:
                # a reply that arrives mid-fan-out then waits ~33 ms, not up to a second.
                gap = self._last_bulk_grant + step - now
                if gap > 0:
                    await asyncio.sleep(gap)
                    continue
            lane.popleft()
            if future.done():  # the caller gave up (cancelled)
                continue
            self._in_flight += 1
            if not paid:
                self._free_in_flight += 1
            if lane is self._bulk and paid:
                self._last_bulk_grant = now
            elif lane is self._bulk:
                # The schedule, not the wake-up time: a sleep wakes a millisecond or two late,
                # and counting from the wake-up added that to every later 33 ms step (B2 lost
                # 3 s in 63). At most one step is caught up; the window above still caps the
                # rate. Paid broadcasts' 1 ms steps are not caught up: there the late wake-ups
                # pace the sends, and catching up only put more of them in flight at once
                # (B8 measured 20% slower).
                self._last_bulk_grant = max(self._last_bulk_grant + step, now - step)
            future.set_result(None)

    async def _wait_for_room(self, finished: deque[float], now: float) -> None:
        """Until the oldest finished send leaves the window, or one in flight ends."""
        timeout = finished[0] + self.window - now if finished else None
        self._released.clear()
        try:
            await asyncio.wait_for(self._released.wait(), timeout)
        except TimeoutError:
            pass
