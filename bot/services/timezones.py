"""Time zones from what a patient gives us: a button, a typed city or IANA name, a location.

All offline: zoneinfo's database and timezonefinder's bundled polygons, no network.
"""

from __future__ import annotations

import functools
import unicodedata
import zoneinfo
from typing import Any

# A few likely zones per language, offered as buttons (the rest can be typed).
SUGGESTED: dict[str, tuple[str, ...]] = {
    "en": (
        "Europe/London",
        "America/New_York",
        "America/Chicago",
        "America/Los_Angeles",
        "Asia/Kolkata",
        "Australia/Sydney",
        "Pacific/Auckland",
    ),
    "da": ("Europe/Copenhagen", "Atlantic/Faroe", "America/Nuuk"),
    "es": (
        "Europe/Madrid",
        "America/Mexico_City",
        "America/Bogota",
        "America/Lima",
        "America/Argentina/Buenos_Aires",
        "America/Santiago",
        "Atlantic/Canary",
    ),
}

# Names people type that are not the zone's own city (local spellings, big cities).
ALIASES: dict[str, str] = {
    "kobenhavn": "Europe/Copenhagen",
    "denmark": "Europe/Copenhagen",
    "danmark": "Europe/Copenhagen",
    "aarhus": "Europe/Copenhagen",
    "odense": "Europe/Copenhagen",
    "aalborg": "Europe/Copenhagen",
    "esbjerg": "Europe/Copenhagen",
    "torshavn": "Atlantic/Faroe",
    "faroe": "Atlantic/Faroe",
    "faeroerne": "Atlantic/Faroe",
    "greenland": "America/Nuuk",
    "gronland": "America/Nuuk",
    "spain": "Europe/Madrid",
    "espana": "Europe/Madrid",
    "barcelona": "Europe/Madrid",
    "valencia": "Europe/Madrid",
    "sevilla": "Europe/Madrid",
    "seville": "Europe/Madrid",
    "bilbao": "Europe/Madrid",
    "malaga": "Europe/Madrid",
    "canarias": "Atlantic/Canary",
    "las palmas": "Atlantic/Canary",
    "tenerife": "Atlantic/Canary",
    "mexico": "America/Mexico_City",
    "ciudad de mexico": "America/Mexico_City",
    "cdmx": "America/Mexico_City",
    "guadalajara": "America/Mexico_City",
    "buenos aires": "America/Argentina/Buenos_Aires",
    "argentina": "America/Argentina/Buenos_Aires",
    "colombia": "America/Bogota",
    "medellin": "America/Bogota",
    "peru": "America/Lima",
    "chile": "America/Santiago",
    "uk": "Europe/London",
    "england": "Europe/London",
    "manchester": "Europe/London",
    "edinburgh": "Europe/London",
    "ireland": "Europe/Dublin",
    "new york city": "America/New_York",
    "nyc": "America/New_York",
    "boston": "America/New_York",
    "washington": "America/New_York",
    "miami": "America/New_York",
    "san francisco": "America/Los_Angeles",
    "seattle": "America/Los_Angeles",
    "texas": "America/Chicago",
    "houston": "America/Chicago",
    "dallas": "America/Chicago",
    "india": "Asia/Kolkata",
    "delhi": "Asia/Kolkata",
    "new delhi": "Asia/Kolkata",
    "mumbai": "Asia/Kolkata",
    "bangalore": "Asia/Kolkata",
    "bengaluru": "Asia/Kolkata",
    "calcutta": "Asia/Kolkata",
    "chennai": "Asia/Kolkata",
    "new zealand": "Pacific/Auckland",
    "wellington": "Pacific/Auckland",
    "utc": "UTC",
    "gmt": "UTC",
}


def _fold(text: str) -> str:
    """Lower-case, strip accents, unify separators: 'Ciudad de México' -> 'ciudad de mexico'."""
    text = text.replace("ø", "o").replace("Ø", "o").replace("æ", "ae").replace("Æ", "ae")
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    return " ".join(text.lower().replace("_", " ").replace("-", " ").split())


@functools.cache
def _index() -> dict[str, str]:
    """Folded full names and city parts of every IANA zone -> the zone."""
    index: dict[str, str] = {}
    for zone in sorted(zoneinfo.available_timezones()):
        if zone.startswith(("Etc/", "SystemV/", "posix/", "right/")) or "/" not in zone:
            continue
        index.setdefault(_fold(zone), zone)
        index.setdefault(_fold(zone.rsplit("/", 1)[1]), zone)
    index.update(ALIASES)
    return index


def is_valid_zone(name: str) -> bool:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


def match_zone(text: str) -> str | None:
    """A typed city or IANA name matched forgivingly ('new york', 'Europe/copenhagen'), or None."""
    raw = text.strip()
    if not raw or len(raw) > 64:
        return None
    if "/" in raw and is_valid_zone(raw):
        return raw
    folded = _fold(raw)
    index = _index()
    if folded in index:
        return index[folded]
    # "Copenhagen, Denmark" or "I live in Madrid": try each comma part, then each word run.
    for part in (p.strip() for p in folded.replace(",", " , ").split(",")):
        if part in index:
            return index[part]
    words = folded.replace(",", " ").split()
    for size in (3, 2, 1):
        for i in range(len(words) - size + 1):
            candidate = " ".join(words[i : i + size])
            if len(candidate) >= 3 and candidate in index:
                return index[candidate]
    return None


@functools.cache
def _finder() -> Any:
    from timezonefinder import TimezoneFinder

    return TimezoneFinder()


def zone_at(latitude: float, longitude: float) -> str | None:
    """The zone of a shared Telegram location, offline; None at sea or out of range."""
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
        return None
    zone = _finder().timezone_at(lng=longitude, lat=latitude)
    return zone if zone and is_valid_zone(zone) else None


# --- Zone -> country (issue 13: the emergency number; reusable for localization) -------------


@functools.cache
def _zone_countries() -> dict[str, str]:
    """IANA zone -> ISO 3166 country code, from tzdata's zone.tab; link names (aliases such as
    "US/Eastern" or "Europe/Kiev") resolve through the links in tzdata.zi."""
    from importlib.resources import files

    folder = files("tzdata").joinpath("zoneinfo")
    countries: dict[str, str] = {}
    for line in folder.joinpath("zone.tab").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            code, _, name, *_ = line.split("\t")
            countries[name] = code
    for line in folder.joinpath("tzdata.zi").read_text(encoding="utf-8").splitlines():
        if line.startswith("L "):
            _, target, alias = line.split()[:3]
            if target in countries and alias not in countries:
                countries[alias] = countries[target]
    return countries


def country_of_zone(tz: str | None) -> str | None:
    """The country (ISO 3166 alpha-2, e.g. "DK") an IANA zone belongs to; None for zones of no
    single country ("UTC", "Etc/GMT+1") and unknown names."""
    if not tz:
        return None
    return _zone_countries().get(tz)
