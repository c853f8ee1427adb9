"""Dates, times, numbers and time-zone names in the patient's language, all from CLDR (Babel).

The one place the bot turns a date or a number into text. Nothing here is hand-written per
language: month and weekday names, the order of day and month, the decimal comma and the
"now 14.05" clock all come from the Unicode CLDR data that Babel ships. A language's
``common.cldr`` key names the CLDR locale to use ("en" -> "en_GB": day before month, 24-hour
clock); a fourth language needs only its ``locales/*.yml``.
"""

from __future__ import annotations

import functools
import re
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from babel import Locale, UnknownLocaleError
from babel.dates import format_date as _babel_date
from babel.dates import format_skeleton, get_timezone_location, get_timezone_name
from babel.dates import format_time as _babel_time
from babel.numbers import format_decimal, format_percent, get_decimal_symbol

from bot.i18n import has, normalize_locale, t

MINUS = "−"  # U+2212: a real minus sign, as typographers (and CLDR's da/es data) use


@functools.cache
def cldr(loc: str | None) -> Locale:
    """The Babel locale for one of ours (``common.cldr`` in its locale file, else the code)."""
    code = normalize_locale(loc)
    name = t("common.cldr", code) if has("common.cldr", code) else code
    try:
        return Locale.parse(name)
    except (UnknownLocaleError, ValueError):
        return Locale.parse(code)


# --- Calendar ----------------------------------------------------------------------------------


def weekday_name(weekday: int, loc: str, width: str = "wide") -> str:
    """0 = Monday: 'Monday' / 'mandag' / 'lunes' ('abbreviated': 'Mon' / 'man.' / 'lun')."""
    return cldr(loc).days["format"][width][weekday]


def month_name(month: int, loc: str, width: str = "wide") -> str:
    return cldr(loc).months["format"][width][month]


def format_date(day: date, loc: str, *, year: bool = False) -> str:
    """'24 December' / '24. december' / '24 de diciembre' (with the year when asked)."""
    return format_skeleton("yMMMMd" if year else "MMMMd", day, locale=cldr(loc))


def short_date(day: date, loc: str, *, year: bool = False) -> str:
    """'24 Dec' / '24. dec.' / '24 dic', for chart axes and lists."""
    return format_skeleton("yMMMd" if year else "MMMd", day, locale=cldr(loc))


def format_numeric_date(day: date, loc: str) -> str:
    """'24/12/2026' / '24.12.2026' / '24/12/2026': the form spreadsheets read as a date."""
    return format_skeleton("yMd", day, locale=cldr(loc))


def format_numeric_datetime(instant: datetime, tz: str, loc: str) -> str:
    """'24.12.2026 08.30' in the patient's zone."""
    local = instant.astimezone(ZoneInfo(tz))
    return f"{format_numeric_date(local.date(), loc)} {format_clock(local, loc)}"


@functools.cache
def _weekday_date_pattern(loc: str) -> str:
    """The locale's full date pattern without the year: 'EEEE 'den' d. MMMM'."""
    pattern = cldr(loc).date_formats["full"].pattern
    return re.sub(r"[\s,]*(?:'[^']*'\s*)?y+", "", pattern).strip(" ,")


def weekday_date(day: date, loc: str) -> str:
    """'Thursday, 24 December' / 'torsdag den 24. december' / 'jueves, 24 de diciembre'."""
    return _babel_date(day, _weekday_date_pattern(normalize_locale(loc)), locale=cldr(loc))


def format_clock(value: time | datetime, loc: str) -> str:
    """'08:30' / '08.30' / '8:30': the locale's short time (24-hour in our three)."""
    if isinstance(value, datetime):
        value = value.timetz().replace(tzinfo=None)
    return _babel_time(value, "short", locale=cldr(loc))


def format_hhmm(local_time: str, loc: str) -> str:
    """A stored 'HH:MM' reminder time as the locale writes it."""
    hours, _, minutes = local_time.partition(":")
    return format_clock(time(int(hours), int(minutes)), loc)


def format_when(instant: datetime, tz: str, loc: str) -> str:
    """'Thursday, 24 December, 08:30' in the patient's zone and language."""
    local = instant.astimezone(ZoneInfo(tz))
    return t(
        "common.when", loc, date=weekday_date(local.date(), loc), time=format_clock(local, loc)
    )


def local_clock(tz: str, now: datetime, loc: str) -> str:
    """What the clock reads now in ``tz``: '14:05' / '14.05'."""
    return format_clock(now.astimezone(ZoneInfo(tz)), loc)


# --- Numbers -----------------------------------------------------------------------------------


def format_number(value: float, loc: str, digits: int = 1, *, signed: bool = False) -> str:
    """'3.5' / '3,5'; ``signed`` adds '+' or a real minus sign (none for zero)."""
    pattern = "0." + "0" * digits if digits else "0"
    text = format_decimal(abs(value), pattern, locale=cldr(loc))
    if not signed or round(value, digits) == 0:
        return text if value >= 0 or round(value, digits) == 0 else MINUS + text
    return ("+" if value > 0 else MINUS) + text


def decimal_symbol(loc: str) -> str:
    """'.' or ',': how the language writes a decimal point."""
    return get_decimal_symbol(cldr(loc))


def format_share(share: float, loc: str) -> str:
    """A fraction 0..1 as a percentage: '62%' / '62 %'."""
    return format_percent(share, locale=cldr(loc))


# --- Time zones --------------------------------------------------------------------------------

FIXED_ZONE = re.compile(r"Etc/GMT([+-])(\d{1,2})\Z")


def zone_city(tz: str, loc: str) -> str:
    """The zone's exemplar city in the language: 'København', 'Londres', 'Nueva York'."""
    return get_timezone_location(tz, locale=cldr(loc), return_city=True)


def country_name(code: str, loc: str) -> str:
    return cldr(loc).territories.get(code, code)


def fixed_offset_name(tz: str, loc: str) -> str | None:
    """'UTC+1, no daylight saving' for UTC and the Etc/GMT±N zones; None for any other."""
    if tz in ("UTC", "Etc/UTC", "Etc/GMT", "GMT", "Etc/Universal", "Etc/Zulu"):
        return t("common.zone_fixed", loc, offset="UTC")
    if m := FIXED_ZONE.match(tz):
        hours = int(m[2])
        if hours == 0:
            return t("common.zone_fixed", loc, offset="UTC")
        sign = "-" if m[1] == "+" else "+"  # POSIX: Etc/GMT-1 is UTC+1
        return t("common.zone_fixed", loc, offset=f"UTC{sign}{hours}")
    return None


def zone_name(tz: str, loc: str) -> str:
    """A zone as a patient reads it: 'København (Danmark)', 'Londres (Reino Unido)',
    'UTC+1, no daylight saving'."""
    if (fixed := fixed_offset_name(tz, loc)) is not None:
        return fixed
    from bot.services.timezones import country_of_zone

    city = zone_city(tz, loc)
    country = country_of_zone(tz)
    if not country:
        return city
    land = country_name(country, loc)
    return city if land == city else f"{city} ({land})"


def zone_generic_name(tz: str, loc: str) -> str:
    """The zone's generic CLDR name: 'Central European Time' / 'Centraleuropæisk tid'."""
    return get_timezone_name(tz, "long", locale=cldr(loc))
