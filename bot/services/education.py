"""The bot's educational messages: which one fits what just happened, and which one comes next.

Every message rests on one claim in ``source-material/README.md`` and names the file it comes
from (``Tip.source``), so a therapist can trace it back. The texts live in
``locales/tips.<locale>.yml`` under the tip's key; this module only knows keys and rules.

Selection never repeats a message before its pool is used up: the patient's own history
(table ``tips_shown``) gives a count per key, and the least shown candidates win.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import TipShown
from bot.i18n import t

SRC_EIH = "000_4e8f90accc5175a5.txt"  # talk abstract on exercise-induced hypoalgesia
SRC_HABIT = "001_972a37726f0b7adf.txt"  # physiotherapy blog: a regular exercise habit
SRC_STRENGTH = "002_d7dc2a08e5b55ab1.txt"  # Danish physiotherapy blog: why training helps

# A pain score at or above this after exercise is treated as a large rise (see below).
HIGH_PAIN = 8


class Topic(StrEnum):
    EIH = "eih"
    HURT_NOT_HARM = "hurt_not_harm"
    REST_VS_ACTIVITY = "rest_vs_activity"
    NERVOUS_SYSTEM_LOAD = "nervous_system_load"
    STRENGTH_FITNESS = "strength_fitness"
    MOOD_SLEEP = "mood_sleep"
    STRESS_HORMONE = "stress_hormone"
    HABIT_PATIENCE = "habit_patience"
    TALK_TO_CLINICIAN = "talk_to_clinician"


class Situation(StrEnum):
    PAIN_FELL = "pain_fell"
    PAIN_SAME = "pain_same"
    PAIN_ROSE_LITTLE = "pain_rose_little"  # +1 or +2, ending below HIGH_PAIN
    PAIN_ROSE_LOT = "pain_rose_lot"  # +3 or more, or ending at HIGH_PAIN or above
    BARRIER_PAIN = "barrier_pain"
    BARRIER_TIME = "barrier_time"
    BARRIER_FEAR = "barrier_fear"
    BARRIER_TIRED = "barrier_tired"
    BARRIER_OTHER = "barrier_other"
    STREAK = "streak"
    FIRST_SESSION = "first_session"
    ONBOARDING = "onboarding"


@dataclass(frozen=True)
class Tip:
    key: str
    topic: Topic
    source: str
    situations: frozenset[Situation]
    placeholders: frozenset[str] = frozenset()


S = Situation
NUMBERS = frozenset({"before", "after"})


def _tip(
    key: str,
    topic: Topic,
    source: str,
    *situations: Situation,
    placeholders: frozenset[str] = frozenset(),
) -> Tip:
    return Tip(key, topic, source, frozenset(situations), placeholders)


# Tips with placeholders only fit check-in outcomes (PAIN_*), where both scores are known;
# every other tip must read well on its own, since /tip and reminders draw from all of them.
TIPS: tuple[Tip, ...] = (
    # EIH (000, 001)
    _tip("eih_what_it_is", Topic.EIH, SRC_EIH, S.FIRST_SESSION, S.ONBOARDING),
    _tip("eih_your_numbers", Topic.EIH, SRC_EIH, S.PAIN_FELL, placeholders=NUMBERS),
    _tip("eih_your_numbers_treatment", Topic.EIH, SRC_EIH, S.PAIN_FELL, placeholders=NUMBERS),
    _tip("eih_evidence_based", Topic.EIH, SRC_EIH, S.PAIN_FELL, S.ONBOARDING, S.STREAK),
    _tip("eih_rough_signal", Topic.EIH, SRC_EIH, S.PAIN_SAME, S.FIRST_SESSION),
    _tip("endorphins_natural_painkillers", Topic.EIH, SRC_HABIT, S.PAIN_FELL, S.FIRST_SESSION),
    # Hurt is not harm (000, 002)
    _tip(
        "hurt_not_harm_temporary_rise",
        Topic.HURT_NOT_HARM,
        SRC_EIH,
        S.PAIN_ROSE_LITTLE,
        S.BARRIER_FEAR,
    ),
    _tip(
        "hurt_not_harm_your_numbers",
        Topic.HURT_NOT_HARM,
        SRC_EIH,
        S.PAIN_ROSE_LITTLE,
        placeholders=NUMBERS,
    ),
    _tip("hurt_not_harm_why_it_matters", Topic.HURT_NOT_HARM, SRC_EIH, S.BARRIER_FEAR),
    _tip("fear_strength_training_common", Topic.HURT_NOT_HARM, SRC_STRENGTH, S.BARRIER_FEAR),
    # Rest versus activity (001)
    _tip(
        "rest_short_then_move", Topic.REST_VS_ACTIVITY, SRC_HABIT, S.BARRIER_PAIN, S.BARRIER_TIRED
    ),
    _tip("rest_too_much", Topic.REST_VS_ACTIVITY, SRC_HABIT, S.BARRIER_PAIN, S.BARRIER_TIRED),
    _tip("busy_day_keep_moving", Topic.REST_VS_ACTIVITY, SRC_HABIT, S.BARRIER_TIME),
    # The nervous system and load (002)
    _tip(
        "nervous_system_10kg_50kg",
        Topic.NERVOUS_SYSTEM_LOAD,
        SRC_STRENGTH,
        S.BARRIER_FEAR,
        S.PAIN_SAME,
    ),
    _tip(
        "nervous_system_gets_used_to_load",
        Topic.NERVOUS_SYSTEM_LOAD,
        SRC_STRENGTH,
        S.PAIN_SAME,
        S.STREAK,
    ),
    # Strength and fitness (001, 002)
    _tip("exercise_long_term_relief", Topic.STRENGTH_FITNESS, SRC_HABIT, S.PAIN_SAME, S.STREAK),
    _tip("benefits_daily_life", Topic.STRENGTH_FITNESS, SRC_HABIT, S.STREAK, S.BARRIER_OTHER),
    _tip(
        "strength_physical_gains", Topic.STRENGTH_FITNESS, SRC_STRENGTH, S.STREAK, S.BARRIER_OTHER
    ),
    # Mood and sleep (001, 002)
    _tip("benefits_mood", Topic.MOOD_SLEEP, SRC_HABIT, S.BARRIER_TIRED),
    _tip("mood_self_confidence", Topic.MOOD_SLEEP, SRC_STRENGTH, S.STREAK),
    _tip("strength_and_cardio_together", Topic.MOOD_SLEEP, SRC_STRENGTH, S.BARRIER_TIRED, S.STREAK),
    # Stress hormone (002)
    _tip("cortisol_short_rise_ok", Topic.STRESS_HORMONE, SRC_STRENGTH),
    _tip("cortisol_long_term", Topic.STRESS_HORMONE, SRC_STRENGTH, S.STREAK),
    # Habit and patience (001, 002)
    _tip(
        "plan_you_can_keep",
        Topic.HABIT_PATIENCE,
        SRC_HABIT,
        S.BARRIER_TIME,
        S.BARRIER_OTHER,
        S.ONBOARDING,
    ),
    _tip(
        "small_steps_add_up",
        Topic.HABIT_PATIENCE,
        SRC_HABIT,
        S.BARRIER_TIME,
        S.STREAK,
        S.FIRST_SESSION,
    ),
    _tip("habit_patience_streak", Topic.HABIT_PATIENCE, SRC_HABIT, S.STREAK),
    _tip(
        "slow_progression",
        Topic.HABIT_PATIENCE,
        SRC_STRENGTH,
        S.PAIN_ROSE_LITTLE,
        S.BARRIER_FEAR,
        S.FIRST_SESSION,
    ),
    # Talk to your clinician (001, 002): every large-rise tip says lower the load and tell
    # the physiotherapist.
    _tip(
        "talk_to_clinician_goals", Topic.TALK_TO_CLINICIAN, SRC_HABIT, S.ONBOARDING, S.BARRIER_OTHER
    ),
    _tip("talk_to_clinician_severe_pain", Topic.TALK_TO_CLINICIAN, SRC_HABIT, S.BARRIER_PAIN),
    _tip("rose_lot_lower_load", Topic.TALK_TO_CLINICIAN, SRC_STRENGTH, S.PAIN_ROSE_LOT),
    _tip(
        "rose_lot_your_numbers",
        Topic.TALK_TO_CLINICIAN,
        SRC_HABIT,
        S.PAIN_ROSE_LOT,
        placeholders=NUMBERS,
    ),
    _tip(
        "rose_lot_adjust_plan", Topic.TALK_TO_CLINICIAN, SRC_HABIT, S.PAIN_ROSE_LOT, S.BARRIER_PAIN
    ),
)

TIPS_BY_KEY: dict[str, Tip] = {tip.key: tip for tip in TIPS}

# What /tip and plain reminders draw from: every tip that reads well without numbers.
GENERAL_POOL: tuple[Tip, ...] = tuple(tip for tip in TIPS if not tip.placeholders)


def situation_for_change(before: int, after: int) -> Situation:
    """Classify a before/after pain pair (0-10 each) from one session.

    - ``after < before``: PAIN_FELL.
    - ``after >= 8`` and not lower than before (rose, or stayed at 8 or more): PAIN_ROSE_LOT,
      since severe pain after exercise calls for a lighter load and a word with the
      physiotherapist whatever the change.
    - ``after == before`` (below 8): PAIN_SAME.
    - ``after - before`` is 1 or 2 (ending below 8): PAIN_ROSE_LITTLE.
    - ``after - before >= 3``: PAIN_ROSE_LOT.
    """
    for name, score in (("before", before), ("after", after)):
        if not 0 <= score <= 10:
            raise ValueError(f"{name} pain score must be 0-10, got {score}")
    if after < before:
        return Situation.PAIN_FELL
    if after >= HIGH_PAIN or after - before >= 3:
        return Situation.PAIN_ROSE_LOT
    if after == before:
        return Situation.PAIN_SAME
    return Situation.PAIN_ROSE_LITTLE


def candidates_for(situation: Situation | None, *, with_numbers: bool = False) -> tuple[Tip, ...]:
    """The tips that fit ``situation``; with None, every tip that needs no numbers.

    ``with_numbers`` keeps only tips that quote the patient's own before/after scores (a fall
    in pain is explained with their numbers, issue 4).
    """
    if situation is None:
        return GENERAL_POOL
    pool = tuple(tip for tip in TIPS if situation in tip.situations)
    if with_numbers:
        pool = tuple(tip for tip in pool if {"before", "after"} <= tip.placeholders) or pool
    return pool


def choose_tip(
    situation: Situation | None,
    shown_counts: Mapping[str, int],
    rng: random.Random,
    *,
    with_numbers: bool = False,
) -> Tip:
    """Pick a tip among the candidates shown least often to this patient (ties: ``rng``).

    Taking only the least shown means nothing repeats before the whole pool has been seen;
    then the counts are level again and the pool starts over.
    """
    pool = candidates_for(situation, with_numbers=with_numbers)
    if not pool:  # guarded by the tests (every situation has tips); kept explicit anyway
        raise LookupError(f"no tip fits {situation}")
    least = min(shown_counts.get(tip.key, 0) for tip in pool)
    return rng.choice([tip for tip in pool if shown_counts.get(tip.key, 0) == least])


async def pick_tip(
    session: AsyncSession,
    user_id: int,
    situation: Situation | None,
    rng: random.Random | None = None,
    now: datetime | None = None,
    *,
    with_numbers: bool = False,
) -> Tip:
    """Choose the next tip for a patient and record it as shown (flushed, not committed)."""
    rows = await session.execute(
        select(TipShown.tip_key, func.count())
        .where(TipShown.user_id == user_id)
        .group_by(TipShown.tip_key)
    )
    counts = {key: count for key, count in rows.all()}
    tip = choose_tip(situation, counts, rng or random.Random(), with_numbers=with_numbers)
    session.add(TipShown(user_id=user_id, tip_key=tip.key, shown_at=now or datetime.now(UTC)))
    await session.flush()
    return tip


def render_tip(tip: Tip, locale: str, **values: object) -> str:
    """The tip's text in ``locale``; every placeholder the tip uses must be given."""
    missing = tip.placeholders - values.keys()
    if missing:
        raise ValueError(f"tip {tip.key} needs {', '.join(sorted(missing))}")
    return t(f"tips.{tip.key}", locale, **values)
