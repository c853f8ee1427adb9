"""Pain-guided progression: the weekly decision from a patient's own records (issue 17).

Pure (no database, no Telegram). Every pain threshold comes from ``bot.services.feedback``
(the pain-monitoring model: pain after a session acceptable and the next morning not worse
→ the load suited and can rise; otherwise lower it); this module only counts the week.

From the last 7 days:

- at least MIN_SESSIONS completed sessions, every pain after acceptable, at least one next
  morning answered better or the same (MIN_SETTLED_MORNINGS)
  (``feedback.pain_after_acceptable`` against the patient's ``feedback.usual_level``), and no
  "worse" next morning → one step UP (more repetitions within the level's range, then the
  next level: ``exercises.step_up``);
- "worse" next mornings ``feedback.WORSE_MORNINGS`` times (twice), or a session that was too
  much (``feedback.Situation.TOO_MUCH``: a rise of 2+ ending above the acceptable limit,
  the check-in's own "too much") → one step DOWN;
- otherwise KEEP.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum

from bot.services import exercises, feedback
from bot.services.exercises import Step

MIN_SESSIONS = 2  # fewer completed sessions in the week say too little to raise the load
# The model's 24-hour rule: the load goes up only when the next morning was answered and was
# not worse (Silbernagel et al. 2007). An unanswered morning is not a "not worse".
MIN_SETTLED_MORNINGS = 1
WINDOW_DAYS = 7


class Direction(StrEnum):
    UP = "up"
    KEEP = "keep"
    DOWN = "down"


@dataclass(frozen=True)
class SessionRecord:
    """One completed session of the week, as the patient answered it."""

    pain_before: int | None
    pain_after: int | None
    next_morning: str | None = None  # better | same | worse | None (not answered)


@dataclass(frozen=True)
class Reason:
    """The numbers behind a decision; stored with every change and shown to people."""

    sessions: int
    max_after: int | None
    usual: float | None
    worse_mornings: int
    flagged: int
    all_after_acceptable: bool
    settled_mornings: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Decision:
    direction: Direction
    reason: Reason


def too_much(record: SessionRecord, usual: float | None) -> bool:
    if record.pain_before is None or record.pain_after is None:
        return False
    situation = feedback.situation_for(record.pain_before, record.pain_after, usual=usual)
    return situation is feedback.Situation.TOO_MUCH


def weekly_decision(records: Sequence[SessionRecord], usual: float | None) -> Decision:
    """Up, keep or down for the coming week, from the week's completed sessions."""
    afters = [r.pain_after for r in records if r.pain_after is not None]
    worse = sum(1 for r in records if r.next_morning == "worse")
    settled = sum(1 for r in records if r.next_morning in ("better", "same"))
    flagged = sum(1 for r in records if too_much(r, usual))
    acceptable = all(feedback.pain_after_acceptable(a, usual) for a in afters)
    reason = Reason(
        sessions=len(records),
        max_after=max(afters) if afters else None,
        usual=usual,
        worse_mornings=worse,
        flagged=flagged,
        all_after_acceptable=acceptable,
        settled_mornings=settled,
    )
    if worse >= feedback.WORSE_MORNINGS or flagged:
        return Decision(Direction.DOWN, reason)
    if (
        len(afters) >= MIN_SESSIONS
        and acceptable
        and worse == 0
        and settled >= MIN_SETTLED_MORNINGS
    ):
        return Decision(Direction.UP, reason)
    return Decision(Direction.KEEP, reason)


def apply(steps: Sequence[Step], direction: Direction) -> list[tuple[Step, Step]]:
    """Each exercise one step in ``direction``; only those that actually change."""
    if direction is Direction.KEEP:
        return []
    move = exercises.step_up if direction is Direction.UP else exercises.step_down
    pairs = [(s, move(s)) for s in steps if s.key in exercises.LIBRARY]
    return [(before, after) for before, after in pairs if before != after]
