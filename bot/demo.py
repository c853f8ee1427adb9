"""`python -m bot demo`: the real bot in a terminal chat, with no token and no network.

Everything that runs is the bot itself: the Application from ``build_application`` with
every handler, the real Alembic migrations on a throw-away SQLite file, and the jobs from
``schedule_jobs`` (the reminder dispatcher, the weekly digest, whatever is added later).
Only Telegram is replaced, by ``bot.testing.fake_telegram``: a Bot API emulator on
127.0.0.1 in this process, which validates every call like the real Bot API does and
renders the bot's HTML to plain text, as a Telegram client would.

The terminal is one Telegram client. Lines typed are messages; a button's number presses
it; lines starting with ":" are demo commands (``:help``). Time only moves when told to
(``:clock +1d``): the bot's clock is a ``ManualClock``, the same one the tests use, and
a move stops wherever something falls due and runs the scheduled jobs there, so reminders
fire at their local time as they would in a bot that had been running all along.

The clock starts on Monday 07:00 UTC of the current week (``--start`` picks another
instant): early enough that a morning reminder set up during the demo is still ahead today
in Europe and the Americas, and a Monday, so weekday reminders and the weekly digest line up.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import TextIO
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from telegram import Update

from bot.app import build_application, schedule_jobs
from bot.clock import ManualClock
from bot.config import LOG_LEVELS, ConfigError, load_settings
from bot.context import BotApp
from bot.db.migrate import upgrade
from bot.db.models import CheckIn, Programme, Schedule, Therapist
from bot.db.session import create_engine, transaction
from bot.handlers.ui import format_when
from bot.i18n import SUPPORTED_LOCALES, load_locales, normalize_locale, t
from bot.services import patients, therapists
from bot.testing.fake_telegram import FakeMessage, FakeTelegram, FakeUser

# Shaped like a BotFather token (Settings checks the shape); only the emulator ever sees it.
DEMO_TOKEN = "123456:DEMO-offline-no-telegram"
BOT_USERNAME = "PainCoachDemoBot"
PATIENT = (1001, "Ana")
THERAPIST = (2001, "Mette")
ROLES = ("patient", "therapist")

# A clock move runs the scheduled jobs at each instant something falls due (WAKE_COLUMNS),
# so reminders fire on time, never as "missed" because the clock jumped past their grace
# window; and at least every MAX_STEP, so a job acting on instants not listed there still
# runs within the reminders' grace window (120 minutes by default).
MAX_STEP = timedelta(hours=1)
WAKE_COLUMNS = (
    Schedule.next_due_at,
    CheckIn.snooze_until,
    CheckIn.expires_at,
    CheckIn.next_day_due_at,
    CheckIn.nudge_due_at,
    Therapist.next_digest_at,
    Programme.next_review_at,  # the weekly programme review (issue 17)
)
MAX_MOVE = timedelta(days=60)

_DURATION = re.compile(r"\+((?:\d+[dhm])+)")
_DURATION_PART = re.compile(r"(\d+)([dhm])")
_HHMM = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


# --------------------------------------------------------------------------- pure helpers


def default_start(now: datetime) -> datetime:
    """Monday 07:00 UTC of ``now``'s week (see the module docstring for why)."""
    monday = now.astimezone(UTC).date() - timedelta(days=now.astimezone(UTC).weekday())
    return datetime.combine(monday, time(7, 0), tzinfo=UTC)


def parse_start(text: str) -> datetime:
    """``--start``: an ISO date-time; without a zone it is UTC."""
    when = datetime.fromisoformat(text)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def clock_target(arg: str, now: datetime, zone: ZoneInfo) -> datetime:
    """Where ``:clock ARG`` moves to: ``+1d2h30m`` from now, or the next ``HH:MM`` in ``zone``.

    Raises ValueError for anything else; the clock never moves backwards (the dispatcher
    and the check-ins assume time only grows).
    """
    arg = arg.strip()
    if match := _DURATION.fullmatch(arg):
        delta = timedelta()
        for amount, unit in _DURATION_PART.findall(match.group(1)):
            delta += timedelta(**{_UNITS[unit]: int(amount)})
        if not timedelta() < delta <= MAX_MOVE:
            raise ValueError(arg)
        return now + delta
    if match := _HHMM.fullmatch(arg):
        local = now.astimezone(zone)
        wanted = time(int(match.group(1)), int(match.group(2)))
        target = datetime.combine(local.date(), wanted, tzinfo=zone)
        if target <= local:  # "the next 08:30": tomorrow's if today's has passed
            target = datetime.combine(local.date() + timedelta(days=1), wanted, tzinfo=zone)
        return target.astimezone(UTC)
    raise ValueError(arg)


def number_buttons(labels: Sequence[str]) -> list[str]:
    """The key that presses each button, in order.

    Buttons are numbered 1, 2, 3... except a button whose label is itself a number (the
    0-10 pain keypad): typing that number presses it, so "6" means pain 6, not the sixth
    button. Other buttons get the numbers those labels leave free.
    """
    numeric = [label for label in labels if label.isdigit()]
    reserved = {label for label in numeric if numeric.count(label) == 1}
    keys, counter = [], 0
    for label in labels:
        if label in reserved:
            keys.append(label)
            continue
        counter += 1
        while str(counter) in reserved:
            counter += 1
        keys.append(str(counter))
    return keys


# File types the bot sends, by their first bytes: a photo uploaded without a name gets one.
_MAGIC = {b"\x89PNG": ".png", b"\xff\xd8\xff": ".jpg", b"%PDF": ".pdf"}


def file_name(kind: str, filename: str | None, data: bytes) -> str:
    """A name to save a sent file under: the bot's own if it has a real extension."""
    if filename and Path(filename).suffix.lower() in (".png", ".jpg", ".jpeg", ".pdf", ".csv"):
        return Path(filename).name
    ext = next((ext for magic, ext in _MAGIC.items() if data.startswith(magic)), "")
    return f"{kind}{ext}"


def deep_link_payload(link: str, bot_username: str) -> str | None:
    """The ``start`` payload of a ``t.me/<this bot>?start=...`` link, else None."""
    parts = urlsplit(link if "://" in link else f"https://{link}")
    if parts.hostname not in ("t.me", "telegram.me"):
        return None
    if parts.path.strip("/").lower() != bot_username.lower():
        return None
    payload = parse_qs(parts.query).get("start", [""])[0]
    return payload or None


# --------------------------------------------------------------------------- one chat


@dataclass
class Button:
    """A button as shown: which message it is on, its label, and a URL if it opens one."""

    message_id: int
    label: str
    url: str | None = None


@dataclass
class Persona:
    """One demo user and what the terminal has already shown of their chat."""

    role: str
    user: FakeUser
    shown: dict[int, tuple] = field(default_factory=dict)  # message id -> state last shown
    popups_shown: int = 0
    keys: dict[str, Button] = field(default_factory=dict)  # the buttons a number presses
    unread_noted: int = 0  # how many unread messages we already told the other persona about

    @property
    def locale(self) -> str:
        return normalize_locale(self.user.language_code)


def _state(message: FakeMessage) -> tuple:
    """What a message looks like; a change means it was edited."""
    return (message.text, message.buttons, message.file.file_id if message.file else None)


def _only_buttons_removed(before: tuple, message: FakeMessage) -> bool:
    """The bot drops a keyboard once it is answered: not worth printing the message again."""
    text, _, file_id = _state(message)
    return (text, file_id) == (before[0], before[2]) and not message.buttons


# --------------------------------------------------------------------------- the REPL


class Demo:
    """The bot, the emulator and the terminal chat: ``await demo.handle(line)`` per line."""

    def __init__(
        self,
        *,
        out_dir: Path,
        start: datetime,
        lang: str,
        stdout: TextIO = sys.stdout,
        echo: bool = False,
    ) -> None:
        self.out_dir = out_dir
        self.clock = ManualClock(start)
        self.lang = lang
        self.stdout = stdout
        self.echo = echo  # print the line read (stdin is a pipe, so nothing else shows it)
        self.fake = FakeTelegram(token=DEMO_TOKEN, bot_username=BOT_USERNAME)
        self.app: BotApp | None = None
        self.personas: dict[str, Persona] = {}
        self.current: Persona | None = None
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._engine = None
        self._files_saved = 0
        self._zone_name = "UTC"  # the current user's time zone, refreshed before each prompt
        self._commands = {
            "clock": self.cmd_clock,
            "as": self.cmd_as,
            "lang": self.cmd_lang,
            "open": self.cmd_open,
            "location": self.cmd_location,
            "say": self.cmd_say,
            "help": self.cmd_help,
            "quit": self.cmd_quit,
            "exit": self.cmd_quit,
        }

    # ----------------------------------------------------------------- lifecycle

    async def open(self) -> None:
        """Migrate a fresh database, start the emulator, build and initialise the bot."""
        self._tmp = tempfile.TemporaryDirectory(prefix="paincoach-demo-")
        url = f"sqlite+aiosqlite:///{Path(self._tmp.name) / 'demo.sqlite3'}"
        self._engine = create_engine(url)
        await upgrade(self._engine)
        await self.fake.start()
        settings = load_settings(
            telegram_bot_token=DEMO_TOKEN,
            telegram_api_base_url=self.fake.api_base_url,
            database_url=url,
            webhook_url="",
            # The emulator has no flood limit, and the limiter's one-second spacing of
            # scheduled sends to one chat would only make clock moves slow.
            send_rate_per_second=0,
        )
        app = build_application(settings, clock=self.clock, engine=self._engine)
        # The JobQueue is never started: jobs run when the demo moves the clock, not on
        # real time. schedule_jobs still registers them, so the demo runs exactly what
        # `run` would schedule, however many jobs that is.
        app.bot_data.run_jobs = False
        await app.initialize()
        await app.post_init(app)
        schedule_jobs(app)

        async def deliver(data: dict) -> None:
            # Awaiting process_update means every handler has run when a user action
            # returns: the bot is quiet and its answers are in the emulator.
            await app.process_update(Update.de_json(data, app.bot))

        self.fake.deliver = deliver
        self.app = app
        self.current = self._persona("patient")

    async def close(self) -> None:
        if self.app is not None:
            await self.app.shutdown()
        await self.fake.stop()
        if self._engine is not None:
            await self._engine.dispose()
        if self._tmp is not None:
            self._tmp.cleanup()

    async def __aenter__(self) -> Demo:
        try:
            await self.open()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _persona(self, role: str) -> Persona:
        if role not in self.personas:
            user_id, name = PATIENT if role == "patient" else THERAPIST
            self.personas[role] = Persona(role, self.fake.user(user_id, name, self.lang))
        return self.personas[role]

    # ----------------------------------------------------------------- output

    def say(self, text: str = "") -> None:
        print(text, file=self.stdout, flush=True)

    def note(self, key: str, **values: object) -> None:
        """One line of the demo's own, in the current user's language."""
        for line in t(f"demo.{key}", self.current.locale, **values).splitlines():
            self.say(f"-- {line}")

    def banner(self) -> None:
        loc = self.current.locale
        self.say(t("demo.banner", loc, name=PATIENT[1], bot=BOT_USERNAME))
        self.note("clock_now", time=self.clock_text())

    def prompt(self) -> None:
        who = t(f"demo.role.{self.current.role}", self.current.locale)
        print(f"\n[{self.clock_text()}] {who}> ", end="", file=self.stdout, flush=True)

    def clock_text(self) -> str:
        """The bot's time in words, in the current user's zone (UTC before they chose one)."""
        local = self.clock.now().astimezone(ZoneInfo(self._zone_name))
        return f"{format_when(local, self._zone_name, self.current.locale)} {local.tzname()}"

    async def refresh_zone(self) -> ZoneInfo:
        """The current user's time zone from the database (set during the bot's setup)."""
        async with self.app.bot_data.sessions() as session:
            user = await patients.get_user(session, self.current.user.id)
        self._zone_name = (user.timezone if user else None) or "UTC"
        return ZoneInfo(self._zone_name)

    def flush(self) -> None:
        """Print what is new in the current chat; tell about news in the other one."""
        self._show(self.current)
        for persona in self.personas.values():
            if persona is not self.current:
                unread = len(self._changes(persona))
                if unread > persona.unread_noted:
                    who = t(f"demo.role.{persona.role}", self.current.locale)
                    self.note("unread", count=unread, who=who, role=persona.role)
                persona.unread_noted = unread

    def _changes(self, persona: Persona) -> list[tuple[FakeMessage, bool]]:
        """New and edited messages not shown yet, oldest first, as (message, edited)."""
        changes = []
        for message in persona.user.messages:
            before = persona.shown.get(message.message_id)
            if before is None:
                changes.append((message, False))
            elif before != _state(message) and not _only_buttons_removed(before, message):
                changes.append((message, True))
        return changes

    def _show(self, persona: Persona) -> None:
        changes = self._changes(persona)
        for text in persona.user.answers[persona.popups_shown :]:
            if text:  # a button answered without text shows nothing in Telegram either
                self.note("popup", text=text)
        persona.popups_shown = len(persona.user.answers)
        labels = [label for message, _ in changes for row in message.buttons for label in row]
        keys = iter(number_buttons(labels))
        if labels:  # numbers always refer to the newest buttons shown
            persona.keys = {}
        for message, edited in changes:
            self.say()
            self.say(self.render(message, persona, keys, edited=edited))
        for message in persona.user.messages:
            persona.shown[message.message_id] = _state(message)
        persona.unread_noted = 0

    def render(self, message: FakeMessage, persona: Persona, keys, *, edited: bool) -> str:
        """A bot message as text: a saved file's path, the text, numbered buttons."""
        loc = persona.locale
        lines = []
        if message.file is not None and message.file.data is not None:
            path = self.save_file(message)
            lines.append(t(f"demo.saved_{message.file.kind}", loc, path=path))
        if message.text:
            lines += message.text.splitlines()
        if edited:
            lines[0:0] = [t("demo.edited", loc)]
        rows = message.raw.get("reply_markup", {}).get("inline_keyboard", [])
        for row in rows:
            cells = []
            for button in row:
                key = next(keys)
                persona.keys[key] = Button(message.message_id, button["text"], button.get("url"))
                label = button["text"]
                cells.append(f"[{key}]" if key == label else f"[{key}] {label}")
            lines.append("  ".join(cells))
        return "\n".join(f"| {line}".rstrip() for line in lines or ["(empty)"])

    def save_file(self, message: FakeMessage) -> str:
        """Write a photo or document the bot sent to the output folder; its path for display."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        name = file_name(message.file.kind, message.filename, message.file.data)
        while True:  # never overwrite a file of an earlier demo run
            self._files_saved += 1
            path = self.out_dir / f"{self._files_saved:02d}-{Path(name).name}"
            if not path.exists():
                break
        path.write_bytes(message.file.data)
        try:
            return str(path.resolve().relative_to(Path.cwd()))
        except ValueError:
            return str(path.resolve())

    # ----------------------------------------------------------------- input

    async def handle(self, line: str) -> bool:
        """Act on one input line; False once the demo should end."""
        line = line.strip()
        if self.echo:
            self.say(line)
        if not line:
            return True
        if line.startswith(":"):
            name, _, arg = line[1:].partition(" ")
            command = self._commands.get(name.lower())
            if command is None:
                self.note("unknown_command", command=line.split()[0])
                return True
            if await command(arg.strip()) is False:
                return False
        elif line in self.current.keys:
            await self.press(line, self.current.keys[line])
        else:
            await self.current.user.send(line)
        # The running bot ticks every few seconds: whatever is due now goes out now.
        await self.run_jobs()
        self.flush()
        return True

    async def press(self, key: str, button: Button) -> None:
        if key != button.label:  # "6" on the pain keypad needs no "you pressed [6]"
            self.note("pressed", label=button.label)
        if button.url is not None:
            payload = deep_link_payload(button.url, BOT_USERNAME)
            if payload is None:
                self.note("link", url=button.url)
            else:
                await self.send_for_user(f"/start {payload}")
            return
        try:
            await self.current.user.press(button.label, message_id=button.message_id)
        except LookupError:  # the bot has since removed that keyboard
            self.note("button_gone")

    # ----------------------------------------------------------------- demo commands

    async def cmd_clock(self, arg: str) -> None:
        """``:clock`` shows the time; ``:clock +1d`` / ``:clock 08:30`` moves it forward."""
        zone = await self.refresh_zone()
        if not arg:
            self.note("clock_now", time=self.clock_text())
            return
        try:
            target = clock_target(arg, self.clock.now(), zone)
        except ValueError:
            self.note("clock_bad", arg=arg)
            return
        await self.advance_to(target)
        self.note("clock_moved", time=self.clock_text())

    async def advance_to(self, target: datetime) -> None:
        """Move the bot's clock to ``target`` as the running bot would live through it.

        Stepping minute by minute costs too much (every round queries the database), and
        one jump would find today's reminder hours overdue: so the clock stops at each
        instant something falls due and at least every MAX_STEP, and the jobs run there.
        """
        while (now := self.clock.now()) < target:
            wake = await self.next_due_after(now)
            self.clock.set(min(target, now + MAX_STEP, wake or target))
            await self.run_jobs()

    async def next_due_after(self, now: datetime) -> datetime | None:
        """The earliest instant after ``now`` that some scheduled job acts on."""
        firsts = [select(func.min(c)).where(c > now).scalar_subquery() for c in WAKE_COLUMNS]
        async with self.app.bot_data.sessions() as session:
            found = (await session.execute(select(*firsts))).one()
        return min((when for when in found if when is not None), default=None)

    async def run_jobs(self) -> None:
        """One round of every job `run` would schedule (dispatcher tick, weekly digest...)."""
        for job in self.app.job_queue.jobs():
            await job.run(self.app)

    async def cmd_as(self, arg: str) -> None:
        role = arg.lower()
        if role not in ROLES:
            self.note("as_usage")
            return
        first_time = role not in self.personas
        self.current = self._persona(role)
        if role == "therapist" and first_time:
            # As an operator would with `python -m bot therapist add <id>`: the role is
            # never something a user can type their way into.
            async with transaction(self.app.bot_data.sessions) as session:
                await patients.ensure_user(session, self.current.user.id, self.lang)
                await therapists.grant(session, self.current.user.id)
            self.note("granted", name=THERAPIST[1], id=THERAPIST[0])
        name = self.current.user.first_name
        self.note("switched", name=name, who=t(f"demo.role.{role}", self.current.locale))
        await self.refresh_zone()

    async def cmd_lang(self, arg: str) -> None:
        """Telegram's app language (for /start) and the bot's language, via /language."""
        code = arg.lower()
        if code not in SUPPORTED_LOCALES:
            self.note("lang_usage", codes=", ".join(SUPPORTED_LOCALES))
            return
        user = self.current.user
        # The real flow, shown in the chat: /language, then the language's button.
        await self.send_for_user("/language")
        self.flush()
        buttons = (user.last.raw.get("reply_markup") or {}).get("inline_keyboard", [])
        wanted = (f"lang:{code}", f"lang:{code}:any")
        labels = [b["text"] for row in buttons for b in row if b.get("callback_data") in wanted]
        if labels:  # else the bot answered something else, and that is on screen
            self.note("pressed", label=labels[0])
            await user.press(labels[0], message_id=user.last.message_id)
        # Telegram's app language too: /start greets a new user in it, and the demo's own
        # lines follow it from here on.
        user.language_code = code

    async def send_for_user(self, text: str) -> None:
        """Send what Telegram (or the demo) sends on the user's behalf, and say so."""
        self.note("sent", text=text)
        await self.current.user.send(text)

    async def cmd_open(self, arg: str) -> None:
        """Open a t.me deep link: Telegram sends the bot `/start <payload>`."""
        payload = deep_link_payload(arg, BOT_USERNAME)
        if payload is None:
            self.note("open_usage", bot=BOT_USERNAME)
            return
        await self.send_for_user(f"/start {payload}")

    async def cmd_location(self, arg: str) -> None:
        try:
            latitude, longitude = (float(part) for part in arg.replace(",", " ").split())
        except ValueError:
            self.note("location_usage")
            return
        await self.current.user.send_location(latitude, longitude)

    async def cmd_say(self, arg: str) -> None:
        """Send text as it is, even when it is a button's number."""
        if arg:
            await self.current.user.send(arg)

    async def cmd_help(self, arg: str) -> None:
        self.say(
            t(
                "demo.help",
                self.current.locale,
                patient=PATIENT[1],
                therapist=THERAPIST[1],
                out=self.out_dir,
            )
        )

    async def cmd_quit(self, arg: str) -> bool:
        return False

    # ----------------------------------------------------------------- the loop

    async def run(self, lines: asyncio.Queue[str | None]) -> None:
        """Banner, then prompt, read, act, until :quit or the end of input."""
        self.banner()
        while True:
            await self.refresh_zone()
            self.prompt()
            line = await lines.get()
            if line is None:  # end of input (Ctrl-D, or the pipe closed)
                self.say()
                break
            if not await self.handle(line):
                break
        self.note("bye", out=self.out_dir)


def _read_lines(queue: asyncio.Queue[str | None], loop: asyncio.AbstractEventLoop) -> None:
    """Feed stdin's lines to the event loop; None at EOF.

    A daemon thread rather than run_in_executor: a readline still blocked in the default
    executor would keep asyncio.run from returning after :quit or Ctrl-C. Works the same
    with a terminal, a pipe and a redirected file, on every platform.
    """
    for line in sys.stdin:
        loop.call_soon_threadsafe(queue.put_nowait, line)
    loop.call_soon_threadsafe(queue.put_nowait, None)


async def _main(args: argparse.Namespace, start: datetime) -> None:
    queue: asyncio.Queue[str | None] = asyncio.Queue()
    loop = asyncio.get_running_loop()
    echo = not sys.stdin.isatty()
    async with Demo(out_dir=Path(args.out), start=start, lang=args.lang, echo=echo) as demo:
        threading.Thread(target=_read_lines, args=(queue, loop), daemon=True).start()
        await demo.run(queue)


def main(args: argparse.Namespace) -> int:
    """`python -m bot demo` (options parsed by bot.__main__): the exit status."""
    from bot.logging_setup import configure

    # Only warnings, on stderr: the chat is on stdout. LOG_LEVEL=INFO shows the bot's log.
    level = os.environ.get("LOG_LEVEL", "WARNING").strip().upper()
    if level not in LOG_LEVELS:
        print(
            f"error: LOG_LEVEL is invalid: must be one of {', '.join(LOG_LEVELS)}", file=sys.stderr
        )
        return 2
    configure(level, DEMO_TOKEN)
    if hasattr(sys.stdout, "reconfigure"):  # a pipe on Windows is not UTF-8: never crash
        sys.stdout.reconfigure(errors="replace")
    try:
        start = parse_start(args.start) if args.start else default_start(datetime.now(UTC))
    except ValueError:
        print(f"error: --start {args.start!r} is not an ISO date-time", file=sys.stderr)
        return 2
    load_locales()
    try:
        asyncio.run(_main(args, start))
    except ConfigError as exc:  # the demo honours the environment's other settings
        # (CHECKIN_EXPIRY_HOURS, REMINDER_GRACE_MINUTES...), so a bad one stops it too
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0
