"""Exercise programmes end to end (issue 17): /plan with starter programmes, a therapist's
changes through active links only, today's programme in the prompt, and the weekly
pain-guided progression over simulated weeks."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import event, select

from bot.db.models import CheckIn, Programme, ProgrammeChange, ProgrammeExercise, User
from bot.scheduling.reviews import run_reviews
from bot.services import exercises, export, programmes
from bot.services.exercises import Step
from bot.services.reminders import Status
from tests.conftest import setup_through, tx
from tests.test_checkin import DUE, tick
from tests.test_therapist_links import make_therapist, new_invite

LOCALES = ("en", "da", "es")
PATIENT, THERAPIST, OTHER = 8101, 7101, 7102


async def ready(fake, loc="en", uid=PATIENT, name="Ben"):
    user = fake.user(uid, name, language_code=loc)
    await setup_through(user, loc)
    return user


async def plan_rows(sessions, telegram_id=PATIENT) -> list[tuple[str, int, int, int]]:
    async with sessions() as s:
        rows = await s.scalars(
            select(ProgrammeExercise)
            .join(User, User.id == ProgrammeExercise.user_id)
            .where(User.telegram_id == telegram_id)
            .order_by(ProgrammeExercise.position)
        )
        return [(r.exercise, r.level, r.sets, r.amount) for r in rows]


async def changes_of(sessions, telegram_id=PATIENT) -> list[ProgrammeChange]:
    async with sessions() as s:
        rows = await s.scalars(
            select(ProgrammeChange)
            .join(User, User.id == ProgrammeChange.user_id)
            .where(User.telegram_id == telegram_id)
            .order_by(ProgrammeChange.id)
        )
        return list(rows)


async def user_id(sessions, telegram_id=PATIENT) -> int:
    async with sessions() as s:
        return await s.scalar(select(User.id).where(User.telegram_id == telegram_id))


async def choose(user, loc: str, starter: str = "knee_hip") -> None:
    await user.send("/plan")
    await user.press(tx(f"plan.starter.{starter}", loc))
    await user.press(tx("plan.use", loc))


# --- /plan with a starter programme ---------------------------------------------------------


@pytest.mark.parametrize("loc", LOCALES)
async def test_plan_choose_a_starter_see_it_confirm_and_drop_one(app, fake, sessions, loc):
    ben = await ready(fake, loc)
    await ben.send("/plan")
    assert ben.last.text.startswith(tx("plan.none", loc))
    assert [row[0] for row in ben.last.buttons] == [
        tx(f"plan.starter.{k}", loc) for k in exercises.STARTERS
    ]
    await ben.press(tx("plan.starter.knee_hip", loc))
    preview = ben.last.text
    # Seen before anything is stored: every exercise with its level-1 dose.
    for step in exercises.starter_steps("knee_hip"):
        assert tx(f"exercises.{step.key}.name", loc) in preview
    assert tx("plan.dose.reps", loc, sets="2", amount="8") in preview
    assert await plan_rows(sessions) == []
    await ben.press(tx("plan.use", loc))
    chosen = fake.chat_messages(PATIENT)[-2:]
    assert chosen[0].text.startswith(
        tx("plan.chosen", loc, starter=tx("plan.starter.knee_hip", loc))
    )
    assert chosen[1].text.startswith(tx("plan.title", loc))
    assert await plan_rows(sessions) == [
        ("sit_to_stand", 1, 2, 8),
        ("step_up", 1, 2, 6),
        ("bridge", 1, 2, 8),
        ("side_lying_hip_abduction", 1, 2, 8),
        ("calf_raise", 1, 2, 10),
    ]
    # The how-to texts, then drop one that does not suit.
    await ben.press(tx("plan.how_button", loc))
    assert tx("exercises.bridge.how", loc) in ben.last.text
    await ben.press(tx("plan.drop", loc))
    await ben.press(tx("exercises.bridge.name", loc))
    assert "bridge" not in [r[0] for r in await plan_rows(sessions)]
    assert tx("exercises.bridge.name", loc) not in ben.last.text  # the new /plan view
    assert [c.kind for c in await changes_of(sessions)] == ["starter", "removed"]
    # /export carries the programme and its changes.
    await ben.send("/export")
    csv_text = fake.chat_messages(PATIENT)[-2].document.decode("utf-8-sig")
    # In the patient's language, with their spreadsheet's separator.
    sep = export.csv_delimiter(loc)
    record = tx("export.record.programme_exercise", loc)
    name = tx("exercises.sit_to_stand.name", loc)
    assert sep.join((record, "", "", "", name)) in csv_text
    assert tx("export.record.programme_change", loc) in csv_text and "removed" in csv_text
    assert not fake.errors


async def test_forged_or_stale_plan_buttons_change_nothing(app, fake, sessions):
    ben = await ready(fake)
    await choose(ben, "en")
    before = await plan_rows(sessions)
    for data in ("pl:x:nonsense", "pl:ok:nonsense", "pl:y:999999", "pl:zz"):
        await ben.press(callback_data=data)
    await ben.press(callback_data="pl:x:bridge")
    await ben.press(callback_data="pl:x:bridge")  # a double tap: removed once
    assert await plan_rows(sessions) == [r for r in before if r[0] != "bridge"]
    assert [c.kind for c in await changes_of(sessions)] == ["starter", "removed"]
    assert not fake.unanswered_callback_queries


# --- A therapist sets the plan --------------------------------------------------------------


async def linked(fake, sessions, loc="en"):
    """Anna (therapist) and Ben (patient), linked with Ben's consent."""
    anna = await make_therapist(fake, sessions, uid=THERAPIST, name="Anna")
    code = await new_invite(anna)
    ben = await ready(fake, loc)
    await ben.send(f"/start {code}")
    await ben.press(tx("therapist.link_yes", loc))
    return anna, ben


@pytest.mark.parametrize("loc", ["en", "da"])
async def test_therapist_changes_the_plan_and_the_patient_is_told(app, fake, sessions, loc):
    anna, ben = await linked(fake, sessions, loc)
    pid = await user_id(sessions)
    await anna.send("/plan")
    assert anna.last.buttons[0] == [tx("plan.t_patient_button", "en", patient="Ben", count="0")]
    await anna.press(tx("plan.t_patient_button", "en", patient="Ben", count="0"))
    await anna.press(tx("plan.t_add", "en"))
    await anna.press(tx("plan.region.knee", "en"))
    await anna.press(tx("exercises.sit_to_stand.name", "en"))
    assert await plan_rows(sessions) == [("sit_to_stand", 1, 2, 8)]
    told = ben.last.text
    assert told.startswith(tx("plan.changed", loc, therapist="Anna", what="").split(":")[0])
    assert tx("exercises.sit_to_stand.name", loc) in told
    # Level 2, then 10 repetitions: two taps, each told with the new dose.
    await anna.press(tx("plan.t_edit", "en", name=tx("exercises.sit_to_stand.name", "en")))
    await anna.press(tx("plan.t_level_button", "en", level="2"))
    await anna.press("10")
    assert await plan_rows(sessions) == [("sit_to_stand", 2, 2, 10)]
    assert tx("plan.dose.reps", loc, sets="2", amount="10") in ben.last.text
    await anna.press(tx("plan.back", "en"))
    await anna.press(tx("plan.t_auto_turn_on", "en"))
    assert tx("plan.changed_auto_on", loc) in ben.last.text
    # Ben sees who set it in /plan; a starter would not silently replace it.
    await ben.send("/plan")
    assert tx("plan.from_therapist", loc, therapist="Anna") in ben.last.text
    await ben.press(tx("plan.choose_starter", loc))
    await ben.press(tx("plan.starter.back", loc))
    assert tx("plan.replaces_therapist", loc, therapist="Anna") in ben.last.text
    # Ben drops the exercise: Anna hears of it (in her own language).
    await ben.send("/plan")
    await ben.press(tx("plan.drop", loc))
    await ben.press(tx("exercises.sit_to_stand.name", loc))
    assert anna.last.text == tx(
        "plan.t_patient_dropped",
        "en",
        patient="Ben",
        exercise=tx("exercises.sit_to_stand.name", "en"),
    )
    kinds = [(c.kind, c.by, c.by_name) for c in await changes_of(sessions)]
    assert kinds == [
        ("added", "therapist", "Anna"),
        ("dose", "therapist", "Anna"),
        ("dose", "therapist", "Anna"),
        ("auto_on", "therapist", "Anna"),
        ("removed", "patient", None),
    ]
    async with sessions() as s:
        programme = await s.scalar(select(Programme).where(Programme.user_id == pid))
    assert programme.origin == "therapist" and programme.auto_progress
    assert not fake.errors


async def test_a_second_therapist_or_a_forged_id_gets_not_available(app, fake, sessions):
    anna, ben = await linked(fake, sessions)
    pid = await user_id(sessions)
    await anna.press(callback_data=f"tplan:{pid}:a:bridge")
    assert await plan_rows(sessions) == [("bridge", 1, 2, 8)]
    carl = await make_therapist(fake, sessions, uid=OTHER, name="Carl")
    before_ben = len(fake.chat_messages(PATIENT))
    for data in (
        f"tplan:{pid}",
        f"tplan:{pid}:a:walking",
        f"tplan:{pid}:x:bridge",
        f"tplan:{pid}:l:bridge:3",
        f"tplan:{pid}:au:1",
        "tplan:99999:a:walking",
        "tplan:abc",
    ):
        query_id = await carl.press(callback_data=data)
        answer = fake.calls_of("answerCallbackQuery")[-1]
        assert answer["callback_query_id"] == query_id
        assert answer["text"] == tx("plan.t_unavailable", "en")
    # A patient pressing a therapist's button is no therapist at all.
    await ben.press(callback_data=f"tplan:{pid}:x:bridge")
    assert await plan_rows(sessions) == [("bridge", 1, 2, 8)]
    assert len(fake.chat_messages(PATIENT)) == before_ben
    # Once Ben stops sharing, Anna's access ends too.
    await ben.send("/therapist")
    await ben.press(ben.last.buttons[0][0])
    await anna.press(callback_data=f"tplan:{pid}:x:bridge")
    assert fake.calls_of("answerCallbackQuery")[-1]["text"] == tx("plan.t_unavailable", "en")
    assert await plan_rows(sessions) == [("bridge", 1, 2, 8)]


# --- The prompt names today's programme -----------------------------------------------------


@pytest.mark.parametrize("loc", LOCALES)
async def test_the_prompt_names_the_exercises_with_a_how_button(app, fake, sessions, clock, loc):
    ben = await ready(fake, loc)
    await choose(ben, loc, "shoulder_neck")
    clock.set(DUE[loc])
    assert (await tick(app)).sent == 1
    prompt = ben.last
    lines = prompt.text.split("\n")
    assert lines[0] == tx("checkin.prompt", loc)
    assert tx("plan.prompt_title", loc) in lines
    first = tx(
        "plan.prompt_line",
        loc,
        name=tx("exercises.chin_tuck.name", loc),
        dose=tx("plan.dose.reps", loc, sets="2", amount="8"),
    )
    assert first in lines
    assert len([line for line in lines if line.startswith("• ")]) == 5
    assert tx("plan.how_button", loc) in sum(prompt.buttons, [])
    await ben.press(tx("plan.how_button", loc))
    assert tx("exercises.chin_tuck.how", loc) in ben.last.text
    # The check-in itself is unchanged: the pain before, pressed on the prompt, starts it.
    await ben.press("4", message_id=prompt.message_id)
    [edited] = [m for m in ben.messages if m.message_id == prompt.message_id]
    assert tx("checkin.done", loc) in sum(edited.buttons, [])


async def test_a_patient_without_a_programme_gets_the_plain_prompt(app, fake, clock):
    ben = await ready(fake)
    clock.set(DUE["en"])
    await tick(app)
    assert ben.last.text.startswith(tx("checkin.prompt", "en"))
    assert tx("plan.prompt_title", "en") not in ben.last.text
    assert tx("plan.how_button", "en") not in sum(ben.last.buttons, [])


async def test_programmes_are_read_in_one_query_per_batch(app, fake, sessions, clock, engine):
    people = [await ready(fake, uid=PATIENT + n, name=f"P{n}") for n in range(3)]
    for person in people:
        await choose(person, "en", "back")
    statements: list[str] = []

    def seen(conn, cursor, statement, *args):
        if "programme_exercises" in statement:
            statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", seen)
    try:
        clock.set(DUE["en"])
        assert (await tick(app)).sent == 3
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", seen)
    assert len(statements) == 1
    assert all(tx("exercises.bird_dog.name", "en") in p.last.text for p in people)


# --- Pain-guided progression over simulated weeks -------------------------------------------


async def session_via_prompt(app, user, clock, before: int, after: int, loc="en") -> None:
    """One real check-in from the day's prompt: before (on the prompt), Done, after, effort."""
    assert (await tick(app)).sent == 1
    await user.press(str(before))
    clock.advance(timedelta(minutes=30))
    await user.press(tx("checkin.done", loc))
    await user.press(str(after))
    await user.press(tx("checkin.effort_moderate", loc))


async def add_sessions(sessions, telegram_id, clock, sessions_, *, days_back=1):
    """Completed check-ins in the past week, straight into the database: (before, after,
    next-morning answer) each."""
    async with sessions() as s, s.begin():
        uid = await s.scalar(select(User.id).where(User.telegram_id == telegram_id))
        for n, (before, after, morning) in enumerate(sessions_):
            when = clock.now() - timedelta(days=days_back + n, hours=1)
            s.add(
                CheckIn(
                    user_id=uid,
                    kind="log",
                    status=Status.COMPLETED,
                    pain_before=before,
                    pain_after=after,
                    next_day_response=morning,
                    started_at=when,
                    completed_at=when,
                    created_at=when,
                )
            )


async def review(app, clock) -> int:
    data = app.bot_data
    return await run_reviews(app.bot, data.sessions, clock)


async def test_two_good_weeks_propose_a_step_up_the_patient_decides(app, fake, sessions, clock):
    """Real sessions from real prompts; the weekly review a week after choosing."""
    ben = await ready(fake)
    await choose(ben, "en", "knee_hip")  # chosen Monday 07:00 UTC: reviewed a week later
    for day in (0, 2):  # Monday and Wednesday, 08:30
        clock.set(DUE["en"] + timedelta(days=day))
        await session_via_prompt(app, ben, clock, before=3, after=4)
    clock.set(DUE["en"] + timedelta(days=3, hours=1))  # the next morning's question
    await tick(app)
    await ben.press(tx("checkin.next_day_same", "en"))
    clock.set(DUE["en"] + timedelta(days=6, hours=22))
    assert await review(app, clock) == 0  # not due yet
    clock.set(DUE["en"] + timedelta(days=7))
    assert await review(app, clock) == 1
    proposal = ben.last
    assert proposal.text.startswith(tx("plan.proposal_up", "en", reason="", lines="")[:20])
    reason = tx(
        "plan.reason",
        "en",
        sessions="2",
        max_after="4",
        usual=tx("plan.reason_none", "en"),
        worse="0",
        flagged="0",
    )
    assert reason in proposal.text
    assert proposal.buttons == [[tx("plan.harder", "en")], [tx("plan.keep", "en")]]
    assert await review(app, clock) == 0  # claimed once this week
    await ben.press(tx("plan.harder", "en"))
    assert tx("plan.applied_up", "en") in ben.last.text
    assert await plan_rows(sessions) == [
        ("sit_to_stand", 1, 2, 10),
        ("step_up", 1, 2, 8),
        ("bridge", 1, 2, 10),
        ("side_lying_hip_abduction", 1, 2, 10),
        ("calf_raise", 1, 2, 11),
    ]
    [*_, change] = await changes_of(sessions)
    await ben.press(callback_data=f"pl:y:{change.id}")  # a second press changes nothing more
    assert fake.calls_of("answerCallbackQuery")[-1]["text"] == tx("plan.stale", "en")
    assert (await plan_rows(sessions))[0] == ("sit_to_stand", 1, 2, 10)
    assert (change.kind, change.status, change.decided_by) == ("step_up", "applied", "patient")
    assert change.reason == {
        "sessions": 2,
        "max_after": 4,
        "usual": None,
        "worse_mornings": 0,
        "flagged": 0,
        "all_after_acceptable": True,
        "settled_mornings": 1,
    }
    # /progress shows the change and its numbers.
    await ben.send("/progress")
    text = fake.chat_messages(PATIENT)[-2].text
    assert tx("plan.history_title", "en") in text and reason in text
    # Week 2: one more good week (recorded directly) proposes the next step; kept this time.
    clock.set(DUE["en"] + timedelta(days=14))
    await add_sessions(sessions, PATIENT, clock, [(3, 3, "better"), (3, 4, None)])
    assert await review(app, clock) == 1
    await ben.press(tx("plan.keep", "en"))
    assert tx("plan.kept", "en") in ben.last.text
    assert (await plan_rows(sessions))[0] == ("sit_to_stand", 1, 2, 10)
    assert (await changes_of(sessions))[-1].status == "declined"


@pytest.mark.parametrize(
    "week, expected",
    [
        ([(3, 4, "worse"), (3, 4, "worse")], "step_down"),  # worse next morning twice
        ([(2, 7, None), (3, 3, None)], "step_down"),  # a session that was too much
        ([(3, 4, None)], "keep"),  # one session says too little
        ([(3, 4, "worse"), (3, 3, None), (3, 3, None)], "keep"),  # a worse morning: not up
        ([(6, 6, None), (5, 6, None)], "keep"),  # after 6 > 5, no rise of 2+: not up, not down
    ],
)
async def test_down_and_kept_weeks(app, fake, sessions, clock, week, expected):
    ben = await ready(fake)
    await choose(ben, "en", "back")
    async with sessions() as s, s.begin():
        uid = await s.scalar(select(User.id).where(User.telegram_id == PATIENT))
        rows = await s.scalars(select(ProgrammeExercise).where(ProgrammeExercise.user_id == uid))
        for row in rows:  # one step up already, so there is room to go down
            row.amount = exercises.step_up(programmes.as_step(row)).amount
    clock.advance(timedelta(days=7))
    await add_sessions(sessions, PATIENT, clock, week)
    before = await plan_rows(sessions)
    sent_before = len(fake.chat_messages(PATIENT))
    await review(app, clock)
    change = (await changes_of(sessions))[-1]
    assert change.kind == expected
    if expected == "keep":
        assert change.status == "applied" and len(fake.chat_messages(PATIENT)) == sent_before
        assert await plan_rows(sessions) == before
        return
    assert change.status == "proposed"
    assert ben.last.buttons == [[tx("plan.easier", "en")], [tx("plan.keep", "en")]]
    await ben.press(tx("plan.easier", "en"))
    assert await plan_rows(sessions) == [
        (k, level, sets, amount - exercises.LIBRARY[k].dose(level).step)
        for k, level, sets, amount in before
        if k != "walking"
    ] + [("walking", 1, 1, 10)] * ("walking" in [r[0] for r in before])


async def test_with_a_therapist_the_proposal_goes_to_them(app, fake, sessions, clock):
    anna, ben = await linked(fake, sessions)
    pid = await user_id(sessions)
    await choose(ben, "en", "whole_body")
    clock.advance(timedelta(days=7))
    await add_sessions(sessions, PATIENT, clock, [(4, 4, "same"), (4, 5, "better")])
    ben_before = len(fake.chat_messages(PATIENT))
    assert await review(app, clock) == 1
    assert len(fake.chat_messages(PATIENT)) == ben_before  # the patient is not asked
    assert anna.last.text.startswith(
        tx("plan.t_proposal", "en", patient="Ben", reason="", what="", lines="")[:20]
    )
    assert anna.last.buttons == [[tx("plan.t_approve", "en"), tx("plan.t_keep", "en")]]
    # The patient cannot approve their therapist's proposal with a forged press.
    change = (await changes_of(sessions))[-1]
    await ben.press(callback_data=f"pl:y:{change.id}")
    assert (await changes_of(sessions))[-1].status == "proposed"
    await anna.press(tx("plan.t_approve", "en"))
    assert anna.last.text.startswith(tx("plan.t_approved", "en", patient="Ben"))
    assert ben.last.text.startswith(tx("plan.approved_up", "en", therapist="Anna", lines="")[:30])
    assert ("walking", 1, 1, 15) in await plan_rows(sessions)
    assert (await changes_of(sessions))[-1].decided_by == "Anna"
    assert pid


async def test_automatic_progression_applies_and_tells_both(app, fake, sessions, clock):
    anna, ben = await linked(fake, sessions, "es")
    pid = await user_id(sessions)
    await anna.press(callback_data=f"tplan:{pid}:a:bridge")
    await anna.press(callback_data=f"tplan:{pid}:au:1")
    clock.advance(timedelta(days=7))
    await add_sessions(sessions, PATIENT, clock, [(3, 8, None), (3, 4, None)])
    assert await review(app, clock) == 0  # down from level 1's start: nothing to lower
    assert (await changes_of(sessions))[-1].kind == "keep"
    clock.advance(timedelta(days=7))
    await add_sessions(sessions, PATIENT, clock, [(3, 4, None), (3, 4, "same")])
    assert await review(app, clock) == 1
    assert await plan_rows(sessions) == [("bridge", 1, 2, 10)]
    assert ben.last.text.startswith("Revisión semanal de tu programa")
    assert tx("plan.t_what_up", "en") in anna.last.text
    change = (await changes_of(sessions))[-1]
    assert (change.kind, change.status, change.by) == ("step_up", "applied", "review")


def test_step_lines_and_doses_read_well():
    from bot.handlers.plan import dose_text, prompt_programme

    assert dose_text(Step("walking", 1, 1, 15), "da") == "15 minutter"
    assert dose_text(Step("side_plank", 1, 2, 20), "es") == "2 × 20 segundos por lado"
    assert prompt_programme([], "en") is None


def test_plan_locales_have_the_same_keys_and_placeholders():
    from bot.testing.fake_telegram import parse_html
    from tests.test_progress import PLACEHOLDER, load

    en = load("plan", "en")
    for loc in LOCALES:
        texts = load("plan", loc)
        assert set(texts) == set(en), loc
        for key, text in texts.items():
            assert set(PLACEHOLDER.findall(text)) == set(PLACEHOLDER.findall(en[key])), key
            assert "%" not in PLACEHOLDER.sub("", text).replace("%%", ""), key
            parse_html(text)
            words = [c for c in re.sub(r"<[^>]+>", "", PLACEHOLDER.sub("", text)) if c.isalpha()]
            if loc != "en" and len(words) > 6:
                assert text != en[key], (loc, key)  # translated, not copied


def test_every_proposal_fits_one_telegram_message():
    """The longest proposal: 8 exercises moving a level, in the longest language."""
    from bot.handlers.plan import reason_text, step_lines
    from bot.i18n import t

    keys = sorted(exercises.LIBRARY, key=lambda k: -len(tx(f"exercises.{k}.name", "es")))[:8]
    steps = [[k, [1, 2, 12], [2, 2, 8]] for k in keys if exercises.LIBRARY[k].dose(1).high >= 12]
    reason = {"sessions": 7, "max_after": 5, "usual": 6.5, "worse_mornings": 0, "flagged": 0}
    for loc in LOCALES:
        text = t(
            "plan.proposal_up", loc, reason=reason_text(reason, loc), lines=step_lines(steps, loc)
        )
        assert len(text) < 4096


# --- The therapist's patient page and digest (issue 16 item 3, issue 17 items 3 and 5) -----


def all_text(user) -> str:
    return "\n".join(m.text or m.caption or "" for m in user.messages)


@pytest.mark.parametrize("loc", ["en", "da"])
async def test_patient_page_opens_the_plan_and_shows_the_open_proposal(
    app, fake, sessions, clock, loc
):
    from tests.test_workspace import set_up_therapist  # a therapist who chose their language

    anna = await set_up_therapist(fake, sessions, THERAPIST, "Anna", loc)
    code = await new_invite(anna)
    ben = await ready(fake)
    await ben.send(f"/start {code}")
    await ben.press(tx("therapist.link_yes", "en"))
    pid = await user_id(sessions)
    await choose(ben, "en", "whole_body")
    pending = tx("plan.t_open_up", loc)
    # No proposal yet: the page has [Plan], and no programme line.
    await anna.send("/patients")
    await anna.press(anna.last.buttons[0][0])
    assert anna.last.buttons[-1] == [tx("workspace.button_plan", loc)]
    assert anna.last.button_data(tx("workspace.button_plan", loc)) == f"tplan:{pid}:o"
    assert pending not in anna.last.text
    # Two good weeks: the review proposes a step up to Anna.
    clock.advance(timedelta(days=7))
    await add_sessions(sessions, PATIENT, clock, [(4, 4, "same"), (4, 5, "better")])
    assert await review(app, clock) == 1
    await anna.send("/patients")
    await anna.press(anna.last.buttons[0][0])
    page = anna.last.text
    assert pending in page.split("\n")[2]  # right under the title
    # [Plan]: the programme under the page (the page stays), with the proposal to decide.
    shown = len(anna.messages)
    await anna.press(tx("workspace.button_plan", loc))
    assert len(anna.messages) == shown + 1 and anna.messages[-2].text == page
    view = anna.last.text
    assert view.startswith(tx("plan.t_title", loc, patient="Ben"))
    assert tx("plan.t_pending", loc, what=tx("plan.t_what_up", loc)) in view
    assert anna.last.buttons[-1] == [tx("plan.t_approve", loc), tx("plan.t_keep", loc)]
    # /digest: the same line in Ben's block.
    shown = len(anna.messages)
    await anna.send("/digest")
    digest_text = "\n".join(m.text or "" for m in anna.messages[shown:])
    assert pending in digest_text
    # A second therapist (or a forged id) gets "not available" and nothing else.
    carl = await make_therapist(fake, sessions, uid=OTHER, name="Carl")
    carl_shown = len(carl.messages)
    for data in (f"tplan:{pid}:o", "tplan:999999:o", "tplan:x:o"):
        await carl.press(callback_data=data)
        assert fake.calls_of("answerCallbackQuery")[-1]["text"] == tx("plan.t_unavailable", "en")
    assert len(carl.messages) == carl_shown
    assert (await changes_of(sessions))[-1].status == "proposed"
    # Approved: the line leaves the page.
    await anna.press(tx("plan.t_approve", loc))
    assert (await changes_of(sessions))[-1].status == "applied"
    await anna.send("/patients")
    await anna.press(anna.last.buttons[0][0])
    assert pending not in anna.last.text
    assert not fake.errors


async def test_open_proposals_of_many_patients_in_one_query(app, sessions, engine):
    async with sessions() as s, s.begin():
        users = [User(telegram_id=9500 + n, language="en") for n in range(3)]
        s.add_all(users)
        await s.flush()
        for u, kind, status in (
            (users[0], "step_up", "proposed"),
            (users[1], "step_down", "proposed"),
            (users[1], "step_up", "declined"),
            (users[2], "step_up", "applied"),
        ):
            s.add(ProgrammeChange(user_id=u.id, kind=kind, status=status, by="review"))
    statements = []

    def count(*_args):
        statements.append(1)

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        async with sessions() as s:
            found = await programmes.open_proposals(s, [u.id for u in users])
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)
    assert found == {users[0].id: "up", users[1].id: "down"}
    assert len(statements) == 1
