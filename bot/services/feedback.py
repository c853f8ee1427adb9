"""The clinical rules: what a pain score means, in one pure module.

Every threshold the bot applies to a pain score lives here, named, with the source it comes
from; handlers, views, the digest and /progress ask this module and keep no copy of a number.
No database, no Telegram, no i18n: the functions return enums and plain data, the views turn
them into locale keys (``feedback.<situation>`` and friends).

Sources of the numbers (our reading, documented for clinicians in README.md, "How the bot
answers pain scores"):

- The pain-monitoring model used by physiotherapists (Silbernagel KG, Thomeé R, Eriksson BI,
  Karlsson J. Am J Sports Med 2007;35:897-906): pain during and after exercise up to 5 on a
  0-10 scale is acceptable; the pain the next morning settles whether the load suited the
  person (not worse than before = it did; worse = the load was too much, go lighter).
- The smallest change in a 0-10 pain rating that matters to patients (Farrar JT et al.,
  Pain 2001;94:149-158): about 2 points or about 30 %. A change of 1 point is within what a
  single rating moves by from one moment to the next: "about the same".

Where the model is silent (a patient whose usual pain is already above 5; pain of 8 or more;
what a therapist's weekly summary flags), the rules below are the team's clinical reading,
marked as such.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from statistics import fmean, median

# ---------------------------------------------------------------------------------------------
# Thresholds
# ---------------------------------------------------------------------------------------------

SCALE_MIN, SCALE_MAX = 0, 10  # the numeric rating scale: 0 = no pain, 10 = worst imaginable

# Silbernagel et al. 2007 (pain-monitoring model): pain up to 5/10 during and after the
# exercise is acceptable.
ACCEPTABLE_PAIN = 5
# Team reading of the model for a patient whose usual pain is already above ACCEPTABLE_PAIN:
# after-pain at most this many points above their usual level is still acceptable (otherwise
# nobody with a usual 6 could ever exercise "acceptably"). Same size as MEANINGFUL_CHANGE.
ABOVE_USUAL_ALLOWED = 2
# Farrar et al. 2001: a change of 1 point is about the same (measurement noise) ...
NOISE_POINTS = 1
# ... about 2 points or about 30 % is the smallest change that matters to patients.
MEANINGFUL_POINTS = 2
MEANINGFUL_SHARE = 0.30
# A rise this large within the acceptable range is watched: flagged only if the next morning
# is worse (issue 13, our reading of the model's 24-hour rule).
LARGE_RISE = 3
# Clinician safety rule (not from the model): pain of 8 or more anywhere (before, after,
# /pain, "pain too high") shows the safety line with the red flags; 8+ before a session is
# never met with a plain "do your session now".
HIGH_PAIN = 8

# The patient's usual level: the median of their recent resting scores (pain before sessions
# and /pain), once there are at least this many; fewer say too little about "usual".
USUAL_MIN_SCORES = 5
USUAL_WINDOW_DAYS = 28  # "recent" = the last four weeks (the digest's 4-week usual level)

NEXT_MORNING_ANSWERS = ("better", "same", "worse")

# -- Weekly summary (digest) and /progress: team rules so a therapist does not learn to ignore
# the flags (issue 13, item 6).
# A score this far above the patient's 4-week usual level is flagged ...
DIGEST_ABOVE_USUAL = 3
# ... and so is any score of 9 or 10 whatever the usual level.
DIGEST_VERY_HIGH = 9
# A weekly average counts only with at least this many scores in the week (fewer: no average
# for trends or flags; one bad day is not a trend).
WEEK_MIN_SCORES = 3
# The weekly average up by MEANINGFUL_POINTS (Farrar) or more, week on week, is flagged.
# Next-morning "worse" this many times in a week is flagged (or once after a flagged session).
WORSE_MORNINGS = 2
# Pain 8+ before a session on this many different days of the week is flagged.
HIGH_BEFORE_DAYS = 2
# Adherence falling: sessions done / planned over the last 2 weeks against the 2 before, down
# by at least this share (with enough sessions planned before to mean something).
ADHERENCE_DROP = 0.25
ADHERENCE_MIN_PLANNED = 3
# "Pain too high" or "afraid it will hurt" given as the reason for a skip this many times in a
# week is flagged; other barriers are only an information line.
BARRIER_REPEATS = 2
WORRYING_BARRIERS = ("pain", "fear")
# The personal before/after effect line in /progress needs at least this many sessions.
EFFECT_MIN_SESSIONS = 3
# No completed session on the last this-many scheduled days is flagged (inactivity).
INACTIVE_DAYS = 4
# The usual level in the weekly summary: the resting scores of the four weeks before the week.
DIGEST_USUAL_WEEKS = 4


# ---------------------------------------------------------------------------------------------
# One check-in
# ---------------------------------------------------------------------------------------------


class Situation(StrEnum):
    """Exactly one per completed check-in (plus HIGH_BEFORE, before a session)."""

    ABOUT_SAME = "about_same"  # a change of at most 1 point either way
    MAY_BE_EIH = "may_be_eih"  # a fall of 2 or more: may be part of EIH, one session proves nothing
    ACCEPTABLE = "acceptable"  # a rise of 2+, ending within the acceptable range
    TOO_MUCH = "too_much"  # a rise of 2+, ending above it: lighter next time, flagged
    HIGH_STABLE = "high_stable"  # before and after both 8+, and no rise of 2+
    HIGH_BEFORE = "high_before"  # pain 8+ before a session (from ``before_session``)


class Direction(StrEnum):
    """Which way a situation's message speaks: a reply never mixes a fall and a rise."""

    FALL = "fall"
    RISE = "rise"
    NEITHER = "neither"


DIRECTION = {
    Situation.ABOUT_SAME: Direction.NEITHER,
    Situation.MAY_BE_EIH: Direction.FALL,
    Situation.ACCEPTABLE: Direction.RISE,
    Situation.TOO_MUCH: Direction.RISE,
    Situation.HIGH_STABLE: Direction.NEITHER,
    Situation.HIGH_BEFORE: Direction.NEITHER,
}


def _check(score: int, name: str = "score") -> int:
    if isinstance(score, bool) or not isinstance(score, int):
        raise TypeError(f"{name} must be an int 0-10, got {score!r}")
    if not SCALE_MIN <= score <= SCALE_MAX:
        raise ValueError(f"{name} must be 0-10, got {score}")
    return score


def usual_level(recent_scores: Sequence[int]) -> float | None:
    """The patient's usual pain: the median of recent resting scores (pain before sessions and
    /pain scores of the last USUAL_WINDOW_DAYS), None with fewer than USUAL_MIN_SCORES."""
    scores = [_check(s) for s in recent_scores]
    if len(scores) < USUAL_MIN_SCORES:
        return None
    return float(median(scores))


def acceptable_limit(usual: float | None) -> float:
    """The highest after-pain the model accepts for this patient."""
    if usual is not None and usual > ACCEPTABLE_PAIN:
        return usual + ABOVE_USUAL_ALLOWED
    return ACCEPTABLE_PAIN


def pain_after_acceptable(after: int, usual: float | None) -> bool:
    """The model's "acceptable": after <= 5, or <= usual + 2 when usual is above 5."""
    return _check(after, "after") <= acceptable_limit(usual)


def is_high(score: int) -> bool:
    """Pain 8 or more: the safety line (red flags, emergency number) goes with the reply."""
    return _check(score) >= HIGH_PAIN


def is_meaningful_change(from_level: float, change: float) -> bool:
    """Farrar et al. 2001: about 2 points or about 30 % of the starting level."""
    size = abs(change)
    return size >= MEANINGFUL_POINTS - 1e-9 or (
        from_level > 0 and size >= MEANINGFUL_SHARE * from_level - 1e-9
    )


@dataclass(frozen=True)
class Assessment:
    """What one session's before/after scores mean, for the reply and for the therapist."""

    situation: Situation
    before: int
    after: int
    flag: bool  # shown to the therapist (digest, patient page)
    safety_line: bool  # the clinician safety text goes with the reply (pain 8+)
    ask_next_morning: bool  # the 24-hour answer settles the load (asked after every session)
    lighter_next_time: bool = False  # suggest fewer repetitions, less weight, shorter
    watch_rise: bool = False  # a rise of LARGE_RISE+ within the acceptable range
    usual: float | None = None
    limit: float = ACCEPTABLE_PAIN  # the acceptable after-pain used

    @property
    def change(self) -> int:
        return self.after - self.before

    @property
    def direction(self) -> Direction:
        return DIRECTION[self.situation]


def situation_for(before: int, after: int, *, usual: float | None = None) -> Situation:
    """Exactly one situation for a before/after pair (0-10 each), in this order:

    1. both 8+ with no rise of 2+ -> HIGH_STABLE (pain is high today; not a rise, not a fall);
    2. a change of at most 1 point either way -> ABOUT_SAME (Farrar: noise);
    3. a fall of 2+ -> MAY_BE_EIH;
    4. a rise of 2+ ending at or below the acceptable limit -> ACCEPTABLE, above it -> TOO_MUCH.
    """
    _check(before, "before")
    _check(after, "after")
    change = after - before
    if before >= HIGH_PAIN and after >= HIGH_PAIN and change < MEANINGFUL_POINTS:
        return Situation.HIGH_STABLE
    if abs(change) <= NOISE_POINTS:
        return Situation.ABOUT_SAME
    if change < 0:
        return Situation.MAY_BE_EIH
    return Situation.ACCEPTABLE if pain_after_acceptable(after, usual) else Situation.TOO_MUCH


def assess(
    before: int, after: int, *, usual: float | None = None, next_morning: str | None = None
) -> Assessment:
    """One completed session. ``next_morning`` is this session's next-morning answer when it is
    known (re-assessing a past session, e.g. for the therapist's page): it adds the flag the
    verdict gives (a watched rise followed by a worse morning)."""
    situation = situation_for(before, after, usual=usual)
    change = after - before
    watch = situation is Situation.ACCEPTABLE and change >= LARGE_RISE
    flag = situation is Situation.TOO_MUCH
    if next_morning is not None:
        verdict = next_morning_verdict(next_morning, session_flagged=flag, rise=change)
        flag = flag or verdict.flag
    return Assessment(
        situation=situation,
        before=before,
        after=after,
        flag=flag,
        safety_line=is_high(before) or is_high(after),
        ask_next_morning=True,
        lighter_next_time=situation is Situation.TOO_MUCH,
        watch_rise=watch,
        usual=usual,
        limit=acceptable_limit(usual),
    )


@dataclass(frozen=True)
class PreSession:
    """What to say after the pain score before a session."""

    before: int
    high: bool  # 8+: offer [Gentle version] [Skip today] (Done stays possible), no plain "go"
    safety_line: bool
    go_lighter: bool  # the last next-morning answer was "worse": today a lighter version

    @property
    def situation(self) -> Situation | None:
        return Situation.HIGH_BEFORE if self.high else None


def before_session(before: int, *, last_next_morning: str | None = None) -> PreSession:
    """Pain before a session; ``last_next_morning`` is the answer after the previous session."""
    high = is_high(before)
    return PreSession(
        before=before,
        high=high,
        safety_line=high,
        go_lighter=last_next_morning == "worse",
    )


class MorningMessage(StrEnum):
    WORSE = "worse"  # the load was too much: lighter next time
    SUITED = "suited"  # better or the same: the load suited you
    SETTLED = "settled"  # better or the same after a session that went above the limit


@dataclass(frozen=True)
class NextMorningVerdict:
    lighter_next_time: bool
    load_suited: bool
    flag: bool
    message: MorningMessage = MorningMessage.SUITED


def next_morning_verdict(
    answer: str, *, session_flagged: bool, rise: int | None
) -> NextMorningVerdict:
    """The model's 24-hour rule. Worse than before the session: lighter next time, and the
    therapist sees it when the session was already flagged or rose by LARGE_RISE+ (a single
    worse morning after a calm session is counted in the digest, not flagged on its own).
    Better or the same: the load suited them; after a session above the limit, still a
    slightly lighter version, since the pain during it went too high."""
    if answer not in NEXT_MORNING_ANSWERS:
        raise ValueError(f"next-morning answer must be one of {NEXT_MORNING_ANSWERS}")
    if answer == "worse":
        watched = rise is not None and rise >= LARGE_RISE
        return NextMorningVerdict(
            lighter_next_time=True,
            load_suited=False,
            flag=session_flagged or watched,
            message=MorningMessage.WORSE,
        )
    if session_flagged:
        return NextMorningVerdict(True, False, False, MorningMessage.SETTLED)
    return NextMorningVerdict(False, True, False, MorningMessage.SUITED)


# ---------------------------------------------------------------------------------------------
# Weeks: /progress and the therapist's weekly summary share these
# ---------------------------------------------------------------------------------------------


def weekly_average(scores: Iterable[int]) -> float | None:
    """The week's average pain (resting scores: before sessions and /pain), None with fewer
    than WEEK_MIN_SCORES. /progress calls this with the scores, the digest with their sum and
    count (``average_of``): the same rule."""
    values = list(scores)
    return average_of(sum(values), len(values))


def average_of(total: float, count: int) -> float | None:
    """A week's average from its sum and count; None with fewer than WEEK_MIN_SCORES."""
    if count < WEEK_MIN_SCORES:
        return None
    return total / count


class Trend(StrEnum):
    FALLING = "falling"
    RISING = "rising"
    STEADY = "steady"
    UNKNOWN = "unknown"  # fewer than two weeks with an average


def trend(averages: Sequence[float | None]) -> Trend:
    """Falling or rising only when the least-squares line through the weekly averages implies
    a meaningful change (Farrar: 2 points or 30 %) from the first to the last week with one."""
    points = [(i, m) for i, m in enumerate(averages) if m is not None]
    if len(points) < 2:
        return Trend.UNKNOWN
    mx = fmean(i for i, _ in points)
    my = fmean(m for _, m in points)
    slope = sum((i - mx) * (m - my) for i, m in points) / sum((i - mx) ** 2 for i, _ in points)
    start = my - slope * (mx - points[0][0])  # the fitted level at the first week
    change = slope * (points[-1][0] - points[0][0])
    if not is_meaningful_change(start, change):
        return Trend.STEADY
    return Trend.FALLING if change < 0 else Trend.RISING


def effect_is_shown(sessions: int) -> bool:
    """The personal before/after effect needs EFFECT_MIN_SESSIONS sessions with both scores."""
    return sessions >= EFFECT_MIN_SESSIONS


class FlagKind(StrEnum):
    HIGH_PAIN = "high_pain"  # a score 9+ or 3+ above the 4-week usual level
    AVERAGE_UP = "average_up"  # weekly average up 2+ (3+ scores in both weeks)
    TOO_MUCH = "too_much"  # a session flagged at check-in (or by its next morning)
    WORSE_MORNINGS = "worse_mornings"  # next morning worse twice, or after a flagged session
    HIGH_BEFORE = "high_before"  # pain 8+ before a session on 2+ days
    ADHERENCE_FALLING = "adherence_falling"
    BARRIERS = "barriers"  # pain too high / afraid given repeatedly
    INACTIVE = "inactive"  # no session on the last scheduled days


@dataclass(frozen=True)
class Flag:
    """A flag as structured data (kind, date, numbers) for the digest and the patient page."""

    kind: FlagKind
    on: date | None = None  # the day it is about (the latest one when several)
    numbers: dict[str, float] = field(default_factory=dict)


def high_pain_flag(scores: Iterable[tuple[date, int]], usual: float | None) -> Flag | None:
    """The week's highest score if it is 9+ or at least 3 above the patient's usual level."""
    worst: tuple[date, int] | None = None
    for day, score in scores:
        if worst is None or score > worst[1] or (score == worst[1] and day > worst[0]):
            worst = (day, score)
    if worst is None:
        return None
    day, score = worst
    above_usual = usual is not None and score >= usual + DIGEST_ABOVE_USUAL - 1e-9
    if score >= DIGEST_VERY_HIGH or above_usual:
        numbers: dict[str, float] = {"score": score}
        if usual is not None:
            numbers["usual"] = usual
        return Flag(FlagKind.HIGH_PAIN, day, numbers)
    return None


# Each weekly-summary rule comes in two forms with one body: from the records (``..._flag``,
# a list of scores or (day, value) pairs, e.g. for the therapist's patient page) and from
# counts a set-based query already made (``..._counted``, the weekly digest).


def average_up_flag(previous: Sequence[int], current: Sequence[int]) -> Flag | None:
    """The weekly average up by MEANINGFUL_POINTS or more, each week with WEEK_MIN_SCORES+."""
    return average_up_counted(weekly_average(previous), weekly_average(current))


def average_up_counted(previous: float | None, current: float | None) -> Flag | None:
    """The same from two weekly averages (``average_of``: None without enough scores)."""
    if previous is None or current is None or current - previous < MEANINGFUL_POINTS - 1e-9:
        return None
    return Flag(FlagKind.AVERAGE_UP, None, {"previous": previous, "current": current})


def too_much_flag(sessions: int, last: date | None) -> Flag | None:
    """Sessions flagged at check-in (too much for the load) or by their next morning."""
    if sessions <= 0:
        return None
    return Flag(FlagKind.TOO_MUCH, last, {"sessions": sessions})


def worse_mornings_flag(mornings: Iterable[tuple[date, str, bool]]) -> Flag | None:
    """Next-morning answers of the week as (day, answer, session flagged): "worse" twice, or
    once after a flagged session."""
    worse = [(day, flagged) for day, answer, flagged in mornings if answer == "worse"]
    after_flagged = sum(1 for _, flagged in worse if flagged)
    last = max((d for d, _ in worse), default=None)
    return worse_mornings_counted(len(worse), after_flagged, last)


def worse_mornings_counted(worse: int, worse_after_flagged: int, last: date | None) -> Flag | None:
    """Next-morning "worse" WORSE_MORNINGS times in the week, or once after a flagged session."""
    if worse >= WORSE_MORNINGS or worse_after_flagged > 0:
        return Flag(FlagKind.WORSE_MORNINGS, last, {"worse": worse})
    return None


def high_before_flag(befores: Iterable[tuple[date, int]]) -> Flag | None:
    """Pain 8+ before a session on HIGH_BEFORE_DAYS or more different days."""
    days = sorted({day for day, score in befores if score >= HIGH_PAIN})
    return high_before_counted(len(days), days[-1] if days else None)


def high_before_counted(days: int, last: date | None) -> Flag | None:
    """Pain 8+ (HIGH_PAIN) before a session on HIGH_BEFORE_DAYS or more different days."""
    if days < HIGH_BEFORE_DAYS:
        return None
    return Flag(FlagKind.HIGH_BEFORE, last, {"days": days})


def adherence_falling_flag(
    earlier_done: int, earlier_planned: int, recent_done: int, recent_planned: int
) -> Flag | None:
    """Sessions done / planned, the last two weeks against the two before."""
    if earlier_planned < ADHERENCE_MIN_PLANNED or recent_planned <= 0:
        return None
    earlier = min(earlier_done / earlier_planned, 1.0)
    recent = min(recent_done / recent_planned, 1.0)
    if earlier - recent < ADHERENCE_DROP - 1e-9:
        return None
    return Flag(FlagKind.ADHERENCE_FALLING, None, {"earlier": earlier, "recent": recent})


def barriers_flag(barriers: Iterable[tuple[date, str]]) -> Flag | None:
    """The barriers "pain too high" or "afraid it will hurt" given BARRIER_REPEATS+ times
    (each counted on its own); other reasons are shown as information, never flagged."""
    counts: dict[str, int] = {}
    last: date | None = None
    for day, barrier in barriers:
        if barrier in WORRYING_BARRIERS:
            counts[barrier] = counts.get(barrier, 0) + 1
            last = day if last is None else max(last, day)
    return barriers_counted(counts, last)


def barriers_counted(counts: Mapping[str, int], last: date | None) -> Flag | None:
    """The same from counts per barrier and the latest day of a worrying one."""
    repeated = {b: counts.get(b, 0) for b in WORRYING_BARRIERS}
    repeated = {b: n for b, n in repeated.items() if n >= BARRIER_REPEATS}
    if not repeated:
        return None
    return Flag(FlagKind.BARRIERS, last, dict(repeated))


def inactive_flag(inactive: bool) -> Flag | None:
    """No completed session on the last INACTIVE_DAYS scheduled days."""
    return Flag(FlagKind.INACTIVE, None, {"days": INACTIVE_DAYS}) if inactive else None
