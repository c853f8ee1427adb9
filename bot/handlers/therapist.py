"""Therapists and their patients.

Patients: the invite deep link (``/start <code>``), confirming or declining it, and
/therapist (who can see my data; stop sharing at once). Therapists: /invite, /patients,
/digest. Operators (ADMIN_IDS): /grant and /revoke_therapist.

Buttons carry ``tl:<action>[:<link id>]`` (at most 20 bytes): ``tl:ok`` / ``tl:no`` (consent
given from an invite link), ``tl:y`` / ``tl:n`` (share or not), ``tl:rv`` (stop sharing).
Every press is checked against the presser's own links, so a forged id changes nothing.
"""

from __future__ import annotations

import html
import logging
import re
from datetime import datetime

from telegram import Message, Update
from telegram.error import TelegramError

from bot.context import Ctx
from bot.db.models import Therapist, User
from bot.db.session import transaction
from bot.handlers import digest_view, general, setup
from bot.handlers.checkin import drop_buttons
from bot.handlers.ui import keyboard, language_known, require_consent, user_locale
from bot.i18n import t
from bot.services import digest, onboarding, patients, therapists
from bot.services.schedule_rules import zone
from bot.services.therapists import Confirmed, InviteCheck, InviteStatus, SharedWith

log = logging.getLogger(__name__)

# conv_state of a patient who opened an invite before consenting; conv_data holds the code's
# hash (conversation state is all we keep before consent).
LINK_STATE = "link"
# ASCII digits only: str.isdigit() accepts "²", which int() then refuses.
LINK_ID = re.compile(r"[0-9]{1,12}")
TELEGRAM_ID = re.compile(r"[0-9]{1,15}")


def invite_link(bot_username: str, code: str) -> str:
    return f"https://t.me/{bot_username}?start={code}"


def therapist_name(name: str | None, loc: str) -> str:
    return html.escape(name) if name else t("therapist.unnamed_therapist", loc)


def day_text(instant: datetime, tz: str | None, loc: str) -> str:
    """'23 November 2026' in the reader's zone."""
    local = instant.astimezone(zone(digest.valid_zone(tz)))
    return digest_view.day_month(local.date(), loc, year=True)


def invite_error(status: InviteStatus, name: str | None, loc: str) -> str:
    return t(f"therapist.invite_{status}", loc, therapist=therapist_name(name, loc))


# ---------------------------------------------------------------------------------------------
# Patients: the invite link and its answer
# ---------------------------------------------------------------------------------------------


async def open_invite(update: Update, context: Ctx) -> None:
    """/start <code>: who asks to see the patient's data and exactly what; consent first."""
    tg = update.effective_user
    payload = " ".join(context.args or [])
    message = update.effective_message
    now = context.clock.now()
    async with transaction(context.sessions) as session:
        user, _ = await patients.ensure_user(session, tg.id, tg.language_code)
        loc = user.language
        if user.consented:
            check = await therapists.open_payload(session, payload, user, now)
            if check.status is InviteStatus.OK:
                await ask_to_share(message, check, loc)
            else:
                await message.reply_text(invite_error(check.status, check.therapist_name, loc))
            return
        check = await therapists.preview_invite(session, payload, user.id, now)
        if check.status is not InviteStatus.OK:
            hint = t("therapist.invite_start_hint", loc)
            await message.reply_text(
                f"{invite_error(check.status, check.therapist_name, loc)}\n\n{hint}"
            )
            return
        patients.set_state(user, LINK_STATE, {"invite": therapists.hash_code(payload)})
        await ask_consent_first(message, tg.first_name, check, loc)


async def ask_consent_first(
    message: Message, first_name: str | None, check: InviteCheck, loc: str
) -> None:
    """The usual greeting and consent, saying that the sharing question comes next."""
    text = "\n\n".join(
        (
            t("start.greeting", loc, name=html.escape(first_name or "")),
            t("start.disclaimer", loc),
            t("start.consent_ask", loc),
            t(
                "therapist.consent_then_link",
                loc,
                therapist=therapist_name(check.therapist_name, loc),
            ),
        )
    )
    buttons = [[(t("start.consent_yes", loc), "tl:ok"), (t("start.consent_no", loc), "tl:no")]]
    await message.reply_text(text, reply_markup=keyboard(buttons))


async def ask_to_share(message: Message, check: InviteCheck, loc: str) -> None:
    """Who asks, what exactly they would see, and two buttons."""
    name = therapist_name(check.therapist_name, loc)
    buttons = [
        [
            (t("therapist.link_yes", loc), f"tl:y:{check.link_id}"),
            (t("therapist.link_no", loc), f"tl:n:{check.link_id}"),
        ]
    ]
    await message.reply_text(
        t("therapist.link_ask", loc, therapist=name), reply_markup=keyboard(buttons)
    )


async def on_button(update: Update, context: Ctx) -> None:
    """tl:<action>[:<link id>] presses."""
    action, _, arg = (update.callback_query.data or "").removeprefix("tl:").partition(":")
    if action in ("ok", "no") and not arg:
        await consent_then_link(update, context, agreed=action == "ok")
    elif action in ANSWERS and LINK_ID.fullmatch(arg):
        await ANSWERS[action](update, context, int(arg))
    else:
        await general.on_unknown_button(update, context)


async def consent_then_link(update: Update, context: Ctx, *, agreed: bool) -> None:
    """Consent given from an invite: then the sharing question, then setup."""
    query = update.callback_query
    now = context.clock.now()
    async with transaction(context.sessions) as session:
        user = await patients.get_user(session, update.effective_user.id)
        loc = user_locale(user, update)
        if user is None or user.consented or user.conv_state != LINK_STATE:
            await query.answer(t("therapist.link_stale", loc))
            return
        await query.answer()
        await drop_buttons(query.message)
        code_hash = str((user.conv_data or {}).get("invite", ""))
        if not agreed:
            patients.set_state(user, None)  # nothing kept: not even the invite
            await query.message.reply_text(t("start.consent_declined", loc))
            return
        patients.give_consent(user, now)
        pos = onboarding.begin_setup(user, language_known=language_known(user, update))
        await query.message.reply_text(t("start.consent_thanks", loc))
        check = await therapists.open_invite(session, code_hash, user, now)
        if check.status is InviteStatus.OK:
            await ask_to_share(query.message, check, loc)  # setup goes on after the answer
            return
        await query.message.reply_text(invite_error(check.status, check.therapist_name, loc))
        await setup.ask(query.message, user, pos, now)


async def share(update: Update, context: Ctx, link_id: int) -> None:
    """tl:y: the patient agrees; the therapist hears of it."""
    query = update.callback_query
    first_name = update.effective_user.first_name
    async with transaction(context.sessions) as session:
        user = await consented_user(update, session)
        if user is None:
            return
        loc = user.language
        result = await therapists.confirm_link(
            session, link_id, user, first_name, context.clock.now()
        )
        if result.status in (InviteStatus.STALE, InviteStatus.LINKED):
            await query.answer(t(f"therapist.link_{result.status}", loc))
            return
        await query.answer()
        await drop_buttons(query.message)
        name = therapist_name(result.therapist_name, loc)
        if result.status is InviteStatus.OK:
            await query.message.reply_text(t("therapist.link_confirmed", loc, therapist=name))
        else:
            await query.message.reply_text(invite_error(result.status, result.therapist_name, loc))
        await continue_setup(query.message, user, context.clock.now())
    if result.status is InviteStatus.OK:
        await tell_therapist(context, result, first_name)


async def tell_therapist(context: Ctx, result: Confirmed, patient_name: str | None) -> None:
    """A new patient shares with the therapist: say so (a failure here changes nothing)."""
    loc = result.therapist_language or "en"
    text = t("therapist.new_patient", loc, patient=html.escape(patient_name or ""))
    try:
        await context.bot.send_message(result.therapist_telegram_id, text)
    except TelegramError as exc:
        log.info("could not tell therapist about a new patient: %s", exc)


async def decline(update: Update, context: Ctx, link_id: int) -> None:
    """tl:n: the patient does not share; the pending request is deleted."""
    query = update.callback_query
    async with transaction(context.sessions) as session:
        user = await consented_user(update, session)
        if user is None:
            return
        loc = user.language
        ended = await therapists.decline_link(session, link_id, user)
        if ended is None:
            await query.answer(t("therapist.link_stale", loc))
            return
        await query.answer()
        await drop_buttons(query.message)
        name = therapist_name(ended.therapist_name, loc)
        await query.message.reply_text(t("therapist.link_declined", loc, therapist=name))
        await continue_setup(query.message, user, context.clock.now())


async def stop_sharing(update: Update, context: Ctx, link_id: int) -> None:
    """tl:rv: the patient revokes a therapist's access, at once."""
    query = update.callback_query
    async with transaction(context.sessions) as session:
        user = await consented_user(update, session)
        if user is None:
            return
        loc = user.language
        ended = await therapists.revoke_link(session, link_id, user, context.clock.now())
        if ended is None:
            await query.answer(t("therapist.revoke_stale", loc))
            return
        await query.answer()
        await drop_buttons(query.message)
        done = t("therapist.revoked", loc, therapist=therapist_name(ended.therapist_name, loc))
        text, rows = sharing_view(await therapists.shared_with(session, user), user)
        await query.message.reply_text(
            f"{done}\n\n{text}", reply_markup=keyboard(rows) if rows else None
        )


ANSWERS = {"y": share, "n": decline, "rv": stop_sharing}


async def consented_user(update: Update, session) -> User | None:
    """The presser, if they have consented (no one else has links to answer)."""
    user = await patients.get_user(session, update.effective_user.id)
    if user is None or not user.consented:
        loc = user_locale(user, update)
        await update.callback_query.answer(t("therapist.link_stale", loc))
        return None
    return user


async def continue_setup(message: Message, user: User, now: datetime) -> None:
    """A patient in the middle of setup gets the question they were at."""
    if user.setup_done_at is None and (pos := onboarding.position(user)) is not None:
        await setup.ask(message, user, pos, now)


def sharing_view(shared: list[SharedWith], user: User) -> tuple[str, list[list[tuple[str, str]]]]:
    """Who can see the patient's data, and a stop button for each."""
    loc = user.language
    if not shared:
        return t("therapist.shared_none", loc), []
    lines = [t("therapist.shared_title", loc)]
    rows = []
    for link in shared:
        name = therapist_name(link.therapist_name, loc)
        since = day_text(link.since, user.timezone, loc)
        lines.append(t("therapist.shared_item", loc, therapist=name, since=since))
        label = t("therapist.stop_button", loc, therapist=link.therapist_name or name)
        rows.append([(label, f"tl:rv:{link.link_id}")])
    lines.append("")
    lines.append(t("therapist.shared_hint", loc))
    return "\n".join(lines), rows


async def my_therapists(update: Update, context: Ctx) -> None:
    """/therapist: who can see my data, with a button to stop each one at once."""
    async with transaction(context.sessions) as session:
        user = await require_consent(update, session)
        if user is None:
            return
        text, rows = sharing_view(await therapists.shared_with(session, user), user)
        if await therapists.is_therapist(session, user.id):
            text += "\n\n" + t("therapist.you_are_therapist", user.language)
        await update.effective_message.reply_text(
            text, reply_markup=keyboard(rows) if rows else None
        )


# ---------------------------------------------------------------------------------------------
# Therapists
# ---------------------------------------------------------------------------------------------


async def require_therapist(update: Update, session) -> tuple[User, Therapist] | None:
    """The sender's therapist role (their first name refreshed), or a polite refusal."""
    user = await patients.get_user(session, update.effective_user.id)
    therapist = await therapists.get_therapist(session, user.id) if user else None
    if therapist is None:
        loc = user_locale(user, update)
        await update.effective_message.reply_text(t("therapist.not_therapist", loc))
        return None
    therapists.set_display_name(therapist, update.effective_user.first_name)
    return user, therapist


async def invite(update: Update, context: Ctx) -> None:
    """/invite [multi] for a deep link; /invite revoke [link] to end links."""
    args = context.args or []
    mode = args[0].lower() if args else ""
    now = context.clock.now()
    async with transaction(context.sessions) as session:
        found = await require_therapist(update, session)
        if found is None:
            return
        user, therapist = found
        loc = user.language
        if mode in ("", "multi") and len(args) <= 1:
            code, row = await therapists.create_invite(session, therapist, now, multi=bool(mode))
            text = t(
                f"therapist.invite_created_{mode or 'single'}",
                loc,
                link=invite_link(context.bot.username, code),
                until=day_text(row.expires_at, user.timezone, loc),
            )
        elif mode == "revoke" and len(args) <= 2:
            code = args[1].rsplit("start=", 1)[-1] if len(args) == 2 else None
            count = await therapists.revoke_invites(session, therapist, now, code)
            text = (
                t("therapist.invite_not_found", loc)
                if code and not count
                else t("therapist.invites_revoked", loc, count=count)
            )
        else:
            text = t("therapist.invite_usage", loc)
        await update.effective_message.reply_text(text)


async def patients_command(update: Update, context: Ctx) -> None:
    """/patients: who shares with me (only confirmed, not revoked)."""
    async with transaction(context.sessions) as session:
        found = await require_therapist(update, session)
        if found is None:
            return
        user, therapist = found
        linked = await therapists.patients_of(session, therapist)
    loc = user.language
    if not linked:
        await update.effective_message.reply_text(t("therapist.patients_none", loc))
        return
    lines = [
        t(
            "therapist.patients_item",
            loc,
            n=n,
            name=html.escape(p.name or t("therapist.patient_unnamed", loc, n=n)),
            since=day_text(p.since, user.timezone, loc),
        )
        for n, p in enumerate(linked, 1)
    ]
    head = t("therapist.patients_title", loc, count=len(linked))
    for text in digest_view.pack(head, lines, separator="\n"):
        await update.effective_message.reply_text(text)


async def digest_command(update: Update, context: Ctx) -> None:
    """/digest: this week so far, on demand (the weekly digest still comes on its day)."""
    now = context.clock.now()
    async with transaction(context.sessions) as session:
        found = await require_therapist(update, session)
        if found is None:
            return
        user, therapist = found
        tz = digest.valid_zone(user.timezone)
        period = digest.current_week(now, tz)
        result = (await digest.compute(session, [therapist.id], period))[therapist.id]
    await digest_view.send_digest(
        context.bot, update.effective_chat.id, result, tz, user.language, current=True
    )


# ---------------------------------------------------------------------------------------------
# Operators
# ---------------------------------------------------------------------------------------------


async def grant(update: Update, context: Ctx) -> None:
    """/grant <telegram user id>: make someone a therapist (operators only)."""
    await set_role(update, context, add=True)


async def revoke_role(update: Update, context: Ctx) -> None:
    """/revoke_therapist <telegram user id>: remove the role and all its links."""
    await set_role(update, context, add=False)


async def set_role(update: Update, context: Ctx, *, add: bool) -> None:
    """To anyone outside ADMIN_IDS these commands do not exist."""
    if update.effective_user.id not in context.settings.admin_ids:
        await general.on_unknown_command(update, context)
        return
    args = context.args or []
    async with transaction(context.sessions) as session:
        admin = await patients.get_user(session, update.effective_user.id)
        loc = user_locale(admin, update)
        if len(args) != 1 or not TELEGRAM_ID.fullmatch(args[0]):
            await update.effective_message.reply_text(t("therapist.role_usage", loc))
            return
        target = int(args[0])
        change = therapists.grant if add else therapists.revoke
        changed = await change(session, target)
        key = {
            (True, True): "role_granted",
            (True, False): "role_already",
            (False, True): "role_removed",
            (False, False): "role_not_found",
        }[(add, changed)]
        await update.effective_message.reply_text(t(f"therapist.{key}", loc, id=target))
