"""The clinical rules (bot/services/feedback.py), table-driven over every before/after pair.

The grids below are the rules written out by hand, one row per pain score before the session,
one column per score after (0-10), so a physiotherapist can read and check them:
    S = about the same (change of at most 1)      E = may be EIH (fall of 2+)
    A = acceptable rise (ends within the limit)    T = too much for that load (flagged)
    H = high but stable (both 8+, no rise of 2+)
"""

from __future__ import annotations

from datetime import date

import pytest

from bot.services import feedback
from bot.services.feedback import (
    Direction,
    FlagKind,
    MorningMessage,
    Situation,
    assess,
    before_session,
    next_morning_verdict,
    pain_after_acceptable,
    situation_for,
    usual_level,
)

CODES = {
    "S": Situation.ABOUT_SAME,
    "E": Situation.MAY_BE_EIH,
    "A": Situation.ACCEPTABLE,
    "T": Situation.TOO_MUCH,
    "H": Situation.HIGH_STABLE,
}

# after:   0 1 2 3 4 5 6 7 8 9 10
NO_USUAL = """
    0:     S S A A A A T T T T T
    1:     S S S A A A T T T T T
    2:     E S S S A A T T T T T
    3:     E E S S S A T T T T T
    4:     E E E S S S T T T T T
    5:     E E E E S S S T T T T
    6:     E E E E E S S S T T T
    7:     E E E E E E S S S T T
    8:     E E E E E E E S H H T
    9:     E E E E E E E E H H H
    10:    E E E E E E E E H H H
"""

# A patient whose usual pain is 6-7 (median 6.5): acceptable up to 8.5, so an after-score of 8
# after a rise of 2+ is acceptable (with the safety line), 9 and 10 are too much.
USUAL_6_7 = """
    0:     S S A A A A A A A T T
    1:     S S S A A A A A A T T
    2:     E S S S A A A A A T T
    3:     E E S S S A A A A T T
    4:     E E E S S S A A A T T
    5:     E E E E S S S A A T T
    6:     E E E E E S S S A T T
    7:     E E E E E E S S S T T
    8:     E E E E E E E S H H T
    9:     E E E E E E E E H H H
    10:    E E E E E E E E H H H
"""


def grid(text: str) -> dict[tuple[int, int], Situation]:
    table = {}
    for line in text.strip().splitlines():
        head, _, cells = line.partition(":")
        codes = cells.split()
        assert len(codes) == 11, line
        for after, code in enumerate(codes):
            table[(int(head), after)] = CODES[code]
    assert len(table) == 121
    return table


PAIRS = [(b, a) for b in range(11) for a in range(11)]
EXPECTED = grid(NO_USUAL)
EXPECTED_USUAL = grid(USUAL_6_7)
USUAL_SCORES = [6, 7, 6, 7, 7, 6]


@pytest.mark.parametrize(("before", "after"), PAIRS)
def test_every_pair_gets_exactly_the_situation_of_the_table(before, after):
    result = assess(before, after)
    assert result.situation is EXPECTED[(before, after)]
    assert result.situation is situation_for(before, after)
    # Exactly one situation, and its message speaks of a fall only when pain fell, of a rise
    # only when it rose: never both in one reply.
    if result.direction is Direction.FALL:
        assert after <= before - 2
    if result.direction is Direction.RISE:
        assert after >= before + 2
    assert result.flag is (result.situation is Situation.TOO_MUCH)
    assert result.lighter_next_time is (result.situation is Situation.TOO_MUCH)
    assert result.safety_line is (before >= 8 or after >= 8)
    assert result.ask_next_morning
    assert result.watch_rise is (result.situation is Situation.ACCEPTABLE and after - before >= 3)


@pytest.mark.parametrize(("before", "after"), PAIRS)
def test_a_patient_whose_usual_pain_is_6_to_7(before, after):
    usual = usual_level(USUAL_SCORES)
    assert usual == 6.5
    result = assess(before, after, usual=usual)
    assert result.situation is EXPECTED_USUAL[(before, after)]
    assert result.safety_line is (before >= 8 or after >= 8)


def test_usual_level_needs_enough_scores():
    assert usual_level([7, 7, 7, 7]) is None
    assert usual_level([2, 3, 9, 3, 2]) == 3.0  # the median: one bad day does not move it
    with pytest.raises(ValueError):
        usual_level([3, 11, 3, 3, 3])


def test_acceptable_after_pain_follows_the_model():
    assert pain_after_acceptable(5, None) and not pain_after_acceptable(6, None)
    assert pain_after_acceptable(5, 4.0) and not pain_after_acceptable(6, 5.0)  # usual <= 5
    assert pain_after_acceptable(8, 6.0) and not pain_after_acceptable(9, 6.0)
    assert pain_after_acceptable(9, 7.0) and not pain_after_acceptable(10, 7.0)


def test_the_issue_examples():
    assert assess(8, 8).situation is Situation.HIGH_STABLE  # not "a big rise"
    assert assess(10, 9).situation is Situation.HIGH_STABLE  # no EIH tip and no "rise" together
    assert assess(3, 2).situation is Situation.ABOUT_SAME  # a 1-point fall is not EIH
    assert assess(5, 7).situation is Situation.TOO_MUCH  # above 5 with a rise of 2
    assert assess(2, 5).situation is Situation.ACCEPTABLE and assess(2, 5).watch_rise


@pytest.mark.parametrize("bad", [-1, 11, 3.5, True, None])
def test_scores_outside_the_scale_are_refused(bad):
    with pytest.raises((ValueError, TypeError)):
        assess(bad, 3)
    with pytest.raises((ValueError, TypeError)):
        assess(3, bad)


@pytest.mark.parametrize("before", range(11))
def test_pain_before_a_session(before):
    pre = before_session(before)
    assert pre.high is (before >= 8) and pre.safety_line is (before >= 8)
    assert (pre.situation is Situation.HIGH_BEFORE) is (before >= 8)
    assert not pre.go_lighter
    assert before_session(before, last_next_morning="worse").go_lighter


@pytest.mark.parametrize(
    ("answer", "flagged", "rise", "lighter", "suited", "flag", "message"),
    [
        ("worse", False, 0, True, False, False, MorningMessage.WORSE),
        ("worse", False, 2, True, False, False, MorningMessage.WORSE),
        ("worse", False, 3, True, False, True, MorningMessage.WORSE),  # watched rise: flagged now
        ("worse", True, 2, True, False, True, MorningMessage.WORSE),
        ("same", False, 3, False, True, False, MorningMessage.SUITED),  # a rise of 3 that settled
        ("better", False, -2, False, True, False, MorningMessage.SUITED),
        ("same", True, 3, True, False, False, MorningMessage.SETTLED),
        ("better", False, None, False, True, False, MorningMessage.SUITED),
    ],
)
def test_next_morning_verdict(answer, flagged, rise, lighter, suited, flag, message):
    verdict = next_morning_verdict(answer, session_flagged=flagged, rise=rise)
    assert (verdict.lighter_next_time, verdict.load_suited, verdict.flag) == (
        lighter,
        suited,
        flag,
    )
    assert verdict.message is message


def test_a_rise_of_3_is_flagged_only_when_the_next_morning_is_worse():
    assert not assess(2, 5).flag
    assert not assess(2, 5, next_morning="same").flag
    assert assess(2, 5, next_morning="worse").flag
    assert not assess(3, 5, next_morning="worse").flag  # a rise of 2: counted, not flagged


def test_meaningful_change_is_2_points_or_30_percent():
    assert not feedback.is_meaningful_change(6, 1.5)
    assert feedback.is_meaningful_change(6, -2)
    assert feedback.is_meaningful_change(3, -1)  # 33 %
    assert not feedback.is_meaningful_change(4, 1)  # 25 %


def test_weekly_average_and_trend():
    assert feedback.weekly_average([5, 6]) is None
    assert feedback.weekly_average([5, 6, 7]) == 6
    assert feedback.trend([None, 6.0]) is feedback.Trend.UNKNOWN
    assert feedback.trend([6.0, 5.2, 5.0]) is feedback.Trend.STEADY  # 1 point of 6: noise
    assert feedback.trend([6.0, 5.0, 4.0]) is feedback.Trend.FALLING
    assert feedback.trend([2.0, 2.5, 3.0]) is feedback.Trend.RISING  # +1 from 2 is 50 %
    assert not feedback.effect_is_shown(2) and feedback.effect_is_shown(3)


D = date(2026, 12, 1)


def day(n: int) -> date:
    return date(2026, 12, n)


def test_digest_high_pain_is_relative_to_the_usual_level_or_9_plus():
    assert feedback.high_pain_flag([(day(1), 7), (day(2), 8)], None) is None
    flag = feedback.high_pain_flag([(day(1), 9), (day(2), 4)], None)
    assert flag.kind is FlagKind.HIGH_PAIN and flag.on == day(1) and flag.numbers["score"] == 9
    assert feedback.high_pain_flag([(day(3), 6)], 3.0).numbers == {"score": 6, "usual": 3.0}
    assert feedback.high_pain_flag([(day(3), 8)], 6.0) is None
    assert feedback.high_pain_flag([], 3.0) is None


def test_digest_average_up_needs_three_scores_in_each_week():
    avg = feedback.weekly_average
    assert avg([3, 3]) is None and feedback.average_of(6, 2) is None
    assert feedback.average_of(15, 3) == avg([5, 5, 5]) == 5
    assert feedback.average_up_flag([3, 3], [6, 6, 6]) is None
    assert feedback.average_up_flag([3, 3, 3], [4, 5, 5]) is None
    flag = feedback.average_up_flag([3, 3, 3], [5, 5, 5])
    assert flag.numbers == {"previous": 3, "current": 5}
    assert feedback.average_up_counted(avg([3, 3, 3]), avg([5, 5, 5])) == flag
    assert feedback.average_up_counted(None, 9.0) is None


def test_digest_worse_mornings_high_before_adherence_and_barriers():
    assert feedback.worse_mornings_flag([(day(1), "worse", False), (day(2), "same", True)]) is None
    assert feedback.worse_mornings_flag([(day(1), "worse", True)]).on == day(1)
    two = feedback.worse_mornings_flag([(day(1), "worse", False), (day(4), "worse", False)])
    assert two.on == day(4) and two.numbers == {"worse": 2}
    assert feedback.worse_mornings_counted(1, 0, day(1)) is None  # once, after a calm session
    assert feedback.worse_mornings_counted(2, 0, day(4)) == two
    assert feedback.high_before_flag([(day(1), 8), (day(1), 9)]) is None  # one day
    assert feedback.high_before_flag([(day(1), 8), (day(3), 9), (day(4), 7)]).on == day(3)
    assert feedback.high_before_counted(2, day(3)).numbers == {"days": 2}
    assert feedback.too_much_flag(0, None) is None
    assert feedback.too_much_flag(2, day(2)).numbers == {"sessions": 2}
    assert feedback.adherence_falling_flag(6, 6, 3, 6).kind is FlagKind.ADHERENCE_FALLING
    assert feedback.adherence_falling_flag(6, 6, 5, 6) is None
    assert feedback.adherence_falling_flag(2, 2, 0, 6) is None  # too little planned before
    assert feedback.barriers_flag([(day(1), "time"), (day(2), "time"), (day(3), "pain")]) is None
    flag = feedback.barriers_flag([(day(1), "fear"), (day(5), "fear"), (day(3), "pain")])
    assert flag.on == day(5) and flag.numbers == {"fear": 2}
    assert feedback.barriers_counted({"fear": 2, "pain": 1, "tired": 5}, day(5)) == flag
    assert feedback.inactive_flag(False) is None and feedback.inactive_flag(True)
