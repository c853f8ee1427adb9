"""The weekly progression decision, table-driven (pure; thresholds from feedback.py)."""

from __future__ import annotations

import pytest

from bot.services import feedback
from bot.services.exercises import Step, start_of
from bot.services.progression import Direction, SessionRecord, apply, weekly_decision

UP, KEEP, DOWN = Direction.UP, Direction.KEEP, Direction.DOWN


def week(*sessions):
    return [SessionRecord(b, a, m) for b, a, m in sessions]


@pytest.mark.parametrize(
    "records, usual, expected",
    [
        (week(), None, KEEP),  # nothing done: nothing to go on
        (week((3, 4, None)), None, KEEP),  # one session says too little
        (week((3, 4, None), (3, 5, "same")), None, UP),  # after <= 5, no worse morning
        (week((3, 4, "better"), (2, 2, "same"), (3, 3, None)), None, UP),
        (week((5, 6, None), (5, 5, None)), None, KEEP),  # after 6 > 5 (no rise of 2+)
        (week((3, 4, None), (3, 5, None)), None, KEEP),  # no morning answered: not "not worse"
        (week((6, 7, None), (6, 7, "same")), 6.0, UP),  # usual 6: up to 7 is acceptable
        (week((6, 7, None), (6, 8, "same")), 6.0, DOWN),  # 8+ after a rise of 2: too much
        (week((6, 7, None), (6, 9, None)), 6.0, DOWN),  # 9 > usual + 2 after a rise of 3
        (week((3, 4, "worse"), (3, 4, None), (3, 3, None)), None, KEEP),  # one worse morning
        (week((3, 4, "worse"), (3, 4, "worse")), None, DOWN),  # worse twice
        (week((2, 7, None), (3, 3, None), (3, 3, None)), None, DOWN),  # a session too much
    ],
)
def test_weekly_decision(records, usual, expected):
    decision = weekly_decision(records, usual)
    assert decision.direction is expected
    assert decision.reason.sessions == len(records)
    assert decision.reason.usual == usual


def test_thresholds_come_from_the_feedback_module(monkeypatch):
    records = week((3, 6, None), (5, 6, "same"))
    assert weekly_decision(records, None).direction is not UP
    monkeypatch.setattr(feedback, "ACCEPTABLE_PAIN", 6)
    assert weekly_decision(records, None).direction is UP


def test_apply_moves_every_exercise_one_step_and_skips_those_at_the_end():
    top = Step("clamshell", 2, 2, 15)
    steps = [start_of("bridge"), top]
    assert apply(steps, UP) == [(start_of("bridge"), Step("bridge", 1, 2, 10))]
    assert apply(steps, DOWN) == [(top, Step("clamshell", 2, 2, 14))]
    assert apply(steps, KEEP) == []
