"""/tip (a fresh educational message, no repeats until the pool is used up) and /source."""

from __future__ import annotations

from telegram import Update

from bot.context import Ctx
from bot.db.session import transaction
from bot.handlers.ui import require_consent, user_locale
from bot.i18n import t
from bot.services import education, patients


def source_line(tip: education.Tip, loc: str) -> str:
    """Where the message comes from, so a patient or therapist can trace the claim."""
    return t(
        "education.source_line",
        loc,
        source=t(f"education.source.{tip.source[:3]}", loc),
        tip=tip.key,
    )


async def tip(update: Update, context: Ctx) -> None:
    """A tip the patient has not seen yet, with its source named."""
    async with transaction(context.sessions) as session:
        user = await require_consent(update, session)
        if user is None:
            return
        chosen = await education.pick_tip(
            session, user.id, None, rng=context.bot_data.rng, now=context.clock.now()
        )
        loc = user.language
        await update.effective_message.reply_text(
            f"{education.render_tip(chosen, loc)}\n\n{source_line(chosen, loc)}"
        )


async def source(update: Update, context: Ctx) -> None:
    """/source <key>: the topic and source text of one message (for therapists and the curious)."""
    async with transaction(context.sessions) as session:
        user = await patients.get_user(session, update.effective_user.id)
        loc = user_locale(user, update)
    key = (context.args or [""])[0].strip().lower()
    found = education.TIPS_BY_KEY.get(key)
    if found is None:
        await update.effective_message.reply_text(t("education.source_usage", loc))
        return
    await update.effective_message.reply_text(
        t(
            "education.source_detail",
            loc,
            tip=found.key,
            topic=t(f"education.topic.{found.topic.value}", loc),
            file=found.source,
            source=t(f"education.source.{found.source[:3]}", loc),
        )
    )
