"""The dispatcher tick: claim due reminders in the database, send them, record delivery.

One JobQueue job runs ``tick`` every few seconds (ARCHITECTURE.md: the database row is the
truth, not one APScheduler job per patient). Sending happens outside the claim transaction;
deliveries are recorded in small batches right after the sends (every 25 sends or 0.2 s,
whichever comes first: one transaction per send cost more than the send itself), so a
crash loses nothing (the lease runs out and the next tick sends again) and can duplicate
only the prompts of the last unrecorded batch.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import timedelta

from telegram import Bot
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError

from bot.clock import Clock
from bot.config import Settings
from bot.db.session import SessionFactory, transaction
from bot.handlers.checkin import done_question, next_day_markup, nudge_message, prompt_content
from bot.handlers.plan import prompt_programme
from bot.handlers.ui import send_message_id
from bot.i18n import t
from bot.services import checkins, programmes, reminders
from bot.services.exercises import Step

log = logging.getLogger(__name__)

# Keep concurrent sends around 8-16: more in flight makes each send cost more CPU
# (httpcore's pool bookkeeping), and an unbounded gather of 5,000 sends timed out
# (ARCHITECTURE.md "Telegram I/O").
SEND_CONCURRENCY = 8
# Paid broadcasts go up to 1000/s: more sends in flight hide the limiter's and the delivery
# log's latency (still within the 8-16 that keeps httpcore's per-send cost flat).
PAID_SEND_CONCURRENCY = 16
# Deliveries are recorded in one transaction per this many sends or this many seconds.
DELIVERY_BATCH, DELIVERY_MAX_AGE = 25, 0.2


@dataclass
class TickReport:
    sent: int = 0
    failed: int = 0
    blocked: int = 0
    expired: int = 0
    missed: int = 0
    next_day: int = 0
    nudged: int = 0
    done_asked: int = 0
    cleaned: int = 0
    errors: list[str] = field(default_factory=list)

    def as_log(self) -> str:
        """``sent=12 failed=0 ... errors=0``: one key=value line a log search can filter."""
        fields = asdict(self)
        fields["errors"] = len(self.errors)
        return " ".join(f"{key}={value}" for key, value in fields.items())


class DeliveryLog:
    """Records delivered prompts in batches: up to ``max_batch`` or ``max_age`` seconds old."""

    def __init__(
        self,
        sessions: SessionFactory,
        clock: Clock,
        max_batch: int = DELIVERY_BATCH,
        max_age: float = DELIVERY_MAX_AGE,
        on_flush: Callable[[], None] = lambda: None,
    ) -> None:
        self.on_flush = on_flush
        self.sessions = sessions
        self.clock = clock
        self.max_batch = max_batch
        self.max_age = max_age
        self._pending: list[tuple[int, int]] = []
        self._since = time.monotonic()

    async def add(self, checkin_id: int, message_id: int) -> None:
        if not self._pending:
            self._since = time.monotonic()
        self._pending.append((checkin_id, message_id))
        if len(self._pending) >= self.max_batch or time.monotonic() - self._since >= self.max_age:
            await self.flush()

    async def flush(self) -> None:
        batch, self._pending = self._pending, []  # swapped before any await: no double record
        if batch:
            async with transaction(self.sessions) as session:
                await reminders.mark_prompted_many(session, batch, self.clock.now())
            self.on_flush()


class Dispatcher:
    """Claims and sends; one per process. Several processes may share one PostgreSQL."""

    def __init__(
        self,
        bot: Bot,
        sessions: SessionFactory,
        settings: Settings,
        clock: Clock,
        *,
        batch: int = 500,
    ) -> None:
        self.bot = bot
        self.sessions = sessions
        self.settings = settings
        self.clock = clock
        # Fan-out goes in the rate limiter's bulk lane, behind patients' own replies.
        self._bulk = (
            {"rate_limit_args": {"bulk": True}} if getattr(bot, "rate_limiter", None) else {}
        )
        self._paid = {}
        if settings.allow_paid_broadcast:  # 0.1 Star a message, up to 1000/s (README)
            self._bulk["allow_paid_broadcast"] = True
            self._paid["allow_paid_broadcast"] = True
        self.batch = batch
        # Deliveries are recorded every 0.2 s of sends: at a paid 1,000/s that is up to 200 a
        # transaction, not 25 (a crash still repeats at most the last 0.2 s of prompts).
        self._delivery_batch = max(
            DELIVERY_BATCH, int(settings.send_rate_per_second * DELIVERY_MAX_AGE)
        )
        self._gate = asyncio.Semaphore(
            PAID_SEND_CONCURRENCY if settings.allow_paid_broadcast else SEND_CONCURRENCY
        )
        # Set on shutdown: unsent prompts of the round are left to their lease (sent again by
        # the next tick, here or on another replica), so SIGTERM does not wait for a fan-out.
        self.stopping = False
        # Called at each round and each recorded batch of sends (the /healthz heartbeat).
        self.on_progress: Callable[[], None] = lambda: None

    async def tick(self, *, rounds: int | None = None) -> TickReport:
        """Claim what is due now, send it, record it; safe to run on several replicas.

        A round that claimed a full batch and sent it all is followed at once by another
        (at most ``rounds``, if given): waiting for the job's next interval would leave the
        send limiter idle during a large fan-out (bar B2). Failures end the tick, so an
        outage is not hammered.
        """
        report = TickReport()
        done = 0
        while not self.stopping and (rounds is None or done < rounds):
            self.on_progress()
            failed_before = report.failed + report.blocked
            claimed = await self._round(report)
            done += 1
            if claimed < self.batch or report.failed + report.blocked > failed_before:
                break
        if report.sent or report.next_day or report.failed or report.blocked or report.nudged:
            log.info("tick %s", report.as_log())
        return report

    async def _round(self, report: TickReport) -> int:
        """One claim transaction and its sends; returns the number of prompts claimed."""
        now = self.clock.now()
        async with transaction(self.sessions) as session:
            claim = await reminders.claim_due(
                session,
                now,
                limit=self.batch,
                grace=self.settings.reminder_grace,
                expiry=self.settings.checkin_expiry,
                lease=timedelta(seconds=self.settings.prompt_lease_seconds),
                absence_after=timedelta(days=self.settings.absence_after_days),
                weekly_after=timedelta(days=self.settings.weekly_after_days),
            )
            questions = await checkins.claim_next_day(session, now, limit=self.batch)
            # Today's programme of every patient prompted, in one query for the batch.
            steps = await programmes.steps_for(session, (p.user_id for p in claim.prompts))
        # A next-morning question due with that day's prompt goes in the prompt itself.
        prompted = {p.user_id: p for p in claim.prompts if p.kind != "comeback"}
        separate = []
        for q in questions:
            if q.user_id in prompted and prompted[q.user_id].next_day_id is None:
                prompted[q.user_id].next_day_id = q.checkin_id
                report.next_day += 1
            else:
                separate.append(q)
        report.expired += len(claim.expired_ids)
        report.missed += len(claim.missed_ids)
        deliveries = DeliveryLog(
            self.sessions, self.clock, max_batch=self._delivery_batch, on_flush=self.on_progress
        )
        sends = [
            self._send_prompt(p, report, deliveries, steps.get(p.user_id)) for p in claim.prompts
        ]
        try:
            # return_exceptions: one unexpected failure must not abandon the other sends
            # half-way (their deliveries would go unrecorded and be sent again).
            results = await asyncio.gather(*sends, return_exceptions=True)
        finally:
            await deliveries.flush()
        # Old prompts lose their buttons once the new one is out (one live prompt at a time).
        results += await asyncio.gather(
            *(self._cleanup(note, report) for note in claim.cleanups),
            *(self._send_nudge(n, report) for n in claim.nudges),
            *(
                self._send_note(n, done_question, report, "done_asked")
                for n in claim.done_questions
            ),
            *(self._send_question(q, report) for q in separate),
            return_exceptions=True,
        )
        for error in (r for r in results if isinstance(r, BaseException)):
            log.error("dispatcher send failed", exc_info=error)
            report.errors.append(repr(error))
        return len(claim.prompts)

    async def _send_prompt(
        self,
        prompt: reminders.Prompt,
        report: TickReport,
        deliveries: DeliveryLog,
        steps: list[Step] | None = None,
    ) -> None:
        loc = prompt.language
        programme = prompt_programme(steps, loc)
        async with self._gate:
            if self.stopping:  # shutting down: the claim's lease sends it again
                return
            text, rows = prompt_content(
                prompt.checkin_id,
                loc,
                again=prompt.after_snooze,
                kind=prompt.kind,
                lighter=prompt.lighter,
                next_day_id=prompt.next_day_id,
                programme=programme,
            )
            try:
                message_id = await send_message_id(
                    self.bot,
                    prompt.telegram_id,
                    text,
                    rows,
                    rate_limit_args=self._bulk.get("rate_limit_args"),
                    **self._paid,
                )
            except (Forbidden, BadRequest) as exc:
                if not _unreachable(exc):  # e.g. a broken translation: fix it, then it retries
                    log.error("prompt %s rejected: %s", prompt.checkin_id, exc.message)
                    await self._record_failure(prompt, permanent=False)
                    report.failed += 1
                    return
                # Blocked, deactivated, chat gone: stop prompting until they write again.
                await self._record_failure(prompt, permanent=True)
                report.blocked += 1
                log.info("prompt %s undeliverable: %s", prompt.checkin_id, exc.message)
                return
            except RetryAfter:  # the limiter already retried and paused; the lease retries later
                await self._record_failure(prompt, permanent=False)
                report.failed += 1
                return
            except (NetworkError, TelegramError) as exc:  # TimedOut, 5xx, ...: the lease retries
                await self._record_failure(prompt, permanent=False)
                report.failed += 1
                report.errors.append(str(exc))
                return
        await deliveries.add(prompt.checkin_id, message_id)
        report.sent += 1

    async def _record_failure(self, prompt: reminders.Prompt, *, permanent: bool) -> None:
        async with transaction(self.sessions) as session:
            await reminders.mark_send_failed(
                session, prompt.checkin_id, self.clock.now(), permanent=permanent
            )

    async def _send_question(self, question: checkins.NextDayQuestion, report: TickReport) -> None:
        """The optional next-morning question; one try (it is not worth a second message)."""
        async with self._gate:
            try:
                await self.bot.send_message(
                    question.telegram_id,
                    t("checkin.next_day_ask", question.language),
                    reply_markup=next_day_markup(question.checkin_id, question.language),
                    **self._bulk,
                )
                report.next_day += 1
            except TelegramError as exc:
                log.info("next-day question %s not sent: %s", question.checkin_id, exc)

    async def _cleanup(self, note: reminders.ChatNote, report: TickReport) -> None:
        """Remove an old prompt's buttons; one try (a message already edited or deleted is
        fine: a press on it is still answered politely)."""
        async with self._gate:
            try:
                await self.bot.edit_message_reply_markup(
                    note.telegram_id, note.message_id, reply_markup=None, **self._bulk
                )
                report.cleaned += 1
            except TelegramError as exc:
                log.info("buttons of check-in %s not removed: %s", note.checkin_id, exc)

    async def _send_nudge(self, note: reminders.ChatNote, report: TickReport) -> None:
        """ "Finished? Tap Done": it takes over the session's buttons, so one message with a
        Done button stays live (and expiry removes that one)."""
        message = await self._send_note(note, nudge_message, report, "nudged")
        if message is None:
            return
        async with transaction(self.sessions) as session:
            moved = await reminders.move_prompt_message(
                session, note.checkin_id, message.message_id, self.clock.now()
            )
        if moved and note.message_id is not None:
            await self._cleanup(note, report)

    async def _send_note(self, note: reminders.ChatNote, compose, report: TickReport, count: str):
        """A nudge or "Did you do it?": claimed once in the database, one try."""
        text, markup = compose(note.checkin_id, note.language)
        async with self._gate:
            try:
                message = await self.bot.send_message(
                    note.telegram_id, text, reply_markup=markup, **self._bulk
                )
                setattr(report, count, getattr(report, count) + 1)
                return message
            except TelegramError as exc:
                log.info("%s for check-in %s not sent: %s", count, note.checkin_id, exc)
                return None


def _unreachable(exc: Exception) -> bool:
    """403 (blocked, deactivated) or a chat that no longer exists: not worth retrying."""
    return isinstance(exc, Forbidden) or "chat not found" in str(exc).lower()
