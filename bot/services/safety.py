"""The safety net: which emergency number to name, and which typed messages get the safety text.

Pure functions, no Telegram, no database. The texts themselves are clinician safety text in
``locales/safety.<locale>.yml`` (not drawn from the source material, and labelled so).
"""

from __future__ import annotations

import re
import unicodedata

from bot.services.timezones import country_of_zone

# Emergency numbers by the country of the patient's time zone (ISO 3166 alpha-2). 112 is the
# single emergency number across the EU/EEA (and answered in Switzerland); the UK's is 999
# (112 works there too); 911 in the US, Canada and Mexico; 000 in Australia, 111 in New
# Zealand. Any other country: no number is guessed, the text says "your local emergency
# number" instead.
EU_112 = frozenset(
    "AT BE BG HR CY CZ DK EE FI FR DE GR HU IE IT LV LT LU MT NL PL PT RO SK SI ES SE "
    "IS LI NO CH FO GL AX".split()
)
EMERGENCY_NUMBERS: dict[str, str] = {
    **dict.fromkeys(EU_112, "112"),
    "GB": "999",
    "GG": "999",
    "JE": "999",
    "IM": "999",
    "GI": "112",
    "US": "911",
    "CA": "911",
    "MX": "911",
    "PR": "911",
    "AU": "000",
    "NZ": "111",
}


def emergency_number(tz: str | None) -> str | None:
    """The emergency number where the patient's IANA time zone is, or None if unknown."""
    country = country_of_zone(tz)
    return EMERGENCY_NUMBERS.get(country) if country else None


# --- Typed text that is not an answer --------------------------------------------------------

# Words (accents folded, lower case) that mention pain or things getting worse, in English,
# Danish and Spanish. A trailing "*" matches any ending ("smert*": smerte, smerter, smerterne).
PAIN_WORDS = {
    "en": "pain* painful hurt* ache* aching sore* worse* worst agony bad injur* swollen swelling "
    "numb* sting* throbb* flare* cramp*",
    "da": "smert* ondt vaerre vaerst skade* haevet haevels* stiv* folelsesl* daarlig* "
    "sviende murren kramp*",
    "es": "dolor* duele* duelo doliendo peor* lesion* danio dano hinchad* molest* punzad* "
    "entumec* calambre* fatal mal",
}
# Words that start a question when the sentence has no question mark.
QUESTION_STARTS = {
    "en": "should can could is are do does will would what why how when where may must",
    "da": "skal kan bor ma er hvad hvorfor hvordan hvornaar hvornar hvor gor maa burde",
    "es": "debo deberia puedo puede es hay que por como cuando donde tengo",
}


def _fold(text: str) -> str:
    """Lower case without accents; Danish æ/ø/å spelled ae/o/aa as people type without them."""
    text = text.lower().replace("æ", "ae").replace("ø", "o").replace("å", "aa")
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _word_pattern(words: str) -> re.Pattern[str]:
    parts = []
    for word in words.split():
        word = _fold(word)
        if word.endswith("*"):
            parts.append(re.escape(word[:-1]) + r"\w*")
        else:
            parts.append(re.escape(word))
    return re.compile(r"\b(?:" + "|".join(parts) + r")\b")


_PAIN = _word_pattern(" ".join(PAIN_WORDS.values()))
_QUESTION_START = _word_pattern(" ".join(QUESTION_STARTS.values()))


def needs_safety_net(text: str | None) -> bool:
    """Typed text that looks like a question or mentions pain or worsening, in any of the three
    languages: it gets the safety net (no medical advice; when to contact a clinician) and the
    useful actions, never "I didn't get that"."""
    if not text or not text.strip():
        return False
    folded = _fold(text.strip())
    if "?" in folded or "¿" in folded:
        return True
    if _PAIN.search(folded):
        return True
    first = re.match(r"\w+", folded)
    return bool(first and _QUESTION_START.fullmatch(first.group(0)))
