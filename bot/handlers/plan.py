"""/plan: the patient's exercise programme (issue 17), and a therapist's editing of it.

Patients: see the programme, choose a starter programme (see it, then confirm), remove an
exercise that does not suit them, read how to do each one, answer the weekly proposal.
Buttons carry ``pl:<action>[:<arg>]``.

Therapists: ``tplan:<patient user id>[:<action>[:<arg>...]]`` (at most 60 bytes) opens and
edits a patient's programme; the therapist workspace's [Plan] button points at
``tplan:<patient user id>:o`` (the same view, sent as a new message under the patient page).
Every press is checked against an active link in the service (``programmes.can_manage``): a
second therapist or a forged id gets "not available" and nothing changes. The patient is told
what changed and by whom, after the commit.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Sequence

from telegram import InlineKeyboardMarkup, Update
from telegram.error import BadRequest, TelegramError

from bot.context import Ctx
from bot.db.models import ProgrammeChange, Therapist, User
from bot.db.session import transaction
from bot.handlers.ui import Button, chunk, keyboard, require_consent, user_locale
from bot.i18n import t
from bot.services import exercises, patients, programmes, progression, reviews, therapists
from bot.services.exercises import LIBRARY, REGIONS, STARTERS, Step, Unit
from bot.services.programmes import Current

log = logging.getLogger(__name__)

Reply = tuple[str, InlineKeyboardMarkup | None]
Outbox = list[tuple[int, str, InlineKeyboardMarkup | None]]  # (chat id, text, buttons)


# ---------------------------------------------------------------------------------------------
# Views (pure: text from steps)
# ---------------------------------------------------------------------------------------------


def name(key: str, loc: str) -> str:
    return t(f"exercises.{key}.name", loc)


def dose_text(step: Step, loc: str) -> str:
    dose = step.dose
    if dose.unit is Unit.MINUTES:
        return t("plan.dose.minutes", loc, amount=str(step.amount))
    key = f"plan.dose.{dose.unit}{'_side' if dose.per_side else ''}"
    return t(key, loc, sets=str(step.sets), amount=str(step.amount))


def level_dose(step: Step, loc: str) -> str:
    return f"{t('plan.level', loc, level=str(step.level))}, {dose_text(step, loc)}"


def variant(step: Step, loc: str) -> str:
    return t(f"exercises.{step.key}.level.{step.level}", loc)


def programme_lines(steps: Sequence[Step], loc: str) -> list[str]:
    """The prompt's lines: one per exercise, its name and dose (issue 17 item 4)."""
    return [
        t("plan.prompt_line", loc, name=name(s.key, loc), dose=dose_text(s, loc)) for s in steps
    ]


def prompt_programme(steps: Sequence[Step] | None, loc: str) -> str | None:
    """The block the daily prompt adds under its text, or None without a programme."""
    if not steps:
        return None
    return "\n".join((t("plan.prompt_title", loc), *programme_lines(steps, loc)))


def full_lines(steps: Sequence[Step], loc: str) -> list[str]:
    return [
        t(
            "plan.line",
            loc,
            name=name(s.key, loc),
            dose=level_dose(s, loc),
            variant=variant(s, loc),
        )
        for s in steps
    ]


def step_lines(steps: Sequence[Sequence], loc: str) -> str:
    """[[key, [level, sets, amount], [level, sets, amount]], ...] as "• Name: a → b" lines."""
    lines = []
    for key, before, after in steps:
        if key not in LIBRARY:
            continue
        first, then = Step(key, *before), Step(key, *after)
        show = dose_text if first.level == then.level else level_dose  # the level if it moves
        lines.append(
            t(
                "plan.step_line",
                loc,
                name=name(key, loc),
                before=show(first, loc),
                after=show(then, loc),
            )
        )
    return "\n".join(lines)


def reason_text(reason: dict | None, loc: str) -> str:
    if not reason:
        return ""
    none = t("plan.reason_none", loc)
    usual = reason.get("usual")
    return t(
        "plan.reason",
        loc,
        sessions=str(reason.get("sessions", 0)),
        max_after=none if reason.get("max_after") is None else str(reason["max_after"]),
        usual=none if usual is None else f"{usual:g}",
        worse=str(reason.get("worse_mornings", 0)),
        flagged=str(reason.get("flagged", 0)),
    )


def therapist_label(name_: str | None, loc: str) -> str:
    return html.escape(name_) if name_ else t("therapist.unnamed_therapist", loc)


def patient_label(name_: str | None, loc: str) -> str:
    return html.escape(name_) if name_ else t("plan.unnamed_patient", loc)


def patient_view(found: Current | None, loc: str) -> Reply:
    """/plan for the patient: the programme (or none) and what they can do with it."""
    if found is None:
        rows = [[(t(f"plan.starter.{k}", loc), f"pl:s:{k}")] for k in STARTERS]
        return t("plan.none", loc), keyboard(rows)
    programme = found.programme
    parts = [t("plan.title", loc)]
    if programme.origin == "therapist":
        parts.append(
            t("plan.from_therapist", loc, therapist=therapist_label(programme.set_by, loc))
        )
    elif programme.starter:
        parts.append(
            t("plan.from_starter", loc, starter=t(f"plan.starter.{programme.starter}", loc))
        )
    if programme.auto_progress:
        parts.append(t("plan.auto_on", loc))
    steps = [s for s in found.steps if s.key in LIBRARY]
    parts.append("\n".join(full_lines(steps, loc)) if steps else t("plan.empty", loc))
    parts.append(t("plan.weekly_rule", loc))
    rows: list[list[Button]] = []
    if steps:
        rows.append([(t("plan.how_button", loc), "pl:how"), (t("plan.drop", loc), "pl:rm")])
    rows.append([(t("plan.choose_starter", loc), "pl:st")])
    return "\n\n".join(parts), keyboard(rows)


def how_text(steps: Sequence[Step], loc: str) -> str:
    items = [
        t(
            "plan.how_item",
            loc,
            name=name(s.key, loc),
            variant=variant(s, loc),
            how=t(f"exercises.{s.key}.how", loc),
        )
        for s in steps
    ]
    return "\n\n".join((t("plan.how_title", loc), *items))


def starters_view(loc: str) -> Reply:
    rows = [[(t(f"plan.starter.{k}", loc), f"pl:s:{k}")] for k in STARTERS]
    rows.append([(t("plan.back", loc), "pl:show")])
    return t("plan.starters_title", loc), keyboard(rows)


def preview_view(starter: str, found: Current | None, loc: str) -> Reply:
    lines = "\n".join(full_lines(exercises.starter_steps(starter), loc))
    text = t("plan.preview", loc, starter=t(f"plan.starter.{starter}", loc), lines=lines)
    if found is not None and found.programme.origin == "therapist" and found.rows:
        therapist = therapist_label(found.programme.set_by, loc)
        text += "\n\n" + t("plan.replaces_therapist", loc, therapist=therapist)
    rows = [[(t("plan.use", loc), f"pl:ok:{starter}")], [(t("plan.back", loc), "pl:st")]]
    return text, keyboard(rows)


def drop_view(found: Current, loc: str) -> Reply:
    rows = [
        [(name(r.exercise, loc), f"pl:x:{r.exercise}")] for r in found.rows if r.exercise in LIBRARY
    ]
    rows.append([(t("plan.back", loc), "pl:show")])
    return t("plan.drop_ask", loc), keyboard(rows)


def proposal_markup(change_id: int, direction: str, loc: str) -> InlineKeyboardMarkup:
    label = "plan.harder" if direction == progression.Direction.UP else "plan.easier"
    return keyboard(
        [[(t(label, loc), f"pl:y:{change_id}")], [(t("plan.keep", loc), f"pl:n:{change_id}")]]
    )


def short_dose(step: Step, loc: str) -> str:
    """ "level 2: 2×10" (a compact dose for the history)."""
    if step.dose.unit is Unit.MINUTES:
        return t("plan.short_minutes", loc, level=str(step.level), amount=str(step.amount))
    return t("plan.short", loc, level=str(step.level), sets=str(step.sets), amount=str(step.amount))


def short_steps(steps: Sequence[Sequence], loc: str) -> str:
    return "; ".join(
        t(
            "plan.short_step",
            loc,
            name=name(key, loc),
            before=short_dose(Step(key, *before), loc),
            after=short_dose(Step(key, *after), loc),
        )
        for key, before, after in steps
        if key in LIBRARY
    )


def history_lines(
    changes: Sequence[ProgrammeChange], tz_date, loc: str, patient_name: str | None = None
) -> list[str]:
    """Programme changes for /progress, newest first; ``tz_date`` turns a time into a date.
    ``patient_name`` words the patient's own changes in the third person (the clinic report)."""
    lines = []
    for c in changes:
        detail = c.detail or {}
        who = (
            t("plan.who_therapist", loc, therapist=therapist_label(c.by_name, loc))
            if c.by == "therapist"
            else (patient_name or t("plan.who_you", loc))
        )
        exercise = detail.get("exercise")
        starter = detail.get("starter")
        values = {
            "date": tz_date(c.created_at),
            "who": who,
            "exercise": name(exercise, loc) if exercise in LIBRARY else (exercise or ""),
            "starter": t(f"plan.starter.{starter}", loc) if starter in STARTERS else "",
            "steps": short_steps(detail.get("steps", []), loc),
            "reason": reason_text(c.reason, loc),
            "status": t(f"plan.status.{c.status}", loc),
        }
        key = f"plan.history_{c.kind}"
        if c.kind == "starter" and patient_name:  # the report speaks of the patient
            key += "_named"
        lines.append(t(key, loc, **values))
    return lines


def history_text(changes: Sequence[ProgrammeChange], tz: str | None, loc: str) -> str:
    """The /progress block: the latest programme changes with their reasons."""
    from bot.charts import short_date
    from bot.services.schedule_rules import zone

    zone_ = zone(tz or "UTC")
    lines = history_lines(changes, lambda when: short_date(when.astimezone(zone_).date(), loc), loc)
    return "\n".join((t("plan.history_title", loc), *lines))


# ---------------------------------------------------------------------------------------------
# The patient
# ---------------------------------------------------------------------------------------------


async def plan_command(update: Update, context: Ctx) -> None:
    """/plan: the programme; a therapist sees their patients' programmes first."""
    async with transaction(context.sessions) as session:
        found = await _therapist_of_update(update, session)
        if found is not None:
            text, markup = await therapist_list(session, *found)
        else:
            user = await require_consent(update, session)
            if user is None:
                return
            text, markup = patient_view(await programmes.current(session, user.id), user.language)
    await update.effective_message.reply_text(text, reply_markup=markup)


async def _therapist_of_update(update: Update, session) -> tuple[User, Therapist] | None:
    """A therapist who never consented as a patient still manages their patients' plans."""
    user = await patients.get_user(session, update.effective_user.id)
    therapist = await therapists.get_therapist(session, user.id) if user else None
    return (user, therapist) if therapist else None


async def on_button(update: Update, context: Ctx) -> None:
    """pl:<action>[:<arg>] presses of the patient."""
    query = update.callback_query
    action, _, arg = (query.data or "").removeprefix("pl:").partition(":")
    now = context.clock.now()
    outbox: Outbox = []
    edit: Reply | None = None
    reply: Reply | None = None
    async with transaction(context.sessions) as session:
        user = await patients.get_user(session, update.effective_user.id)
        if user is None or not user.consented:
            await query.answer(t("checkin.closed", user_locale(user, update)))
            return
        loc = user.language
        found = await programmes.current(session, user.id)
        if action == "show":
            edit = patient_view(found, loc)
        elif action == "st":
            edit = starters_view(loc)
        elif action == "s" and arg in STARTERS:
            edit = preview_view(arg, found, loc)
        elif action == "ok" and arg in STARTERS:
            if found is not None and found.programme.origin == "therapist":
                outbox += await tell_therapists(session, user, "t_patient_replaced", starter=arg)
            found = await programmes.choose_starter(session, user, arg, now)
            starter = t(f"plan.starter.{arg}", loc)
            edit = (t("plan.chosen", loc, starter=starter), None)
            reply = patient_view(found, loc)
        elif action == "rm" and found and found.rows:
            edit = drop_view(found, loc)
        elif action == "x" and found:
            if not await programmes.drop_exercise(session, user, arg, now):
                await query.answer(t("plan.not_there", loc))
                return
            exercise = name(arg, loc) if arg in LIBRARY else arg
            if found.programme.origin == "therapist" and arg in LIBRARY:
                outbox += await tell_therapists(session, user, "t_patient_dropped", exercise=arg)
            edit = (t("plan.dropped", loc, exercise=exercise), None)
            reply = patient_view(await programmes.current(session, user.id), loc)
        elif action == "how":
            steps = [s for s in found.steps if s.key in LIBRARY] if found else []
            reply = (how_text(steps, loc), None) if steps else (t("plan.no_programme", loc), None)
        elif action in ("y", "n") and arg.isdigit():
            result = await reviews.decide(
                session, int(arg), accept=action == "y", patient=user, now=now
            )
            if result is None:
                await query.answer(t("plan.stale", loc))
                return
            if action == "y":
                key = "plan.applied_up" if result.direction == "up" else "plan.applied_down"
            else:
                key = "plan.kept"
            edit = (f"{query.message.text_html}\n\n{t(key, loc)}", None)
        else:
            await query.answer(t("plan.stale", loc))
            return
    await query.answer()
    if edit is not None:
        await _edit(query, *edit)
    if reply is not None:
        await query.message.reply_text(reply[0], reply_markup=reply[1])
    await send_all(context, outbox)


async def tell_therapists(session, patient: User, key: str, **keys: str) -> Outbox:
    """A patient's change to a programme their therapist set, for the therapists they share
    with (each in their own language)."""
    out: Outbox = []
    for therapist in (await programmes.therapists_of(session, [patient.id])).get(patient.id, []):
        tloc = therapist.language
        values = {"patient": patient_label(patient.display_name, tloc)}
        if "exercise" in keys:
            values["exercise"] = name(keys["exercise"], tloc)
        if "starter" in keys:
            values["starter"] = t(f"plan.starter.{keys['starter']}", tloc)
        out.append((therapist.telegram_id, t(f"plan.{key}", tloc, **values), None))
    return out


async def _edit(query, text: str, markup: InlineKeyboardMarkup | None) -> None:
    try:
        await query.message.edit_text(text, reply_markup=markup)
    except BadRequest:  # not modified (a double tap): nothing to show
        pass


async def send_all(context: Ctx, outbox: Outbox) -> None:
    """Messages to other people (the patient, the therapist), after the commit; one failed
    send (a blocked bot) does not stop the rest."""
    for chat_id, text, markup in outbox:
        try:
            await context.bot.send_message(chat_id, text, reply_markup=markup)
        except TelegramError as exc:
            log.info("programme message to %s not sent: %s", chat_id, exc)


# ---------------------------------------------------------------------------------------------
# The therapist
# ---------------------------------------------------------------------------------------------


async def therapist_list(session, user: User, therapist: Therapist) -> Reply:
    loc = user.language
    people = await programmes.patients_with_plans(session, therapist)
    rows: list[list[Button]] = [
        [
            (
                t(
                    "plan.t_patient_button",
                    loc,
                    patient=p.name or t("plan.unnamed_patient", loc),
                    count=str(p.exercises),
                ),
                f"tplan:{p.user_id}",
            )
        ]
        for p in people
    ]
    if user.consented:
        rows.append([(t("plan.t_own", loc), "pl:show")])
    text = t("plan.t_patients_title" if people else "plan.t_no_patients", loc)
    return text, keyboard(rows) if rows else None


async def therapist_view(session, therapist: Therapist, patient: User, loc: str) -> Reply:
    found = await programmes.current(session, patient.id)
    pid = patient.id
    parts = [t("plan.t_title", loc, patient=patient_label(patient.display_name, loc))]
    steps = [s for s in found.steps if s.key in LIBRARY] if found else []
    if found and found.programme.origin == "starter" and found.programme.starter:
        starter = t(f"plan.starter.{found.programme.starter}", loc)
        parts.append(t("plan.t_from_starter", loc, starter=starter))
    parts.append("\n".join(full_lines(steps, loc)) if steps else t("plan.t_empty", loc))
    auto = bool(found and found.programme.auto_progress)
    parts.append(t("plan.t_auto_state_on" if auto else "plan.t_auto_state_off", loc))
    rows: list[list[Button]] = [
        [(t("plan.t_edit", loc, name=name(s.key, loc)), f"tplan:{pid}:e:{s.key}")] for s in steps
    ]
    rows.append([(t("plan.t_add", loc), f"tplan:{pid}:add")])
    if found is not None:
        label = "plan.t_auto_turn_off" if auto else "plan.t_auto_turn_on"
        rows.append([(t(label, loc), f"tplan:{pid}:au:{0 if auto else 1}")])
    proposal = await programmes.open_proposal(session, pid)
    if proposal is not None:
        what = t(f"plan.t_what_{'up' if proposal.kind == 'step_up' else 'down'}", loc)
        parts.append(t("plan.t_pending", loc, what=what))
        parts.append(step_lines((proposal.detail or {}).get("steps", []), loc))
        rows.append(
            [
                (t("plan.t_approve", loc), f"tplan:{pid}:ap:{proposal.id}"),
                (t("plan.t_keep", loc), f"tplan:{pid}:kp:{proposal.id}"),
            ]
        )
    return "\n\n".join(parts), keyboard(rows)


def edit_exercise_view(pid: int, step: Step, loc: str) -> Reply:
    exercise = step.exercise
    levels = [
        (
            ("✓ " if n == step.level else "") + t("plan.t_level_button", loc, level=str(n)),
            f"tplan:{pid}:l:{step.key}:{n}",
        )
        for n in range(1, len(exercise.levels) + 1)
    ]
    dose = step.dose
    amounts = [
        (("✓ " if a == step.amount else "") + str(a), f"tplan:{pid}:n:{step.key}:{a}")
        for a in range(dose.low, dose.high + 1, dose.step)
    ]
    rows = [levels, *chunk(amounts, 6)]
    rows.append([(t("plan.t_remove", loc), f"tplan:{pid}:x:{step.key}")])
    rows.append([(t("plan.back", loc), f"tplan:{pid}")])
    text = t(
        "plan.t_edit_title",
        loc,
        name=name(step.key, loc),
        variant=variant(step, loc),
        dose=level_dose(step, loc),
    )
    return text, keyboard(rows)


def regions_view(pid: int, loc: str) -> Reply:
    buttons = [(t(f"plan.region.{r}", loc), f"tplan:{pid}:r:{r}") for r in REGIONS]
    rows = [*chunk(buttons, 3), [(t("plan.back", loc), f"tplan:{pid}")]]
    return t("plan.t_regions", loc), keyboard(rows)


def add_view(pid: int, region: str, present: set[str], loc: str) -> Reply:
    buttons = [
        (name(e.key, loc), f"tplan:{pid}:a:{e.key}")
        for e in exercises.in_region(region)
        if e.key not in present
    ]
    rows = [*chunk(buttons, 2), [(t("plan.back", loc), f"tplan:{pid}:add")]]
    return t("plan.t_add_which", loc), keyboard(rows)


def told(patient: User, therapist: Therapist, key: str, **values: str) -> tuple[int, str, None]:
    loc = patient.language
    what = t(f"plan.changed_{key}", loc, **values)
    text = t("plan.changed", loc, therapist=therapist_label(therapist.display_name, loc), what=what)
    return patient.telegram_id, text, None


async def on_therapist_button(update: Update, context: Ctx) -> None:
    """tplan:<patient user id>[:<action>[:<arg>[:<value>]]]: a therapist's plan editing."""
    query = update.callback_query
    parts = (query.data or "").split(":")
    now = context.clock.now()
    outbox: Outbox = []
    async with transaction(context.sessions) as session:
        found_t = await _therapist_of_update(update, session)
        loc = user_locale(found_t[0] if found_t else None, update)
        if found_t is None or len(parts) < 2 or not therapists_id(parts[1]):
            await query.answer(t("plan.t_unavailable", loc), show_alert=True)
            return
        user, therapist = found_t
        therapists.set_display_name(therapist, update.effective_user.first_name)
        pid = int(parts[1])
        patient = await session.get(User, pid)
        if patient is None or not await programmes.can_manage(session, therapist, pid):
            await query.answer(t("plan.t_unavailable", loc), show_alert=True)
            return
        action = parts[2] if len(parts) > 2 else ""
        arg = parts[3] if len(parts) > 3 else ""
        value = parts[4] if len(parts) > 4 else ""
        ploc = patient.language
        view: Reply | None = None
        if action in ("", "o"):  # "o": from the patient page (workspace), as a new message
            view = await therapist_view(session, therapist, patient, loc)
        elif action == "e":
            found = await programmes.current(session, pid)
            row = found.row(arg) if found else None
            if row is None or arg not in LIBRARY:
                view = await therapist_view(session, therapist, patient, loc)
            else:
                view = edit_exercise_view(pid, programmes.as_step(row), loc)
        elif action in ("l", "n") and arg in LIBRARY and value.isdigit():
            found = await programmes.current(session, pid)
            row = found.row(arg) if found else None
            if row is None:
                await query.answer(t("plan.stale", loc))
                return
            level, amount = (int(value), None) if action == "l" else (row.level, int(value))
            changed = await programmes.set_dose(session, therapist, pid, arg, level, amount, now)
            if changed is None:
                await query.answer()
                return
            after = changed[1]
            outbox.append(
                told(
                    patient,
                    therapist,
                    "dose",
                    exercise=name(arg, ploc),
                    level=t("plan.level", ploc, level=str(after.level)),
                    dose=dose_text(after, ploc),
                )
            )
            view = edit_exercise_view(pid, after, loc)
        elif action == "x" and arg in LIBRARY:
            if await programmes.remove_exercise(session, therapist, pid, arg, now):
                outbox.append(told(patient, therapist, "removed", exercise=name(arg, ploc)))
            view = await therapist_view(session, therapist, patient, loc)
        elif action == "add":
            view = regions_view(pid, loc)
        elif action == "r" and arg in REGIONS:
            found = await programmes.current(session, pid)
            present = {r.exercise for r in found.rows} if found else set()
            view = add_view(pid, arg, present, loc)
        elif action == "a" and arg in LIBRARY:
            step = await programmes.add_exercise(session, therapist, pid, arg, now)
            if step is not None:
                outbox.append(
                    told(
                        patient,
                        therapist,
                        "added",
                        exercise=name(arg, ploc),
                        dose=level_dose(step, ploc),
                    )
                )
            view = await therapist_view(session, therapist, patient, loc)
        elif action == "au" and arg in ("0", "1"):
            if await programmes.set_auto(session, therapist, pid, arg == "1", now):
                outbox.append(told(patient, therapist, "auto_on" if arg == "1" else "auto_off"))
            view = await therapist_view(session, therapist, patient, loc)
        elif action in ("ap", "kp") and arg.isdigit():
            result = await reviews.decide(
                session,
                int(arg),
                accept=action == "ap",
                therapist=therapist,
                now=now,
                patient_id=pid,
            )
            if result is None:
                await query.answer(t("plan.stale", loc))
                return
            if action == "ap":
                key = "plan.approved_up" if result.direction == "up" else "plan.approved_down"
                lines = step_lines(result.steps, ploc)
                outbox.append(
                    (
                        patient.telegram_id,
                        t(
                            key,
                            ploc,
                            therapist=therapist_label(therapist.display_name, ploc),
                            lines=lines,
                        ),
                        None,
                    )
                )
                note = t("plan.t_approved", loc, patient=patient_label(patient.display_name, loc))
            else:
                note = t("plan.t_kept", loc)
            text, markup = await therapist_view(session, therapist, patient, loc)
            view = (f"{note}\n\n{text}", markup)
        else:
            await query.answer(t("plan.stale", loc))
            return
    await query.answer()
    if view is not None and action == "o":
        await query.message.reply_text(view[0], reply_markup=view[1])
    elif view is not None:
        await _edit(query, *view)
    await send_all(context, outbox)


def therapists_id(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= 12
