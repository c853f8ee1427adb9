"""The exercise prompt and the pain check-in: the prompt's pain-before keypad (its first tap
starts the session) / Snooze / Skip, Done, pain after with the tailored reply and the optional
effort below it (3 taps); the forgotten-Done nudge and "Did you do it?"; the barrier after a
skip; the next-morning question; /pain, /log. ``prompt_message`` composes every prompt.

Buttons carry ``ci:<checkin id>:<action>[:<value>]`` (at most 30 bytes, well under Telegram's
64). Every press is checked against the check-in's status by ``bot.services.checkins``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from telegram import InlineKeyboardMarkup, Message, Update
from telegram.error import BadRequest

from bot import l10n
from bot.context import Ctx
from bot.db.models import CheckIn, User
from bot.db.session import transaction
from bot.handlers import feedback_text, general
from bot.handlers.ui import (
    Button,
    drop_buttons,
    keyboard,
    parse_id,
    parse_int,
    require_consent,
    user_locale,
)
from bot.i18n import t
from bot.services import checkins, education, feedback, habit, patients, safety
from bot.services.checkins import Outcome
from bot.services.habit import SlotKind
from bot.services.parsing import parse_score
from bot.services.reminders import Status

ANSWER_KEYS = {
    Outcome.CLOSED: "checkin.closed",
    Outcome.WRONG_STEP: "checkin.wrong_step",
    Outcome.DUPLICATE: "checkin.duplicate",
}


def parse_score_data(value: str) -> int | None:
    """A pain score from callback data: ASCII digits on the rules' 0-10 scale, else None."""
    return parse_int(value, feedback.SCALE_MIN, feedback.SCALE_MAX)


def score_keypad(prefix: str) -> list[list[Button]]:
    """0-10 in two rows (0-5, 6-10) so every number is big enough to tap."""
    return [
        [(str(n), f"{prefix}:{n}") for n in range(0, 6)],
        [(str(n), f"{prefix}:{n}") for n in range(6, 11)],
    ]


def prompt_rows(
    checkin_id: int, loc: str, next_day_id: int | None = None, *, how: bool = False
) -> list[list[Button]]:
    """The daily prompt's buttons: the pain-before keypad (its first tap starts the session),
    then Snooze 15 min, 1 h / Skip today (and [How?] when the prompt names a programme,
    issue 17); a merged next-morning question's row on top."""
    c = f"ci:{checkin_id}"
    rows = next_day_rows(next_day_id, loc) if next_day_id else []
    return [
        *rows,
        *score_keypad(f"{c}:b"),
        [
            (t("checkin.snooze_15", loc), f"{c}:snz:15"),
            (t("checkin.snooze_60", loc), f"{c}:snz:60"),
        ],
        [(t("checkin.skip", loc), f"{c}:skip")]
        + ([(t("plan.how_button", loc), "pl:how")] if how else []),
    ]


def prompt_markup(
    checkin_id: int, loc: str, next_day_id: int | None = None, *, how: bool = False
) -> InlineKeyboardMarkup:
    return keyboard(prompt_rows(checkin_id, loc, next_day_id, how=how))


def prompt_text(
    loc: str,
    *,
    again: bool = False,
    kind: str = SlotKind.PROMPT,
    lighter: bool = False,
    next_day: bool = False,
    programme: str | None = None,
) -> str:
    """The prompt's words: [the next-morning question] [a weekly note] [go lighter] the
    reminder, [today's programme (``plan.prompt_programme``, issue 17)], and the pain
    question its keypad answers."""
    parts = [t("checkin.next_day_ask", loc)] if next_day else []
    if kind == SlotKind.WEEKLY:
        parts.append(t("habit.weekly_note", loc))
    if lighter:
        parts.append(t("habit.lighter", loc))
    parts.append(t("checkin.prompt_again" if again else "checkin.prompt", loc))
    if programme:
        parts.append(programme)
    parts.append(ask_score_text(loc, "habit.prompt_pain"))
    return "\n\n".join(parts)


def prompt_content(
    checkin_id: int,
    loc: str,
    *,
    again: bool = False,
    kind: str = SlotKind.PROMPT,
    lighter: bool = False,
    next_day_id: int | None = None,
    programme: str | None = None,
) -> tuple[str, list[list[Button]]]:
    """THE place a prompt is composed (the dispatcher, "Keep going", an old prompt pressed):
    text and buttons. The come-back offer replaces the regular prompt after days of silence."""
    if kind == SlotKind.COMEBACK:
        return t("habit.comeback", loc), comeback_rows(checkin_id, loc)
    text = prompt_text(
        loc,
        again=again,
        kind=kind,
        lighter=lighter,
        next_day=bool(next_day_id),
        programme=programme,
    )
    return text, prompt_rows(checkin_id, loc, next_day_id, how=bool(programme))


def prompt_message(checkin_id: int, loc: str, **options: Any) -> tuple[str, InlineKeyboardMarkup]:
    """``prompt_content`` with its buttons as a keyboard (``options``: those of prompt_content)."""
    text, rows = prompt_content(checkin_id, loc, **options)
    return text, keyboard(rows)


def comeback_rows(checkin_id: int, loc: str) -> list[list[Button]]:
    """[Keep going] [Fewer days] / [Another time] [Pause 1 week] (``hb:<id>:<choice>``)."""
    c = f"hb:{checkin_id}"
    return [
        [(t("habit.keep", loc), f"{c}:keep"), (t("habit.fewer", loc), f"{c}:fewer")],
        [(t("habit.later", loc), f"{c}:later"), (t("habit.pause", loc), f"{c}:pause")],
    ]


def comeback_markup(checkin_id: int, loc: str) -> InlineKeyboardMarkup:
    return keyboard(comeback_rows(checkin_id, loc))


def nudge_message(checkin_id: int, loc: str) -> tuple[str, InlineKeyboardMarkup]:
    """ "Finished? Tap Done", about 90 minutes after a session started without Done."""
    c = f"ci:{checkin_id}"
    rows = [[(t("checkin.done", loc), f"{c}:done")], [(t("checkin.cant", loc), f"{c}:cant")]]
    return t("habit.nudge", loc), keyboard(rows)


def done_question(checkin_id: int, loc: str) -> tuple[str, InlineKeyboardMarkup]:
    """ "Did you do it?", once, when a started session expired without Done."""
    c = f"ci:{checkin_id}:did"
    rows = [[(t("habit.did_yes", loc), f"{c}:yes"), (t("habit.did_no", loc), f"{c}:no")]]
    return t("habit.did_ask", loc), keyboard(rows)


def ask_score_text(loc: str, key: str) -> str:
    return f"{t(key, loc)}\n{t('checkin.scale', loc)}"


async def drop_rows(message: Message | None, marker: str) -> None:
    """Remove only the buttons whose data contains ``marker`` (a merged question answered)."""
    markup = message.reply_markup if message else None
    if markup is None:
        return
    rows = [
        [(b.text, b.callback_data) for b in row if marker not in (b.callback_data or "")]
        for row in markup.inline_keyboard
    ]
    rows = [row for row in rows if row]
    try:
        await message.edit_reply_markup(keyboard(rows) if rows else None)
    except BadRequest:
        pass


async def on_button(update: Update, context: Ctx) -> None:
    """Any ci:<id>:<action> press, applied only if it fits the check-in's current step."""
    query = update.callback_query
    parts = (query.data or "").split(":")
    checkin_id = parse_id(parts[1]) if len(parts) in (3, 4) else None
    if checkin_id is None:  # forged or malformed: a polite answer, no query
        await general.on_unknown_button(update, context)
        return
    action, value = parts[2], (parts[3] if len(parts) > 3 else "")
    now = context.clock.now()
    if action == "b" and await quick_before(query, context, checkin_id, value, now):
        return
    current: Reply | None = None
    reply: str | None = None
    text, markup = "", None
    async with transaction(context.sessions) as session:
        user, loaded = await checkins.load_pressed(
            session, checkin_id, update.effective_user.id, now
        )
        if user is None or not user.consented:
            await query.answer(t("checkin.closed", user_locale(user, update)))
            return
        habit.note_response(user, now)  # any press ends a silence
        checkin = loaded.checkin
        if action == "nd":
            outcome, verdict = await checkins.record_next_day(session, checkin_id, user, value)
            reply = await next_day_reply(session, user, outcome, verdict)
        elif checkin is not None and action == "bar":
            outcome = checkins.record_barrier(checkin, value)
        elif checkin is not None and action == "e":  # optional, after the session is recorded
            outcome = checkins.record_effort(checkin, value, now)
        elif checkin is not None and action == "did":
            outcome = checkins.confirm_done(checkin, value == "yes", now)
        elif loaded.outcome is not Outcome.OK:
            outcome = loaded.outcome
        else:
            outcome = await apply(action, value, checkin, user, context, query.message, session)
        if outcome is Outcome.CLOSED and action in STEP_ACTIONS:
            # An old prompt pressed anyway: answered with what is open now, if anything.
            current = await open_now(session, user, now)
        elif outcome is not Outcome.OK:
            await query.answer(t(ANSWER_KEYS[outcome], user.language))
            return
        elif action != "nd":
            if action in ("go", "done", "b"):
                patients.drop_open_question(user)  # the check-in's score question takes over
            if action == "a":
                await checkins.after_completed(session, checkin, user)
            shown = query.message.text if query.message else None
            text, markup = await compose_next(action, checkin, user, context, session, shown)
    # Committed first, then sent: no lock is held over the network, and a failed send never
    # leaves a patient with their buttons gone but nothing recorded. After a pain score the
    # keypad message turns into the next question (one call instead of two; bar B4).
    if outcome is not Outcome.OK:
        await answer_with_open(query, user, current)
        return
    if action == "nd":
        await asyncio.gather(query.answer(), drop_rows(query.message, ":nd:"))
        await query.message.reply_text(reply)
        return
    if action in ("b", "a"):
        await answer_and_turn(query, text, markup)
        return
    if action == "e":  # the explanation stays; only the optional question goes
        await asyncio.gather(query.answer(text), drop_buttons(query.message))
        return
    await asyncio.gather(query.answer(), drop_buttons(query.message))
    await query.message.reply_text(text, reply_markup=markup)


async def quick_before(query, context: Ctx, checkin_id: int, value: str, now) -> bool:
    """The everyday pain score before, recorded by one statement (``record_before_quick``)
    and answered as the general path would; False (nothing written) for any other case."""
    score = parse_score_data(value)
    if score is None:
        return False
    async with context.engine.begin() as conn:
        quick = await checkins.record_before_quick(
            conn, checkin_id, query.from_user.id, score, now, context.settings.done_nudge
        )
    if quick is None:
        return False
    shown = query.message.text if query.message else None
    text, markup = before_reply(
        quick.checkin_id, score, quick.language, quick.timezone, quick.lighter_next, shown
    )
    await answer_and_turn(query, text, markup)
    return True


async def answer_and_turn(query, text: str, markup: InlineKeyboardMarkup | None) -> None:
    """Stop the button's spinner, then turn the pressed message into the next question. One
    call after the other: in flight together, the two cost about 1.5 ms more CPU per press
    (bar B4: 5.3 against 3.5 ms for both), which a busy morning pays in throughput, while
    the edit lands one round trip later (tens of milliseconds)."""
    await query.answer()
    await query.message.edit_text(text, reply_markup=markup)


# Presses that belong to a check-in's steps: on a closed check-in, the open one is offered.
STEP_ACTIONS = ("go", "b", "snz", "skip", "cant", "done", "a")


async def open_now(session, user: User, now) -> Reply | None:
    """The question the patient's open check-in waits for now (None if nothing is open)."""
    checkin = await checkins.current_open(session, user, now)
    if checkin is None:
        return None
    return current_question(checkin, user, await programme_block(session, user))


async def programme_block(session, user: User) -> str | None:
    """Today's exercises for a prompt composed outside the dispatcher (issue 17), or None."""
    from bot.handlers.plan import prompt_programme  # plan imports this module
    from bot.services import programmes

    steps = await programmes.steps_for(session, [user.id])
    return prompt_programme(steps.get(user.id), user.language)


def current_question(checkin: CheckIn, user: User, programme: str | None = None) -> Reply:
    loc = user.language
    c = f"ci:{checkin.id}"
    if checkin.status == Status.STARTED:
        return ask_score_text(loc, "checkin.ask_before"), keyboard(score_keypad(f"{c}:b"))
    if checkin.status == Status.EXERCISING:
        return next_question("b", checkin, loc, tz=user.timezone)
    if checkin.status == Status.RATING:
        return ask_score_text(loc, "checkin.ask_after"), keyboard(score_keypad(f"{c}:a"))
    kind = SlotKind.WEEKLY if user.absence == habit.WEEKLY else SlotKind.PROMPT
    return prompt_message(
        checkin.id, loc, kind=kind, lighter=user.lighter_next, programme=programme
    )


async def answer_with_open(query, user: User, current: Reply | None) -> None:
    """The pressed message is out of date: its buttons go; what is open now comes below."""
    loc = user.language
    if current is None:
        await asyncio.gather(query.answer(t("checkin.closed", loc)), drop_buttons(query.message))
        return
    await asyncio.gather(query.answer(t("habit.old_prompt", loc)), drop_buttons(query.message))
    text, markup = current
    await query.message.reply_text(f"{t('habit.open_now', loc)}\n\n{text}", reply_markup=markup)


async def apply(action, value, checkin: CheckIn, user: User, context: Ctx, message, session):
    """Turn a press into a step of the check-in; an Outcome says if it was applied."""
    now = context.clock.now()
    if action == "go":
        return checkins.start(checkin, now)
    if action == "snz" and parse_int(value, 1, 24 * 60) is not None:
        return checkins.snooze(checkin, int(value), now)
    if action in ("skip", "cant"):
        return checkins.skip(checkin, now)
    if action in ("b", "a") and parse_score_data(value) is not None:
        return await record_score(action, checkin, int(value), user, context, session)
    if action == "gentle":
        return checkins.gentle(checkin)
    if action == "done":
        return checkins.done(checkin, now)
    return Outcome.WRONG_STEP  # forged or unknown: change nothing


async def record_score(action: str, checkin: CheckIn, score: int, user: User, context, session):
    """The pain before or after; the one after is judged against the patient's usual level."""
    now = context.clock.now()
    if action == "b":  # from the prompt's keypad too: that starts the session
        return checkins.record_before(checkin, score, now, context.settings.done_nudge)
    usual = await checkins.usual_level(session, user, now, exclude_checkin=checkin.id)
    outcome = checkins.record_after(checkin, score, now, usual=usual)
    if outcome is Outcome.OK:  # completed: the next-morning question gets its time
        await checkins.after_completed(session, checkin, user)
    return outcome


def before_reply(
    checkin_id: int, score: int, loc: str, tz: str | None, lighter_next: bool, shown: str | None
) -> Reply:
    """What follows the pain score before. After a worse morning the session starts lighter:
    said once, on the prompt when it carried it (``shown`` is the pressed message), else here
    (/log, or a prompt sent before the morning's answer)."""
    said = shown is not None and t("habit.lighter", loc) in shown
    last = "worse" if lighter_next and not said else None
    pre = feedback.before_session(score, last_next_morning=last)
    return before_question(checkin_id, loc, pre, tz)


def next_question(
    action: str,
    checkin: CheckIn,
    loc: str,
    pre: feedback.PreSession | None = None,
    tz: str | None = None,
) -> tuple[str, InlineKeyboardMarkup]:
    """What follows a pain score: after the one before, "do your session" (for pain 8+: a
    gentle version or skip, with the safety line; Done stays possible); after the one after,
    the optional effort question."""
    if action == "b":
        pre = pre or feedback.before_session(checkin.pain_before)
        return before_question(checkin.id, loc, pre, tz)
    c = f"ci:{checkin.id}"
    rows = [
        [(t(f"checkin.effort_{e}", loc), f"{c}:e:{e}") for e in checkins.EFFORTS],
        [(t("checkin.effort_skip", loc), f"{c}:e:none")],
    ]
    return t("checkin.ask_effort", loc), keyboard(rows)


def before_question(
    checkin_id: int, loc: str, pre: feedback.PreSession, tz: str | None
) -> tuple[str, InlineKeyboardMarkup]:
    c = f"ci:{checkin_id}"
    if pre.high:
        rows = [
            [(t("feedback.gentle", loc), f"{c}:gentle"), (t("checkin.skip", loc), f"{c}:cant")],
            [(t("checkin.done", loc), f"{c}:done")],
        ]
    else:
        rows = [
            [(t("checkin.done", loc), f"{c}:done")],
            [(t("checkin.cant", loc), f"{c}:cant")],
        ]
    return feedback_text.before_text(pre, loc, tz), keyboard(rows)


Reply = tuple[str, InlineKeyboardMarkup | None]


async def compose_next(
    action, checkin: CheckIn, user: User, context: Ctx, session, shown: str | None = None
) -> Reply:
    """After a step, the next question or the tailored education (composed, not yet sent)."""
    loc = user.language
    c = f"ci:{checkin.id}"
    if action == "go":
        return ask_score_text(loc, "checkin.ask_before"), keyboard(score_keypad(f"{c}:b"))
    if action == "snz":
        local = checkin.snooze_until.astimezone(patients.zone_of(user))
        return t("checkin.snoozed", loc, time=l10n.format_clock(local, loc)), None
    if action in ("skip", "cant"):
        return barrier_question(checkin, loc)
    if action == "b":
        return before_reply(
            checkin.id, checkin.pain_before, loc, user.timezone, user.lighter_next, shown
        )
    if action == "a":
        # The personal explanation right after the score; the effort question below it.
        explanation = await result_text(checkin, user, context, session)
        question, markup = next_question(action, checkin, loc)
        return f"{explanation}\n\n{question}", markup
    if action == "gentle":
        rows = [[(t("checkin.done", loc), f"{c}:done")], [(t("checkin.cant", loc), f"{c}:cant")]]
        return t("feedback.gentle_go", loc), keyboard(rows)
    if action == "done":
        return ask_score_text(loc, "checkin.ask_after"), keyboard(score_keypad(f"{c}:a"))
    if action == "e":
        return t("habit.effort_thanks", loc), None
    if action == "did":
        done = checkin.status == Status.COMPLETED
        return t("habit.did_recorded" if done else "habit.did_not", loc), None
    situation = checkins.BARRIER_SITUATION[checkin.barrier]  # action == "bar"
    tip = await education.pick_tip(
        session, user.id, situation, rng=context.bot_data.rng, now=context.clock.now()
    )
    lead = t(f"checkin.barrier_reply_{checkin.barrier}", loc)
    text = f"{lead}\n\n{education.render_tip(tip, loc)}"
    if checkin.barrier == "pain":  # "pain too high": the clinician safety line, always
        text += "\n\n" + feedback_text.safety_line(user.timezone, loc)
    return text, None


def barrier_question(checkin: CheckIn, loc: str) -> Reply:
    c = f"ci:{checkin.id}:bar"
    rows = [
        [
            (t("checkin.barrier_pain", loc), f"{c}:pain"),
            (t("checkin.barrier_time", loc), f"{c}:time"),
        ],
        [
            (t("checkin.barrier_fear", loc), f"{c}:fear"),
            (t("checkin.barrier_tired", loc), f"{c}:tired"),
        ],
        [(t("checkin.barrier_other", loc), f"{c}:other")],
    ]
    return t("checkin.ask_barrier", loc), keyboard(rows)


async def result_text(checkin: CheckIn, user: User, context: Ctx, session) -> str:
    """The reply from the clinical rules (bot/services/feedback.py): the numbers, what they
    mean, a tip that fits, the flag note and, for pain 8+, the safety line."""
    loc = user.language
    now = context.clock.now()
    usual = await checkins.usual_level(session, user, now, exclude_checkin=checkin.id)
    assessment = checkins.assessment(checkin, usual)
    tip = await education.pick_tip(
        session,
        user.id,
        education.for_checkin(assessment.situation),
        rng=context.bot_data.rng,
        now=now,
    )
    lines = feedback_text.result_lines(
        assessment,
        loc,
        tip=education.render_tip(tip, loc),
        first_session=await checkins.completed_count(session, user) == 1,
        linked=assessment.flag and await checkins.shares_with_therapist(session, user),
        tz=user.timezone,
    )
    return "\n\n".join(lines)


async def next_day_reply(session, user: User, outcome: Outcome, verdict) -> str | None:
    """What the next-morning answer means, said back (None: not recorded): the clinical
    rules' verdict, in issue 13's words."""
    if outcome is not Outcome.OK or verdict is None:
        return None
    linked = await checkins.shares_with_therapist(session, user)
    return feedback_text.morning_text(verdict, user.language, linked=linked)


def next_day_rows(checkin_id: int, loc: str) -> list[list[Button]]:
    c = f"ci:{checkin_id}:nd"
    return [[(t(f"checkin.next_day_{a}", loc), f"{c}:{a}") for a in checkins.NEXT_DAY_ANSWERS]]


def next_day_markup(checkin_id: int, loc: str) -> InlineKeyboardMarkup:
    return keyboard(next_day_rows(checkin_id, loc))


async def on_typed_score(update: Update, context: Ctx, session, user: User) -> bool:
    """A typed number while a check-in waits for one (pain before or after)."""
    checkin = await checkins.waiting_for_score(session, user, context.clock.now())
    if checkin is None:
        return False
    loc = user.language
    action = "a" if checkin.status == Status.RATING else "b"
    message = update.effective_message
    try:
        score = parse_score(message.text or "")
    except ValueError as exc:
        if checkin.status in checkins.PROMPT_STATUSES:
            return False  # only a number starts a session from the prompt; other text: a hint
        key = "checkin.ask_before" if action == "b" else "checkin.ask_after"
        lead = t(f"checkin.error_score_{exc}", loc)
        if safety.needs_safety_net(message.text):  # a worried question, not a typo
            lead = feedback_text.safety_net(user.timezone, loc, skip_button=False)
        await message.reply_text(
            f"{lead}\n\n{ask_score_text(loc, key)}",
            reply_markup=keyboard(score_keypad(f"ci:{checkin.id}:{action}")),
        )
        return True
    await record_score(action, checkin, score, user, context, session)
    text, markup = await compose_next(action, checkin, user, context, session)
    await message.reply_text(text, reply_markup=markup)
    return True


async def pain_command(update: Update, context: Ctx) -> None:
    """/pain [0-10]: record a standalone pain score now."""
    async with transaction(context.sessions) as session:
        user = await require_consent(update, session)
        if user is None:
            return
        if context.args:
            await record_pain_text(
                update.effective_message, context, session, user, " ".join(context.args)
            )
            return
        patients.set_state(user, "pain")
        await update.effective_message.reply_text(
            ask_score_text(user.language, "pain.ask"), reply_markup=keyboard(score_keypad("pain"))
        )


async def record_pain_text(message, context: Ctx, session, user: User, text: str) -> None:
    loc = user.language
    try:
        score = parse_score(text)
    except ValueError as exc:
        patients.set_state(user, "pain")
        await message.reply_text(
            f"{t(f'checkin.error_score_{exc}', loc)}\n\n{ask_score_text(loc, 'pain.ask')}",
            reply_markup=keyboard(score_keypad("pain")),
        )
        return
    await checkins.record_pain(session, user, score, context.clock.now())
    patients.set_state(user, None)
    text = t("pain.recorded", loc, score=score)
    if feedback.is_high(score):  # pain 8+: the clinician safety line
        text += "\n\n" + feedback_text.safety_line(user.timezone, loc)
    await message.reply_text(text)


async def on_pain_text(update: Update, context: Ctx, session, user: User) -> None:
    """Typed answer after /pain."""
    await record_pain_text(
        update.effective_message, context, session, user, update.effective_message.text or ""
    )


async def on_pain_button(update: Update, context: Ctx) -> None:
    """pain:<n> from the /pain keypad; recorded once, the keypad then disappears."""
    query = update.callback_query
    value = (query.data or "").partition(":")[2]
    async with transaction(context.sessions) as session:
        user = await patients.get_user(session, update.effective_user.id)
        if user is None or not user.consented or parse_score_data(value) is None:
            await query.answer(t("checkin.closed", user_locale(user, update)))
            return
        if user.conv_state != "pain":  # already recorded from this keypad (a double tap)
            await query.answer(t("checkin.duplicate", user.language))
            return
        await query.answer()
        await drop_buttons(query.message)
        await record_pain_text(query.message, context, session, user, value)


async def log_command(update: Update, context: Ctx) -> None:
    """/log: record a session done without a prompt, with the same questions."""
    async with transaction(context.sessions) as session:
        user = await require_consent(update, session)
        if user is None:
            return
        patients.set_state(user, None)
        checkin = await checkins.begin_log(
            session, user, context.clock.now(), context.settings.checkin_expiry
        )
        loc = user.language
        text = f"{t('log.intro', loc)}\n\n{ask_score_text(loc, 'checkin.ask_before')}"
        markup = keyboard(score_keypad(f"ci:{checkin.id}:b"))
    # After the commit: a keypad pressed at once must find its check-in.
    await update.effective_message.reply_text(text, reply_markup=markup)


def register_text_routes() -> None:
    general.TEXT_ROUTES["pain"] = on_pain_text
    general.TEXT_ROUTES.setdefault("*", [])
    if on_typed_score not in general.TEXT_ROUTES["*"]:
        general.TEXT_ROUTES["*"].append(on_typed_score)
