"""The weekly programme review job (issue 17): claim due programmes in the database, record
each outcome, then tell the patient or their therapist after the commit.

One JobQueue job for everyone (no per-patient jobs): each run claims due programmes in
batches (``reviews.claim_due``) until none is left.
"""

from __future__ import annotations

import logging

from telegram import Bot

from bot.clock import Clock
from bot.db.session import SessionFactory, transaction
from bot.handlers import plan
from bot.handlers.ui import keyboard
from bot.i18n import t
from bot.services import reviews
from bot.services.reviews import Review

log = logging.getLogger(__name__)

INTERVAL_SECONDS = 600  # a review is due once a week; within ten minutes of it is on time


def messages(review: Review) -> plan.Outbox:
    """What the review says to whom: the patient decides, the therapist approves, or an
    automatic step is told to both. A "keep" says nothing."""
    out: plan.Outbox = []
    user = review.user
    direction = str(review.direction)
    if review.mode == "keep":
        return out
    loc = user.language
    if review.mode == "patient":
        text = t(
            f"plan.proposal_{direction}",
            loc,
            reason=plan.reason_text(review.reason, loc),
            lines=plan.step_lines(review.steps, loc),
        )
        out.append((user.telegram_id, text, plan.proposal_markup(review.change_id, direction, loc)))
        return out
    if review.mode == "auto":
        text = t(
            f"plan.auto_applied_{direction}",
            loc,
            reason=plan.reason_text(review.reason, loc),
            therapist=plan.therapist_label(review.set_by, loc),
            lines=plan.step_lines(review.steps, loc),
        )
        out.append((user.telegram_id, text, None))
    for therapist in review.therapists:
        tloc = therapist.language
        key = "plan.t_auto_applied" if review.mode == "auto" else "plan.t_proposal"
        text = t(
            key,
            tloc,
            patient=plan.patient_label(user.display_name, tloc),
            reason=plan.reason_text(review.reason, tloc),
            what=t(f"plan.t_what_{direction}", tloc),
            lines=plan.step_lines(review.steps, tloc),
        )
        markup = None
        if review.mode == "therapist":
            c = f"tplan:{user.id}"
            markup = keyboard(
                [
                    [
                        (t("plan.t_approve", tloc), f"{c}:ap:{review.change_id}"),
                        (t("plan.t_keep", tloc), f"{c}:kp:{review.change_id}"),
                    ]
                ]
            )
        out.append((therapist.telegram_id, text, markup))
    return out


async def run_reviews(bot: Bot, sessions: SessionFactory, clock: Clock) -> int:
    """Review every due programme; returns how many had a step to propose or take."""
    total = 0
    while True:
        async with transaction(sessions) as session:
            claimed, batch = await reviews.claim_due(session, clock.now(), limit=reviews.BATCH)
            outbox = [m for review in batch for m in messages(review)]
        # Committed: the outcome is recorded before anyone reads about it.
        for chat_id, text, markup in outbox:
            try:
                await bot.send_message(chat_id, text, reply_markup=markup)
            except Exception as exc:  # noqa: BLE001 - one failed send must not stop the round
                log.info("programme review message to %s not sent: %s", chat_id, exc)
        total += len(batch)
        if claimed < reviews.BATCH:
            return total


async def _job(context) -> None:
    data = context.bot_data
    await run_reviews(context.bot, data.sessions, data.clock)


def schedule_weekly_reviews(app) -> None:
    app.job_queue.run_repeating(
        _job,
        interval=INTERVAL_SECONDS,
        first=5,
        name="programme-reviews",
        job_kwargs={"misfire_grace_time": None, "coalesce": True, "max_instances": 1},
    )
