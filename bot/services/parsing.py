"""Forgiving readers for what patients type: languages, weekdays, dates, pain scores."""

from __future__ import annotations

import functools
import re
import unicodedata
from datetime import date, timedelta

# Weekday masks: bit 0 = Monday (as in bot.services.schedule_rules).
ALL_DAYS = 0b1111111
WEEKDAYS = 0b0011111


def fold(text: str) -> str:
    text = text.replace("ø", "o").replace("æ", "ae").replace("å", "aa")
    text = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in text if not unicodedata.combining(c)).strip()


LANGUAGE_NAMES = {
    "en": "en",
    "english": "en",
    "engelsk": "en",
    "ingles": "en",
    "da": "da",
    "dansk": "da",
    "danish": "da",
    "danes": "da",
    "es": "es",
    "espanol": "es",
    "spanish": "es",
    "spansk": "es",
    "castellano": "es",
}


@functools.cache
def _language_words() -> dict[str, str]:
    """Our languages' names in each of them (CLDR: 'spansk', 'inglés'), and the table above."""
    from bot.i18n import SUPPORTED_LOCALES
    from bot.l10n import cldr

    words = dict(LANGUAGE_NAMES)
    for loc in SUPPORTED_LOCALES:
        for code in SUPPORTED_LOCALES:
            words.setdefault(code, code)
            if name := cldr(loc).languages.get(code):
                words.setdefault(fold(name), code)
    return words


def parse_language(text: str) -> str | None:
    return _language_words().get(fold(text))


# Day names in every supported language (folded), weekday 0 = Monday.
_DAY_WORDS = {
    0: ("mon", "monday", "man", "mandag", "lun", "lunes"),
    1: ("tue", "tues", "tuesday", "tir", "tirsdag", "mar", "martes"),
    2: ("wed", "wednesday", "ons", "onsdag", "mie", "miercoles"),
    3: ("thu", "thur", "thurs", "thursday", "tor", "torsdag", "jue", "jueves"),
    4: ("fri", "friday", "fre", "fredag", "vie", "viernes"),
    5: ("sat", "saturday", "lor", "lordag", "sab", "sabado"),
    6: ("sun", "sunday", "son", "sondag", "dom", "domingo"),
}
DAY_WORDS = {word: day for day, words in _DAY_WORDS.items() for word in words}


@functools.cache
def _day_words() -> dict[str, int]:
    """Weekday names and abbreviations of every supported language (CLDR), and the table above:
    a new language's day names are read without a list of its own."""
    from bot.i18n import SUPPORTED_LOCALES
    from bot.l10n import cldr

    words = dict(DAY_WORDS)
    for loc in SUPPORTED_LOCALES:
        for context in ("format", "stand-alone"):
            for width in ("wide", "abbreviated"):
                for day, name in cldr(loc).days[context][width].items():
                    words.setdefault(fold(name).rstrip("."), day)
    return words


EVERY_DAY = {
    "every day",
    "everyday",
    "daily",
    "all",
    "hver dag",
    "alle dage",
    "dagligt",
    "todos los dias",
    "todos",
    "cada dia",
    "diario",
}
WORK_DAYS = {
    "weekdays",
    "workdays",
    "hverdage",
    "alle hverdage",
    "entre semana",
    "laborables",
    "dias laborables",
    "lunes a viernes",
    "mon-fri",
}


def parse_days(text: str) -> int:
    """'weekdays', 'hver dag', 'lun, mié, vie', 'mon-fri' -> a weekday mask; ValueError if none."""
    folded = fold(text).replace(".", " ")
    if folded in EVERY_DAY:
        return ALL_DAYS
    if folded in WORK_DAYS:
        return WEEKDAYS
    mask = 0
    for token in re.split(r"[\s,;/+&]+|\bog\b|\band\b|\by\b", folded):
        if not token:
            continue
        if "-" in token:  # a range like mon-fri
            first, _, last = token.partition("-")
            if first in _day_words() and last in _day_words():
                a, b = _day_words()[first], _day_words()[last]
                for day in range(a, (b if b >= a else b + 7) + 1):
                    mask |= 1 << (day % 7)
                continue
            raise ValueError("invalid")
        if token not in _day_words():
            raise ValueError("invalid")
        mask |= 1 << _day_words()[token]
    if not mask:
        raise ValueError("empty")
    return mask


@functools.cache
def _month_words() -> dict[str, int]:
    """Month names and abbreviations of every supported language (CLDR), folded: 'dic' -> 12."""
    from bot.i18n import SUPPORTED_LOCALES
    from bot.l10n import cldr

    words: dict[str, int] = {}
    for loc in SUPPORTED_LOCALES:
        for context in ("format", "stand-alone"):
            for width in ("wide", "abbreviated"):
                for number, name in cldr(loc).months[context][width].items():
                    words.setdefault(fold(name).rstrip("."), number)
    words.update({"sept": 9, "set": 9})
    return words


def _day_first(loc: str) -> bool:
    """Whether the language writes the day before the month in numeric dates (CLDR)."""
    from bot.l10n import cldr

    pattern = cldr(loc).date_formats["short"].pattern
    return pattern.find("d") < pattern.find("M")


_NUMERIC = re.compile(r"(\d{1,2})[./-](\d{1,2})(?:[./-](\d{2}|\d{4}))?\.?")
_WORDY = re.compile(
    r"(?:(?P<d1>\d{1,2})\.?\s*(?:de\s+)?(?P<m1>[a-z]+)\.?|(?P<m2>[a-z]+)\.?\s*(?P<d2>\d{1,2}))"
    r"(?:,?\s*(?:de\s+)?(?P<y>\d{4}))?"
)


def parse_date(text: str, today: date, loc: str = "en") -> date:
    """A pause end as people type it: 2026-12-24, 24.12.2026, 24/12, 12/24 (month first where
    the language writes it so, or when 24 cannot be a month), '24. december',
    '24 de diciembre', 'December 24', 'dic 24'. Without a year: the next such day.
    ValueError('invalid' | 'past' | 'too_far').
    """
    raw = fold(text).strip().removeprefix("til ").removeprefix("until ").removeprefix("hasta el ")
    raw = raw.removeprefix("den ").strip()
    candidates: list[tuple[int, int, int | None]] = []  # (day, month, year) readings, best first
    if m := re.fullmatch(r"(\d{4})-(\d{1,2})-(\d{1,2})", raw):
        candidates.append((int(m[3]), int(m[2]), int(m[1])))
    elif m := _NUMERIC.fullmatch(raw):
        a, b = int(m[1]), int(m[2])
        year = int(m[3]) + (2000 if len(m[3]) == 2 else 0) if m[3] else None
        first, second = ((a, b), (b, a)) if _day_first(loc) else ((b, a), (a, b))
        candidates += [(*first, year), (*second, year)]
    elif m := _WORDY.fullmatch(raw):
        day, word = (m["d1"], m["m1"]) if m["d1"] else (m["d2"], m["m2"])
        month = _month_words().get(word)
        if month is None:
            raise ValueError("invalid")
        candidates.append((int(day), month, int(m["y"]) if m["y"] else None))
    else:
        raise ValueError("invalid")
    for day, month, year in candidates:
        try:
            result = date(year or today.year, month, day)
        except ValueError:
            continue
        if year is None and result < today:
            try:  # "24.12" typed in late December means next year's
                result = result.replace(year=result.year + 1)
            except ValueError:  # 29.02
                continue
        if result < today:
            raise ValueError("past")
        if result > today + timedelta(days=366):
            raise ValueError("too_far")
        return result
    raise ValueError("invalid")


def parse_score(text: str) -> int:
    """A pain score 0-10 typed by the patient; ValueError('range'|'fraction'|'invalid')."""
    raw = text.strip().rstrip(".").replace(",", ".")
    raw = raw.split("/")[0].strip() if raw.endswith(("/10", "/ 10")) else raw
    if re.fullmatch(r"-?\d+", raw):
        value = int(raw)
        if not 0 <= value <= 10:
            raise ValueError("range")
        return value
    if re.fullmatch(r"-?\d*\.\d+", raw):
        raise ValueError("fraction")
    raise ValueError("invalid")
