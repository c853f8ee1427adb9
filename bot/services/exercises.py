"""The exercise library and the starter programmes, as data (pure: no database, no Telegram).

Each exercise has a key, the body regions it is used for, and two or three levels from easier
to harder; each level has a dose: sets x repetitions (or seconds, or minutes) with a range
within which the load can rise before the next level. Names, how-to texts and what each
level is live in ``locales/exercises.<locale>.yml`` (``<key>.name``, ``<key>.how``,
``<key>.level.<n>``).

The choice follows what home programmes for long-lasting musculoskeletal pain commonly hold
(loaded, slowly progressed strength work for the legs, hips, back, shoulders and neck, and
walking), which is the source material's point: a load that rises slowly lets the nervous
system get used to it (source-material/002_d7dc2a08e5b55ab1.txt).

A step (``step_up`` / ``step_down``) moves one dose: more repetitions (or seconds) within
the level's range, then the next level at the bottom of its range; down the same way back.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

REGIONS = ("knee", "hip", "back", "shoulder", "neck", "general")
HOW_MAX = 300  # characters of a how-to text


class Unit(StrEnum):
    REPS = "reps"
    SECONDS = "seconds"
    MINUTES = "minutes"


@dataclass(frozen=True)
class Dose:
    """A level's dose: ``sets`` x an amount from ``low`` to ``high`` in steps of ``step``."""

    sets: int
    low: int
    high: int
    step: int
    unit: Unit = Unit.REPS
    per_side: bool = False

    def __post_init__(self) -> None:
        if not (1 <= self.sets <= 5 and 0 < self.low <= self.high and self.step > 0):
            raise ValueError(f"bad dose {self}")
        if (self.high - self.low) % self.step:
            raise ValueError(f"range not a whole number of steps: {self}")


@dataclass(frozen=True)
class Exercise:
    key: str
    regions: tuple[str, ...]
    levels: tuple[Dose, ...]  # level n is levels[n - 1]

    def dose(self, level: int) -> Dose:
        return self.levels[level - 1]


def _reps(low: int, high: int, *, sets: int = 2, step: int = 2, side: bool = False) -> Dose:
    return Dose(sets, low, high, step, Unit.REPS, side)


def _secs(low: int, high: int, *, sets: int = 2, step: int = 5, side: bool = False) -> Dose:
    return Dose(sets, low, high, step, Unit.SECONDS, side)


def _ex(key: str, regions: str, *levels: Dose) -> Exercise:
    return Exercise(key, tuple(regions.split()), levels)


R8 = _reps(8, 12)
R10 = _reps(10, 15, step=1)
R6S = _reps(6, 10, side=True)
R8S = _reps(8, 12, side=True)

LIBRARY: dict[str, Exercise] = {
    e.key: e
    for e in (
        # Legs and hips
        _ex("sit_to_stand", "knee hip general", R8, R8, R8),
        _ex("step_up", "knee hip", R6S, R6S, R6S),
        _ex("wall_sit", "knee hip", _secs(15, 30), _secs(20, 40), _secs(20, 40)),
        _ex("calf_raise", "knee general", R10, R10, _reps(8, 12, side=True)),
        _ex("bridge", "hip back", R8, R8, R6S),
        _ex("side_lying_hip_abduction", "hip", R8S, R8S, R8S),
        _ex("clamshell", "hip", _reps(10, 15, step=1, side=True), _reps(10, 15, step=1, side=True)),
        _ex("mini_squat", "knee hip", R8, R8, R8),
        _ex("straight_leg_raise", "knee hip", R8S, R8S, R8S),
        _ex("seated_knee_extension", "knee", _reps(10, 15, step=1, side=True), R8S, R8S),
        _ex("split_squat", "knee hip", R6S, R6S, R6S),
        # Back
        _ex("bird_dog", "back general", R6S, R6S, R6S),
        _ex("cat_camel", "back neck", R8, R8),
        _ex("pelvic_tilt", "back", R10, R10, R10),
        _ex("dead_bug", "back", R6S, R6S, R6S),
        _ex(
            "side_plank",
            "back general",
            _secs(15, 30, side=True),
            _secs(15, 30, side=True),
            _secs(10, 30, side=True),
        ),
        _ex("hip_hinge", "back hip", R8, R8, R8),
        # Shoulders and neck
        _ex("wall_push_up", "shoulder general", R8, R8, _reps(6, 10)),
        _ex("band_row", "shoulder back neck", R10, R10, R10),
        _ex(
            "shoulder_external_rotation",
            "shoulder",
            _reps(10, 15, step=1, side=True),
            _reps(10, 15, step=1, side=True),
            _reps(10, 15, step=1, side=True),
        ),
        _ex("wall_slide", "shoulder neck", R8, R8, R8),
        _ex("overhead_reach", "shoulder", R8, R8, R8),
        _ex("chin_tuck", "neck", R8, R8, _reps(6, 10)),
        _ex("shoulder_blade_squeeze", "neck shoulder back", R10, R10, R10),
        _ex("neck_rotation", "neck", R6S, R6S),
        # Whole body
        _ex(
            "walking",
            "general knee hip back",
            Dose(1, 10, 20, 5, Unit.MINUTES),
            Dose(1, 15, 30, 5, Unit.MINUTES),
            Dose(1, 20, 40, 5, Unit.MINUTES),
        ),
        _ex(
            "single_leg_stand",
            "general knee hip",
            _secs(15, 30, side=True),
            _secs(15, 30, side=True),
            _secs(15, 30, side=True),
        ),
    )
}


@dataclass(frozen=True)
class Step:
    """One exercise at a level with an amount (repetitions, seconds or minutes) per set."""

    key: str
    level: int
    sets: int
    amount: int

    @property
    def exercise(self) -> Exercise:
        return LIBRARY[self.key]

    @property
    def dose(self) -> Dose:
        return self.exercise.dose(self.level)


def start_of(key: str, level: int = 1) -> Step:
    """The exercise at the bottom of ``level``'s range."""
    dose = LIBRARY[key].dose(level)
    return Step(key, level, dose.sets, dose.low)


def step_up(step: Step) -> Step:
    """One step harder: more within the level's range, then the next level's start; the
    hardest dose stays as it is."""
    dose = step.dose
    if step.amount + dose.step <= dose.high:
        return Step(step.key, step.level, step.sets, step.amount + dose.step)
    if step.level < len(step.exercise.levels):
        return start_of(step.key, step.level + 1)
    return step


def step_down(step: Step) -> Step:
    """One step easier: fewer within the range, then the level below at the top of its range;
    the easiest dose stays as it is."""
    dose = step.dose
    if step.amount - dose.step >= dose.low:
        return Step(step.key, step.level, step.sets, step.amount - dose.step)
    if step.level > 1:
        below = step.exercise.dose(step.level - 1)
        return Step(step.key, step.level - 1, below.sets, below.high)
    return step


# ---------------------------------------------------------------------------------------------
# Starter programmes: for a patient without a therapist; every exercise at level 1
# ---------------------------------------------------------------------------------------------

STARTERS: dict[str, tuple[str, ...]] = {
    "knee_hip": ("sit_to_stand", "step_up", "bridge", "side_lying_hip_abduction", "calf_raise"),
    "back": ("bird_dog", "bridge", "cat_camel", "hip_hinge", "walking"),
    "shoulder_neck": (
        "chin_tuck",
        "shoulder_blade_squeeze",
        "shoulder_external_rotation",
        "wall_push_up",
        "wall_slide",
    ),
    "whole_body": ("walking", "sit_to_stand", "wall_push_up", "bridge", "single_leg_stand"),
}


def starter_steps(starter: str) -> list[Step]:
    return [start_of(key) for key in STARTERS[starter]]


def in_region(region: str) -> list[Exercise]:
    return [e for e in LIBRARY.values() if region in e.regions]
