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
    # A check-in's outcome: the values of ``bot.services.feedback.Situation`` (the clinical
    # rules decide which one; ``for_checkin`` maps it here).
    MAY_BE_EIH = "may_be_eih"
    ABOUT_SAME = "about_same"
    ACCEPTABLE = "acceptable"
    TOO_MUCH = "too_much"
    HIGH_STABLE = "high_stable"
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


# A check-in's tip never speaks of a fall when pain rose or of a rise when it fell: the tips
# of MAY_BE_EIH and those of ACCEPTABLE / TOO_MUCH are disjoint (tests/test_feedback_replies.py).
# What the patient's own numbers mean is said by the clinical rules (locales/feedback.*.yml),
# so no tip quotes numbers; every tip reads well on its own, for /tip and reminders too.
TIPS: tuple[Tip, ...] = (
    # EIH (000, 001)
    _tip("eih_what_it_is", Topic.EIH, SRC_EIH, S.MAY_BE_EIH, S.FIRST_SESSION, S.ONBOARDING),
    _tip("eih_evidence_based", Topic.EIH, SRC_EIH, S.MAY_BE_EIH, S.ONBOARDING, S.STREAK),
    _tip("eih_rough_signal", Topic.EIH, SRC_EIH, S.ABOUT_SAME, S.FIRST_SESSION),
    _tip("endorphins_natural_painkillers", Topic.EIH, SRC_HABIT, S.MAY_BE_EIH, S.FIRST_SESSION),
    # Hurt and harm: the barriers (000, 002)
    _tip(
        "hurt_not_harm_temporary_rise",
        Topic.HURT_NOT_HARM,
        SRC_EIH,
        S.ACCEPTABLE,
        S.BARRIER_FEAR,
    ),
    _tip("hurt_not_harm_why_it_matters", Topic.HURT_NOT_HARM, SRC_EIH, S.BARRIER_FEAR),
    _tip("fear_strength_training_common", Topic.HURT_NOT_HARM, SRC_STRENGTH, S.BARRIER_FEAR),
    # Rest versus activity (001)
    _tip(
        "rest_short_then_move",
        Topic.REST_VS_ACTIVITY,
        SRC_HABIT,
        S.BARRIER_PAIN,
        S.BARRIER_TIRED,
        S.HIGH_STABLE,
    ),
    _tip("rest_too_much", Topic.REST_VS_ACTIVITY, SRC_HABIT, S.BARRIER_PAIN, S.BARRIER_TIRED),
    _tip("busy_day_keep_moving", Topic.REST_VS_ACTIVITY, SRC_HABIT, S.BARRIER_TIME),
    # The nervous system and load (002)
    _tip(
        "nervous_system_10kg_50kg",
        Topic.NERVOUS_SYSTEM_LOAD,
        SRC_STRENGTH,
        S.BARRIER_FEAR,
        S.ABOUT_SAME,
    ),
    _tip(
        "nervous_system_gets_used_to_load",
        Topic.NERVOUS_SYSTEM_LOAD,
        SRC_STRENGTH,
        S.ABOUT_SAME,
        S.STREAK,
    ),
    # Strength and fitness (001, 002)
    _tip("exercise_long_term_relief", Topic.STRENGTH_FITNESS, SRC_HABIT, S.ABOUT_SAME, S.STREAK),
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
        S.ACCEPTABLE,
        S.TOO_MUCH,
        S.BARRIER_FEAR,
        S.FIRST_SESSION,
    ),
    # Talk to your clinician (001, 002). Safety advice (red flags, emergency number) is not in
    # the sources: it is clinician safety text (locales/safety.*.yml), never a tip.
    _tip(
        "talk_to_clinician_goals", Topic.TALK_TO_CLINICIAN, SRC_HABIT, S.ONBOARDING, S.BARRIER_OTHER
    ),
    _tip(
        "talk_to_clinician_severe_pain",
        Topic.TALK_TO_CLINICIAN,
        SRC_HABIT,
        S.BARRIER_PAIN,
        S.HIGH_STABLE,
    ),
    _tip("rose_lot_lower_load", Topic.TALK_TO_CLINICIAN, SRC_STRENGTH, S.TOO_MUCH),
    _tip("rose_lot_adjust_plan", Topic.TALK_TO_CLINICIAN, SRC_HABIT, S.TOO_MUCH, S.BARRIER_PAIN),
)

TIPS_BY_KEY: dict[str, Tip] = {tip.key: tip for tip in TIPS}

# What /tip and plain reminders draw from: every tip that reads well without numbers.
GENERAL_POOL: tuple[Tip, ...] = tuple(tip for tip in TIPS if not tip.placeholders)


def for_checkin(situation: object) -> Situation:
    """The tip pool of a check-in outcome (a ``bot.services.feedback.Situation``)."""
    return Situation(str(situation))


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
