"""The words for what the clinical rules decided (bot/services/feedback.py): composition only.

Every function here is pure (no database, no Telegram): given the rules' answer and the
patient's language, it returns the text. The tests render every before/after pair with these
functions, so what they check is exactly what a patient reads.
"""

from __future__ import annotations

from bot import l10n
from bot.i18n import t
from bot.services import feedback, safety
from bot.services.feedback import Assessment, MorningMessage, NextMorningVerdict, Situation


def emergency(tz: str | None, loc: str) -> str:
    """The emergency number for the patient's zone, or "your local emergency number"."""
    return safety.emergency_number(tz) or t("safety.emergency_local", loc)


def safety_line(tz: str | None, loc: str) -> str:
    """Clinician safety text: red flags and the emergency number (pain 8+ anywhere)."""
    return t("safety.line", loc, emergency=emergency(tz, loc))


def red_flags(tz: str | None, loc: str) -> str:
    return t("safety.red_flags", loc, emergency=emergency(tz, loc))


def safety_net(tz: str | None, loc: str, *, skip_button: bool) -> str:
    """Typed text that sounds worried: no medical advice, when to get help, what I can do."""
    actions = t("safety.actions_skip" if skip_button else "safety.actions", loc)
    return f"{t('safety.net', loc, emergency=emergency(tz, loc))}\n\n{actions}"


def level(value: float, loc: str) -> str:
    """A usual level as people say it: "6" or "6.5" ("6,5" in Danish and Spanish)."""
    if value == int(value):
        return str(int(value))
    return l10n.format_number(value, loc, 1)


def situation_text(a: Assessment, loc: str) -> str:
    """The rules' message for one session: what the numbers mean, never both a fall and a rise."""
    values = {"before": a.before, "after": a.after, "change": abs(a.change)}
    key = f"feedback.{a.situation}"
    uses_usual = a.usual is not None and a.usual > feedback.ACCEPTABLE_PAIN
    if a.situation in (Situation.ACCEPTABLE, Situation.TOO_MUCH) and uses_usual:
        key += "_usual"
        values["usual"] = level(a.usual, loc)
    text = t(key, loc, **values)
    if a.watch_rise:
        text += " " + t("feedback.watch_rise", loc)
    return text


def flag_text(linked: bool, loc: str) -> str:
    """After a session that was too much: who sees it, and to contact them if worried."""
    return t("feedback.flag_linked" if linked else "feedback.flag_unlinked", loc)


def result_lines(
    a: Assessment,
    loc: str,
    *,
    tip: str | None,
    first_session: bool,
    linked: bool,
    tz: str | None,
) -> list[str]:
    """The reply after a check-in, as paragraphs: numbers, first-session note, the rules'
    message, a tip that fits, the flag note, and the safety line when pain is 8+."""
    lines = [t("checkin.result", loc, before=a.before, after=a.after)]
    if first_session:
        lines.append(t("checkin.first_session", loc))
    lines.append(situation_text(a, loc))
    if tip:
        lines.append(tip)
    if a.flag:
        lines.append(flag_text(linked, loc))
    if a.safety_line:
        lines.append(safety_line(tz, loc))
    return lines


def before_text(pre: feedback.PreSession, loc: str, tz: str | None) -> str:
    """After the pain score before a session: "go" (lighter after a worse morning), or for 8+
    the gentle-or-skip offer with the safety line."""
    if pre.high:
        lines = [t("feedback.high_before", loc, score=pre.before)]
        if pre.go_lighter:
            lines.append(t("feedback.go_lighter", loc))
        lines.append(safety_line(tz, loc))
        return "\n\n".join(lines)
    text = t("checkin.go_exercise", loc, score=pre.before)
    if pre.go_lighter:
        text += "\n\n" + t("feedback.go_lighter", loc)
    return text


def morning_text(verdict: NextMorningVerdict, loc: str, *, linked: bool) -> str:
    key = {
        MorningMessage.WORSE: "feedback.morning_worse",
        MorningMessage.SUITED: "feedback.morning_suited",
        MorningMessage.SETTLED: "feedback.morning_settled",
    }[verdict.message]
    text = t(key, loc)
    if verdict.flag:
        text += "\n\n" + flag_text(linked, loc)
    return text
