"""Each benchmark bar still sees the replies it measures (so a bar cannot rot silently, as B3
did when the pain-score reply became an edit). Tiny sizes, one run; nothing here asserts on
time: the figures themselves are for `python -m bot.bench` (README "Benchmarks")."""

from __future__ import annotations

import os

import pytest

from bot.bench import BARS, Options, Sizes, run

TINY = Sizes(
    fanout_seconds=1,
    b4_updates=20,
    b4_warm_up=4,
    b4_rounds=2,
    b6_therapists=3,
    b7_heavy=14,
    b7_seconds=2,
    b7_due=5,
    b8_messages=60,
)

pytestmark = pytest.mark.skipif(
    bool(os.environ.get("TEST_DATABASE_URL")),
    reason="the bench makes its own SQLite databases: run once, in the SQLite pass",
)


@pytest.fixture(scope="module")
async def results():
    bars = await run(Options(patients=300, only=BARS, sizes=TINY))
    return {r.bar: r for r in bars}


async def test_every_bar_reports(results):
    assert list(results) == list(BARS)
    for bar, result in results.items():
        assert result.value is not None, (bar, result.note)
        assert result.as_json().startswith('{"bar": "' + bar)


async def test_b1_and_b8_count_every_prompt_once(results):
    b1, b8 = results["B1"], results["B8"]
    assert b1.note == "" and b1.details["prompted_exactly_once"] == b1.details["due"] > 0
    assert b8.note == "" and b8.details["paid_broadcast_prompts"] == TINY.b8_messages
    # one dispatcher round of a batch between the bare loop's rounds, not one tick for all
    chunk = TINY.b8_messages // TINY.b8_rounds
    assert b8.details["sent_per_round"] == [chunk] * TINY.b8_rounds


async def test_b2_b3_see_the_fan_out_and_the_edit_that_carries_each_reply(results):
    b2, b3 = results["B2"], results["B3"]
    assert b2.details["lost"] == 0 and b2.details["duplicated"] == 0
    assert b2.details["prompts"] == b2.details["due"]
    assert b3.details["presses"] > 0
    assert b3.details["unanswered"] == 0  # the reply is an editMessageText: it is counted


async def test_b4_stores_and_answers_every_press(results):
    b4 = results["B4"]
    assert b4.note == ""
    assert b4.details["stored"] == TINY.b4_warm_up + b4.details["updates"]
    assert b4.details["unanswered"] == 0 and not b4.details["errors"]


async def test_b7_sees_the_other_patients_replies_and_the_prompts(results):
    b7 = results["B7"]
    assert b7.details["asks"] > 0 and b7.details["unanswered"] == 0
    assert b7.details["prompts_not_sent"] == 0
    assert b7.details["slow_down_messages"] == 1  # the flood hit its budget once
    assert b7.details["flood_commands_dropped"] == TINY.b7_heavy - 10 - 1 + 1


async def test_b5_and_b6_measure_something(results):
    assert results["B5"].details["due_claim_rows"] > 0
    assert results["B6"].details["therapists"] == TINY.b6_therapists
