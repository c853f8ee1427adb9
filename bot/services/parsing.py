"""Forgiving readers for what patients type: languages, weekdays, dates, pain scores."""

from __future__ import annotations

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


def parse_language(text: str) -> str | None:
    return LANGUAGE_NAMES.get(fold(text))


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
            if first in DAY_WORDS and last in DAY_WORDS:
                a, b = DAY_WORDS[first], DAY_WORDS[last]
                for day in range(a, (b if b >= a else b + 7) + 1):
                    mask |= 1 << (day % 7)
                continue
            raise ValueError("invalid")
        if token not in DAY_WORDS:
            raise ValueError("invalid")
        mask |= 1 << DAY_WORDS[token]
    if not mask:
        raise ValueError("empty")
    return mask


def parse_date(text: str, today: date) -> date:
    """A pause end typed as 2026-12-24, 24.12.2026, 24/12 or 24.12 (the next such day)."""
    raw = text.strip()
    if m := re.fullmatch(r"(\d{4})-(\d{1,2})-(\d{1,2})", raw):
        y, mo, d, year_given = int(m[1]), int(m[2]), int(m[3]), True
    elif m := re.fullmatch(r"(\d{1,2})[./-](\d{1,2})(?:[./-](\d{2}|\d{4}))?\.?", raw):
        d, mo, year_given = int(m[1]), int(m[2]), bool(m[3])
        y = int(m[3]) if m[3] else today.year
        y += 2000 if y < 100 else 0
    else:
        raise ValueError("invalid")
    try:
        result = date(y, mo, d)
    except ValueError:
        raise ValueError("invalid") from None
    if not year_given and result < today:
        try:  # "24.12" typed in late December means next year's
            result = result.replace(year=result.year + 1)
        except ValueError:  # 29.02
            raise ValueError("invalid") from None
    if result < today:
        raise ValueError("past")
    if result > today + timedelta(days=366):
        raise ValueError("too_far")
    return result


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
