"""The exercise library: complete in every language, within the limits, doses that progress."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bot.i18n import SUPPORTED_LOCALES, t
from bot.services import exercises
from bot.services.exercises import HOW_MAX, LIBRARY, REGIONS, STARTERS, Step, Unit

LOCALES = Path(__file__).resolve().parent.parent / "locales"
# The safety sentence every how-to ends with, as the issue asks, in each language.
STOP = {
    "en": "Stop if it causes sharp or unusual pain.",
    "da": "Stop, hvis det giver skarp eller usædvanlig smerte.",
    "es": "Detente si te produce un dolor agudo o inusual.",
}


def texts(loc: str) -> dict:
    with (LOCALES / f"exercises.{loc}.yml").open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)[loc]


def test_library_size_regions_and_levels():
    assert len(LIBRARY) >= 24
    for key, exercise in LIBRARY.items():
        assert exercise.key == key
        assert exercise.regions and set(exercise.regions) <= set(REGIONS), key
        assert 2 <= len(exercise.levels) <= 3, key
    for region in REGIONS:  # every region has enough to build a programme from
        assert len(exercises.in_region(region)) >= 4, region


@pytest.mark.parametrize("loc", SUPPORTED_LOCALES)
def test_every_exercise_has_name_how_and_each_level(loc):
    data = texts(loc)
    assert set(data) == set(LIBRARY)
    for key, exercise in LIBRARY.items():
        entry = data[key]
        assert set(entry) == {"name", "how", "level"}, key
        assert entry["name"].strip() and len(entry["name"]) <= 40, key
        assert 0 < len(entry["how"]) <= HOW_MAX, (key, len(entry["how"]))
        assert entry["how"].endswith(STOP[loc]), key
        levels = [str(n) for n in range(1, len(exercise.levels) + 1)]
        assert sorted(entry["level"]) == levels, key
        assert all(entry["level"][n].strip() for n in levels), key
        # Loaded as the bot reads them (strict in tests: a missing key raises).
        assert t(f"exercises.{key}.name", loc) == entry["name"]
        assert t(f"exercises.{key}.level.1", loc) == entry["level"]["1"]


def test_the_three_languages_differ_and_names_are_unique():
    for loc in SUPPORTED_LOCALES:
        names = [texts(loc)[k]["name"] for k in LIBRARY]
        assert len(set(names)) == len(names), loc
    en, da, es = (texts(loc) for loc in ("en", "da", "es"))
    for key in LIBRARY:  # translated, not copied
        assert en[key]["how"] != da[key]["how"] != es[key]["how"], key


def test_doses_have_a_range_to_progress_in():
    for exercise in LIBRARY.values():
        for dose in exercise.levels:
            assert 1 <= dose.sets <= 3
            assert dose.low < dose.high, exercise.key
            assert dose.unit in Unit
            if dose.unit is Unit.REPS:
                assert 5 <= dose.low and dose.high <= 15, exercise.key
            if dose.unit is Unit.SECONDS:
                assert 10 <= dose.low and dose.high <= 60, exercise.key


def test_a_step_up_adds_repetitions_then_moves_to_the_next_level():
    step = exercises.start_of("sit_to_stand")
    assert step == Step("sit_to_stand", 1, 2, 8)
    seen = [step]
    for _ in range(20):
        step = exercises.step_up(step)
        seen.append(step)
    levels_and_reps = [(s.level, s.amount) for s in seen[:8]]
    assert levels_and_reps == [(1, 8), (1, 10), (1, 12), (2, 8), (2, 10), (2, 12), (3, 8), (3, 10)]
    assert seen[-1] == Step("sit_to_stand", 3, 2, 12)  # the hardest dose stays
    # And back down the same way, to the easiest dose, which stays.
    for _ in range(20):
        step = exercises.step_down(step)
    assert step == exercises.start_of("sit_to_stand")
    assert exercises.step_down(Step("bridge", 2, 2, 8)) == Step("bridge", 1, 2, 12)


def test_starter_programmes():
    assert 4 <= len(STARTERS) <= 6
    for key, keys in STARTERS.items():
        assert 3 <= len(keys) <= 5 and len(set(keys)) == len(keys), key
        assert all(k in LIBRARY for k in keys), key
        for step in exercises.starter_steps(key):
            assert step.level == 1 and step.amount == step.dose.low
