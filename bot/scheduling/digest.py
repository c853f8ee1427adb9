"""The weekly digest job: claim the therapists whose digest is due, compute, send, record.

Its own JobQueue job, not part of the reminder tick: a digest round (statistics, a chart per
therapist, several messages each) can take minutes on a Monday morning, and the reminder
tick (max_instances=1) must not wait behind it. The job is idempotent, so:
misfire_grace_time=None (a late run is still right), coalesce=True and max_instances=1 (a
slow round does not pile up copies of itself). Each round loops until nothing is due.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from telegram import Bot
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter

from bot.clock import Clock
from bot.db.session import SessionFactory, transaction
from bot.handlers import digest_view
from bot.services import digest

if TYPE_CHECKING:
    from bot.context import BotApp, Ctx

log = logging.getLogger(__name__)

INTERVAL_SECONDS = 60
# Digests being sent at once; the rate limiter spaces the messages themselves.
SEND_CONCURRENCY = 8


@dataclass
class DigestReport:
    sent: int = 0  # digests delivered
    messages: int = 0
    empty: int = 0  # therapists with no sharing patients: nothing sent
    undeliverable: int = 0
    failed: int = 0  # passing errors: sent again once the claim's lease runs out
    errors: list[str] = field(default_factory=list)


class DigestSender:
    """One per process; any number of processes may share one PostgreSQL."""

    def __init__(self, bot: Bot, sessions: SessionFactory, clock: Clock, *, batch: int = 100):
        self.bot = bot
        self.sessions = sessions
        self.clock = clock
        self.batch = batch
        # Scheduled sends go in the rate limiter's bulk lane, behind patients' own replies.
        self._bulk = (
            {"rate_limit_args": {"bulk": True}} if getattr(bot, "rate_limiter", None) else {}
        )
        self._gate = asyncio.Semaphore(SEND_CONCURRENCY)

    async def tick(self) -> DigestReport:
        """Send every digest that is due now, batch after batch."""
        report = DigestReport()
        while True:
            now = self.clock.now()
            async with transaction(self.sessions) as session:
                claims = await digest.claim_due(session, now, limit=self.batch)
            if not claims:
                break
            digests = await self._compute(claims)
            results = await asyncio.gather(
                *(self._deliver(c, digests[c.digest_id], report) for c in claims),
                return_exceptions=True,
            )
            # One therapist's unexpected failure must not stop the others' digests.
            for claim, error in zip(claims, results, strict=True):
                if isinstance(error, Exception):
                    report.failed += 1
                    log.error("digest %s failed", claim.digest_id, exc_info=error)
        if report.sent or report.failed or report.undeliverable:
            log.info("digests: %s", report)
        return report

    async def _compute(self, claims: list[digest.DigestClaim]) -> dict[int, digest.Digest]:
        """One set of queries per distinct week (therapists in one zone share it)."""
        by_period: dict[digest.Period, list[digest.DigestClaim]] = defaultdict(list)
        for claim in claims:
            by_period[claim.period].append(claim)
        found: dict[int, digest.Digest] = {}
        async with self.sessions() as session:
            for period, group in by_period.items():
                result = await digest.compute(session, [c.therapist_id for c in group], period)
                found.update((c.digest_id, result[c.therapist_id]) for c in group)
        return found

    async def _deliver(
        self, claim: digest.DigestClaim, result: digest.Digest, report: DigestReport
    ) -> None:
        if not result.patients:
            await self._finish(claim, "no patients", sent=False)
            report.empty += 1
            return
        delivered: list[str] = []
        async with self._gate:
            try:
                count = await digest_view.send_digest(
                    self.bot,
                    claim.telegram_id,
                    result,
                    claim.timezone,
                    claim.language,
                    delivered=delivered,
                    **self._bulk,
                )
            except Exception as exc:
                if delivered:  # a part reached the therapist: never send it all again
                    await self._finish(
                        claim, f"partial: {len(delivered)} messages, then {exc!r}", sent=True
                    )
                    report.failed += 1
                    report.errors.append(str(exc))
                    return
                if isinstance(exc, (Forbidden, BadRequest)):
                    await self._finish(claim, f"undeliverable: {exc.message}", sent=False)
                    report.undeliverable += 1
                    return
                if isinstance(exc, (NetworkError, RetryAfter)):  # the lease brings it back
                    report.failed += 1
                    report.errors.append(str(exc))
                    return
                raise
        await self._finish(claim, f"sent: {len(result.patients)} patients, {count} messages")
        report.sent += 1
        report.messages += count

    async def _finish(self, claim: digest.DigestClaim, detail: str, *, sent: bool = True) -> None:
        async with transaction(self.sessions) as session:
            await digest.finish(session, claim.digest_id, self.clock.now(), detail, sent=sent)


def schedule_weekly_digest(app: BotApp) -> None:
    """Register the digest job (see the module docstring for its settings)."""
    sender = DigestSender(app.bot, app.bot_data.sessions, app.bot_data.clock)
    app.job_queue.run_repeating(
        _run,
        interval=INTERVAL_SECONDS,
        first=10,
        name="weekly-digest",
        data=sender,
        job_kwargs={"misfire_grace_time": None, "coalesce": True, "max_instances": 1},
    )


async def _run(context: Ctx) -> None:
    leader = context.bot_data.leader  # one replica sends digests (bot/scheduling/leader.py)
    if leader is None or await leader.is_leader():
        await context.job.data.tick()
