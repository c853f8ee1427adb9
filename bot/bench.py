"""``python -m bot.bench``: the performance bars B1-B8 of ARCHITECTURE.md in one run.

Every bar runs against a local fake Bot API (``bot.testing.fake_telegram.FakeTelegram``) served
from this same process, on a scratch database: a temporary SQLite file by default, or, with
``--database-url postgresql+asyncpg://user@host/db``, fresh databases created next to that one
and dropped afterwards. Ratios (B1, B4) are taken against a bare python-telegram-bot
reference measured in the same run, on the same fake and the same machine.

    python -m bot.bench                       # all bars, human table
    python -m bot.bench --json                # one JSON object per bar on stdout
    python -m bot.bench --quick --only B2,B3  # a 15 s fan-out instead of 60 s
    python -m bot.bench --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/postgres

Not a test: nothing here asserts on time. The fake server shares the CPU with the bot, so
every figure includes the fake's own work (parsing, validating, answering); both sides of a
ratio pay it alike.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import logging
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

from sqlalchemy import func, insert, make_url, select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from telegram import Update
from telegram.constants import ParseMode
from telegram.ext import Application, CallbackQueryHandler, ExtBot

from bot.app import build_application
from bot.bench_support import (
    BENCH_TOKEN,
    PROBE,
    REPO_ROOT,
    BarResult,
    max_in_sliding_window,
    percentile,
    rounded,
)
from bot.clock import ManualClock
from bot.config import Settings, load_settings
from bot.db.migrate import upgrade
from bot.db.models import CheckIn, Schedule, User
from bot.db.session import create_engine, make_session_factory
from bot.handlers.checkin import ask_score_text, prompt_rows, prompt_text, score_keypad
from bot.handlers.ui import keyboard, send_message_id
from bot.i18n import load_locales, t
from bot.scheduling.dispatcher import SEND_CONCURRENCY, Dispatcher, TickReport
from bot.services import reminders
from bot.testing.fake_telegram import FakeStats, FakeTelegram, FakeUser

BARS = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8")
RATE = 30  # Telegram's overall limit, messages per second
B1_DUE = 5_000
B2_SECONDS, B2_QUICK_SECONDS = 60, 15
B3_PRESS_INTERVAL = 0.5
B4_UPDATES, B4_WARM_UP, B4_ROUNDS = 1_000, 50, 5
B5_CLAIM_LIMIT, B5_CLAIM_RUNS = 1_000, 9
B6_THERAPISTS, B6_QUICK_THERAPISTS, B6_PATIENTS_EACH = 1_000, 200, 20
PATIENT_TELEGRAM_ID = 10_000_000  # bench_claim.populate: patient i has telegram id 10_000_000 + i
PRESSER_TELEGRAM_ID = 20_000_001  # B3's patient
FLOODER_TELEGRAM_ID = 50_000_001  # B7's user sending heavy commands
ASKER_TELEGRAM_ID = 50_000_002  # B7's other patient
B7_ASK_INTERVAL = 1.2  # the other patient's /help: within their own command budget
B7_DISPATCH_INTERVAL = 1.0  # B7's dispatcher tick: prompt lateness includes up to one interval
B4_TARGET = 0.6
B4_TELEGRAM_ID = 30_000_000  # B4's patients (the real bot)
B4_BARE_TELEGRAM_ID = 40_000_000  # B4's chats for the bare reference


@dataclass(frozen=True)
class Sizes:
    """How big each bar's run is: full by default, shorter with --quick, tiny in the tests
    that check each bar still sees the replies it measures (tests/test_bench.py)."""

    fanout_seconds: int = B2_SECONDS
    b4_updates: int = B4_UPDATES
    b4_warm_up: int = B4_WARM_UP
    b4_rounds: int = B4_ROUNDS
    b6_therapists: int = B6_THERAPISTS
    b7_heavy: int = 60  # heavy commands sent at once by one user
    b7_seconds: float = 15.0  # how long the other patient keeps asking
    b7_due: int = 60  # prompts falling due during the flood
    b8_messages: int = 3_000
    b8_rounds: int = 6  # of 500 (the dispatcher's batch), interleaved with the bare loop


QUICK = Sizes(
    fanout_seconds=B2_QUICK_SECONDS,
    b6_therapists=B6_QUICK_THERAPISTS,
    b8_messages=1_500,
    b8_rounds=3,
)


@dataclass(frozen=True)
class Options:
    patients: int = 100_000
    database_url: str | None = None
    quick: bool = False
    only: tuple[str, ...] = BARS
    json: bool = False
    sizes: Sizes = field(default_factory=Sizes)
    programmes: bool = False  # every due patient has a 5-exercise programme (issue 17)


def progress(message: str) -> None:
    """What the run is doing, on stderr (stdout carries only the results)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Shared set-up: scratch databases, the populated database, the fake, the bots
# ---------------------------------------------------------------------------------------------


def load_bench_script(name: str) -> ModuleType | None:
    """``tests/bench/<name>.py`` as a module (they are scripts, not a package), or None."""
    path = REPO_ROOT / "tests" / "bench" / f"{name}.py"
    if not path.exists():
        return None
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def populate(engine: AsyncEngine, patients: int, due: int, now: datetime) -> None:
    """``patients`` consented patients with one daily schedule each, the first ``due`` of them
    due at ``now`` (tests/bench/bench_claim.py's ``populate``, statistics gathered)."""
    bench_claim = load_bench_script("bench_claim")
    if bench_claim is None:
        raise RuntimeError("tests/bench/bench_claim.py is missing (it populates B1, B2, B5)")
    await bench_claim.populate(engine, patients, due, 0, now)


def normalize_url(url: str) -> str:
    if url.startswith(("postgres://", "postgresql://")):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    return url


@dataclass(frozen=True)
class Population:
    """The database of ``--patients`` patients (bench_claim.populate), ``due`` of them due."""

    url: str
    now: datetime
    due: int

    @property
    def due_chats(self) -> list[int]:
        return [PATIENT_TELEGRAM_ID + i for i in range(1, self.due + 1)]


class Bench:
    """What the bars share: the options, scratch databases, and the populated database."""

    def __init__(self, options: Options, stack: AsyncExitStack, tmpdir: Path) -> None:
        self.options = options
        self.stack = stack
        self.tmpdir = tmpdir
        self._population: Population | None = None

    @property
    def backend(self) -> str:
        return "postgresql" if self.options.database_url else "sqlite"

    @asynccontextmanager
    async def database(self, tag: str) -> AsyncIterator[str]:
        """A fresh, migrated database's URL: a SQLite file in a temporary directory, or a
        PostgreSQL database created next to ``--database-url`` and dropped afterwards."""
        if self.options.database_url is None:
            url = f"sqlite+aiosqlite:///{self.tmpdir / tag}.sqlite3"
            yield await self._migrated(url)
            return
        base = normalize_url(self.options.database_url)
        name = f"paincoach_bench_{os.getpid()}_{tag}_{secrets.token_hex(2)}"
        admin = await self._admin_engine(base)
        try:
            async with admin.connect() as conn:
                await conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
            try:
                url = make_url(base).set(database=name).render_as_string(hide_password=False)
                yield await self._migrated(url)
            finally:
                async with admin.connect() as conn:
                    await conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.dispose()

    @staticmethod
    async def _admin_engine(base: str) -> AsyncEngine:
        """An AUTOCOMMIT engine on the given database, or on ``postgres`` if that one is absent."""
        admin = create_engine(base, isolation_level="AUTOCOMMIT")
        try:
            async with admin.connect():
                return admin
        except Exception:  # noqa: BLE001 - e.g. the named database does not exist yet
            await admin.dispose()
            fallback = make_url(base).set(database="postgres")
            return create_engine(
                fallback.render_as_string(hide_password=False), isolation_level="AUTOCOMMIT"
            )

    @staticmethod
    async def _migrated(url: str) -> str:
        engine = create_engine(url)
        try:
            await upgrade(engine)
        finally:
            await engine.dispose()
        return url

    async def population(self) -> Population:
        """``--patients`` consented patients with one schedule each, up to 5,000 of them due
        now (bench_claim.populate; statistics gathered). Built once, shared by B5 and B1."""
        if self._population is None:
            url = await self.stack.enter_async_context(self.database("patients"))
            now = datetime.now(UTC).replace(microsecond=0)
            due = min(B1_DUE, self.options.patients)
            progress(f"populating {self.options.patients:,} patients ({due:,} due) ...")
            engine = create_engine(url)
            try:
                t0 = time.perf_counter()
                await populate(engine, self.options.patients, due, now)
                if self.options.programmes:
                    await add_programmes(engine, due, now)
                progress(f"populated in {time.perf_counter() - t0:.1f} s")
            finally:
                await engine.dispose()
            self._population = Population(url, now, due)
        return self._population


BENCH_STARTER = "knee_hip"


async def add_programmes(engine: AsyncEngine, due: int, now: datetime) -> None:
    """A starter programme (5 exercises) for each due patient: the prompt then names them."""
    from bot.db.models import Programme, ProgrammeExercise
    from bot.services.exercises import starter_steps

    chats = [PATIENT_TELEGRAM_ID + i for i in range(1, due + 1)]
    async with engine.begin() as conn:
        ids = list(await conn.scalars(select(User.id).where(User.telegram_id.in_(chats))))
        await conn.execute(
            insert(Programme),
            [
                {
                    "user_id": uid,
                    "origin": "starter",
                    "starter": BENCH_STARTER,
                    "auto_progress": False,
                    "created_at": now,
                    "updated_at": now,
                }
                for uid in ids
            ],
        )
        programme_of = dict(
            (await conn.execute(select(Programme.user_id, Programme.id))).tuples().all()
        )
        rows = [
            {
                "programme_id": programme_of[uid],
                "user_id": uid,
                "position": n,
                "exercise": step.key,
                "level": step.level,
                "sets": step.sets,
                "amount": step.amount,
            }
            for uid in ids
            for n, step in enumerate(starter_steps(BENCH_STARTER))
        ]
        await conn.execute(insert(ProgrammeExercise), rows)


def bench_settings(fake: FakeTelegram, database_url: str, **overrides: Any) -> Settings:
    return load_settings(
        telegram_bot_token=BENCH_TOKEN,
        telegram_api_base_url=fake.api_base_url,
        database_url=database_url,
        **overrides,
    )


def deliver_to(app: Application) -> Callable[[dict], Any]:
    """The fake's ``deliver``: hand an update to ``app.process_update`` (awaited)."""

    async def deliver(data: dict) -> None:
        await app.process_update(Update.de_json(data, app.bot))

    return deliver


async def gather_limited(calls: Sequence[Callable[[], Any]], concurrency: int) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def one(call: Callable[[], Any]) -> None:
        async with gate:
            await call()

    await asyncio.gather(*(one(c) for c in calls))


async def bare_send_loop(bot: ExtBot, chats: Sequence[int], text: str) -> float:
    """The reference of B1 and B8: the request the dispatcher makes for a prompt (its text,
    HTML, the keypad with a made-up check-in id; ``send_message_id``, as the dispatcher sends
    it) to each chat, SEND_CONCURRENCY at a time, and nothing else; seconds for all. So the
    ratio is what the pipeline adds (claim, rendering, limiter, delivery records), not the
    size of the message: against a text-only loop the keypad alone cost a fifth."""
    t0 = time.perf_counter()
    calls = [
        lambda c=c: send_message_id(bot, c, text, reference_rows(c), parse_mode=ParseMode.HTML)
        for c in chats
    ]
    await gather_limited(calls, SEND_CONCURRENCY)
    return time.perf_counter() - t0


def reference_rows(chat_id: int) -> list[list[tuple[str, str]]]:
    """The prompt's buttons for the bare loop: the same labels and lengths, ``ref:`` for
    ``ci:`` (so ``is_prompt`` never counts the reference's messages as the bot's prompts)."""
    return [
        [(label, "ref:" + data.removeprefix("ci:")) for label, data in row]
        for row in prompt_rows(chat_id, "da")
    ]


def callback_data_of(params: dict[str, Any]) -> list[str]:
    markup = params.get("reply_markup") or {}
    return [
        button.get("callback_data") or ""
        for row in markup.get("inline_keyboard") or []
        for button in row
    ]


def is_prompt(params: dict[str, Any]) -> bool:
    """A reminder prompt (its Skip button carries ``ci:<id>:skip``)."""
    return any(
        data.startswith("ci:") and data.endswith(":skip") for data in callback_data_of(params)
    )


def prompts_per_chat(fake: FakeTelegram) -> Counter[int]:
    return Counter(
        params["chat_id"]
        for method, params in fake.calls
        if method == "sendMessage" and is_prompt(params)
    )


async def count_checkins(engine: AsyncEngine, status: str) -> int:
    async with engine.connect() as conn:
        return await conn.scalar(
            select(func.count()).select_from(CheckIn).where(CheckIn.status == status)
        )


def patient_row(telegram_id: int, since: datetime) -> dict[str, Any]:
    """A users row: consented and set up (English, UTC) since ``since``."""
    return {
        "telegram_id": telegram_id,
        "language": "en",
        "timezone": "UTC",
        "consent_at": since,
        "consent_version": "1",
        "setup_done_at": since,
        "active": True,
        "created_at": since,
        "updated_at": since,
    }


async def add_patients_with_started_checkins(
    engine: AsyncEngine, telegram_ids: Sequence[int], per_patient: int, now: datetime
) -> dict[int, list[int]]:
    """Consented, set-up patients (English, UTC, no schedule), each with ``per_patient``
    check-ins in status ``started`` (waiting for the pain score before); returns telegram id
    -> check-in ids, oldest first."""
    users, checkins = User.__table__, CheckIn.__table__
    long_ago = now - timedelta(days=30)
    async with engine.begin() as conn:
        user_rows = (
            await conn.execute(
                insert(users).returning(
                    users.c.id, users.c.telegram_id, sort_by_parameter_order=True
                ),
                [patient_row(tg, long_ago) for tg in telegram_ids],
            )
        ).all()
        telegram_of = {row.id: row.telegram_id for row in user_rows}
        checkin_rows = (
            await conn.execute(
                insert(checkins).returning(
                    checkins.c.id, checkins.c.user_id, sort_by_parameter_order=True
                ),
                [
                    {
                        "user_id": user_id,
                        "kind": "log",
                        "status": reminders.Status.STARTED,
                        "started_at": now,
                        "expires_at": now + timedelta(hours=12),
                        "send_attempts": 0,
                        "flagged": False,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for user_id in telegram_of
                    for _ in range(per_patient)
                ],
            )
        ).all()
    out: dict[int, list[int]] = {tg: [] for tg in telegram_ids}
    for row in checkin_rows:
        out[telegram_of[row.user_id]].append(row.id)
    return out


async def send_score_keypad(bot: ExtBot, chat_id: int, data_prefix: str) -> int:
    """The "pain before" question with its 0-10 keypad, as the bot shows it after Start;
    returns its message id."""
    message = await bot.send_message(
        chat_id,
        ask_score_text("en", "checkin.ask_before"),
        reply_markup=keyboard(score_keypad(data_prefix)),
    )
    return message.message_id


# ---------------------------------------------------------------------------------------------
# B1: the fan-out pipeline, limiter off, against a bare send loop
# ---------------------------------------------------------------------------------------------


async def bar_b1(bench: Bench) -> BarResult:
    """B1: prompts per second of one ``Dispatcher.tick()`` (claim, render, send, record) with
    5,000 due among ``--patients``, batch 5,000, the rate limiter off (the bot exactly as
    ``build_application`` makes it with SEND_RATE_PER_SECOND=0), against messages per second
    of a bare send loop (``bare_send_loop``: plain ExtBot, the same chats and prompt, the same
    concurrency of 8), run once before and once after the tick (their mean is the reference).
    """
    pop = await bench.population()
    chats = pop.due_chats
    text = prompt_text("da")
    if bench.options.programmes:  # the bare loop sends the same, longer text
        from bot.handlers.plan import prompt_programme
        from bot.services.exercises import starter_steps

        text = prompt_text("da", programme=prompt_programme(starter_steps(BENCH_STARTER), "da"))
    engine = create_engine(pop.url)
    try:
        async with FakeTelegram(token=BENCH_TOKEN) as fake:
            for chat in chats:
                fake.user(chat)
            settings = bench_settings(fake, pop.url, send_rate_per_second=0)
            app = build_application(settings, clock=ManualClock(pop.now), engine=engine)
            await app.initialize()
            try:
                async with ExtBot(BENCH_TOKEN, base_url=settings.bot_api_url) as bare:
                    await bare_send_loop(bare, chats[:50], text)  # warm both connection pools
                    await bare_send_loop(app.bot, chats[:50], text)
                    progress(f"B1: bare send loop x {len(chats):,} ...")
                    bare_before = await bare_send_loop(bare, chats, text)
                    dispatcher = Dispatcher(
                        app.bot, app.bot_data.sessions, settings, app.bot_data.clock, batch=pop.due
                    )
                    progress(f"B1: one dispatcher tick with {pop.due:,} due ...")
                    t0 = time.perf_counter()
                    report = await dispatcher.tick()
                    tick_s = time.perf_counter() - t0
                    progress("B1: bare send loop again ...")
                    bare_after = await bare_send_loop(bare, chats, text)
            finally:
                await app.shutdown()
            per_chat = prompts_per_chat(fake)
        prompted_rows = await count_checkins(engine, reminders.Status.PROMPTED)
    finally:
        await engine.dispose()

    pipeline = report.sent / tick_s
    reference = 2 * len(chats) / (bare_before + bare_after)
    ratio = pipeline / reference
    exactly_once = sum(1 for c in chats if per_chat[c] == 1)
    complete = report.sent == pop.due == exactly_once == prompted_rows
    return BarResult(
        "B1",
        rounded(ratio),
        "x bare",
        rounded(reference, 1),
        ">= 0.5 x a bare send loop",
        ratio >= 0.5 and complete,
        reference_unit="msg/s",
        note="" if complete else "not every due patient was prompted exactly once",
        details={
            "pipeline_prompts_per_s": rounded(pipeline, 1),
            "tick_s": rounded(tick_s),
            "bare_s": [rounded(bare_before), rounded(bare_after)],
            "due": pop.due,
            "patients": bench.options.patients,
            "sent": report.sent,
            "prompted_exactly_once": exactly_once,
            "prompted_rows": prompted_rows,
        },
    )


# ---------------------------------------------------------------------------------------------
# B2 and B3: a fan-out under the 30/s limit, with a patient pressing buttons meanwhile
# ---------------------------------------------------------------------------------------------


@dataclass
class TickSpan:
    start: float
    end: float
    sent: int


@dataclass
class Press:
    checkin_id: int
    message_id: int
    at: float
    query_id: str | None = None


@dataclass
class Send:
    at: float
    chat_id: int
    prompt: bool
    reply_to: int | None  # the check-in whose "pain before" this message answers (B3)
    method: str = "sendMessage"  # or editMessageText: the keypad turned into the next question


@dataclass
class FanoutRun:
    """What one B2/B3 session observed (times are ``time.monotonic()``)."""

    seconds: int
    due_chats: list[int]
    ticks: list[TickSpan]
    sends: list[Send]  # accepted sendMessage calls, in arrival order
    answers: dict[str, float]  # callback query id -> answerCallbackQuery arrival
    presses: list[Press]
    too_many_requests: int
    max_per_bucket: int
    prompted_rows: int
    finished: bool
    errors: list[str] = field(default_factory=list)


def record_ticks(dispatcher: Dispatcher) -> list[TickSpan]:
    """Wrap this dispatcher's ``tick`` (on the instance only) to note when each one ran."""
    spans: list[TickSpan] = []
    original = dispatcher.tick

    async def tick() -> Any:
        start = time.monotonic()
        report = await original()
        spans.append(TickSpan(start, time.monotonic(), report.sent))
        return report

    dispatcher.tick = tick  # type: ignore[method-assign]
    return spans


async def press_every(
    user: FakeUser, keypads: Sequence[tuple[int, int]], interval: float, stop: asyncio.Event
) -> list[Press]:
    """Every ``interval`` seconds press a score on the next (check-in id, message id) keypad
    (``ci:<id>:b:<n>``, the pain before), each press in its own task so that a slow answer
    never delays the next one."""
    presses: list[Press] = []
    tasks: list[asyncio.Task[None]] = []

    async def press(p: Press, score: int) -> None:
        p.query_id = await user.press(str(score), message_id=p.message_id)

    next_at = time.monotonic()
    for n, (checkin_id, message_id) in enumerate(keypads):
        if stop.is_set():
            break
        p = Press(checkin_id, message_id, time.monotonic())
        presses.append(p)
        tasks.append(asyncio.create_task(press(p, n % 11)))
        next_at += interval
        try:
            await asyncio.wait_for(stop.wait(), max(0.0, next_at - time.monotonic()))
        except TimeoutError:
            pass
    await asyncio.gather(*tasks)
    return presses


async def run_fanout(bench: Bench) -> FanoutRun:
    """The B2/B3 session. ``30 x seconds + 100`` patients are due at once (1,900 for 60 s),
    the bot is built by ``build_application`` with its PriorityRateLimiter(30), and runs as
    ``python -m bot run`` would: ``post_init`` schedules the dispatcher job (every
    DISPATCH_INTERVAL_SECONDS = 5 s, batch 500, max one instance) and ``start`` starts the
    JobQueue. The fake answers 429 above 30 sends in any one-second window. Meanwhile a
    patient presses a pain-score button every 0.5 s (each press on its own ``started``
    check-in, delivered through the same Application's ``process_update``). The session
    ends when every due patient has had a prompt (or after 2 x seconds + 60 s).
    """
    seconds = bench.options.sizes.fanout_seconds
    due = RATE * seconds + 100
    deadline_s = 2 * seconds + 60
    async with bench.database("fanout") as url:
        engine = create_engine(url)
        try:
            now = datetime.now(UTC).replace(microsecond=0)
            await populate(engine, due, due, now)
            presser_checkins = (
                await add_patients_with_started_checkins(
                    engine, [PRESSER_TELEGRAM_ID], int(deadline_s / B3_PRESS_INTERVAL) + 10, now
                )
            )[PRESSER_TELEGRAM_ID]
            due_chats = [PATIENT_TELEGRAM_ID + i for i in range(1, due + 1)]
            async with FakeTelegram(token=BENCH_TOKEN) as fake:
                for chat in due_chats:
                    fake.user(chat)
                presser = fake.user(PRESSER_TELEGRAM_ID, "Pia", "en")
                # One "pain before" keypad per prepared check-in, sent before the measurement.
                async with ExtBot(BENCH_TOKEN, base_url=f"{fake.api_base_url}/bot") as setup:
                    keypads = [
                        (cid, await send_score_keypad(setup, presser.id, f"ci:{cid}:b"))
                        for cid in presser_checkins
                    ]
                fake.stats = FakeStats()  # count the fan-out only, not that set-up
                fake.rate_limit(RATE)
                settings = bench_settings(fake, url, send_rate_per_second=RATE)
                app = build_application(settings, engine=engine)
                ticks = record_ticks(app.bot_data.dispatcher)
                fake.deliver = deliver_to(app)
                await app.initialize()
                await app.post_init(app)  # schedules the dispatcher job, as `run` does
                stop = asyncio.Event()
                finished = False
                await app.start()
                try:
                    progress(f"B2: fan-out of {due:,} prompts under the {RATE}/s limit ...")
                    began = time.monotonic()
                    try:  # B3's presses start once the fan-out is under way
                        await fake.wait_for(lambda: bool(prompts_per_chat(fake)), timeout=30)
                    except TimeoutError:
                        pass  # reported by bar_b2 as "nothing was sent"
                    presses_task = asyncio.create_task(
                        press_every(presser, keypads, B3_PRESS_INTERVAL, stop)
                    )
                    while time.monotonic() - began < deadline_s:
                        if len(prompts_per_chat(fake)) >= due:
                            finished = True
                            break
                        await asyncio.sleep(0.5)
                    stop.set()
                    presses = await presses_task
                    await asyncio.sleep(1.0)  # the last reply, if still on its way
                finally:
                    await app.stop()
                    await app.shutdown()
                prompted_rows = await count_checkins(engine, reminders.Status.PROMPTED)
                run = FanoutRun(
                    seconds=seconds,
                    due_chats=due_chats,
                    ticks=ticks,
                    sends=[
                        Send(
                            r.at,
                            r.params.get("chat_id"),
                            is_prompt(r.params),
                            _answers(r.params),
                            r.method,
                        )
                        for r in fake.requests
                        if r.method in ("sendMessage", "editMessageText")
                        and r.status == 200
                        and r.at >= began
                    ],
                    answers={
                        r.params["callback_query_id"]: r.at
                        for r in fake.requests
                        if r.method == "answerCallbackQuery" and r.status == 200
                    },
                    presses=presses,
                    too_many_requests=fake.stats.too_many_requests,
                    max_per_bucket=fake.stats.max_sends_per_second,
                    prompted_rows=prompted_rows,
                    finished=finished,
                    errors=[f"{r.method}: {r.status} {r.description}" for r in fake.errors],
                )
        finally:
            await engine.dispose()
    return run


def _answers(params: dict[str, Any]) -> int | None:
    """The check-in id a reply to "pain before" belongs to (its Done button ``ci:<id>:done``)."""
    for data in callback_data_of(params):
        if data.startswith("ci:") and data.endswith(":done"):
            return int(data.split(":")[1])
    return None


def bar_b2(run: FanoutRun) -> BarResult:
    """B2: messages per second sustained over the whole fan-out (every accepted send, prompts
    and the B3 patient's replies, from the first tick's start to the last prompt's arrival,
    nothing excluded), the most sends the fake counted in any one-second bucket, its 429
    answers, and due patients with no prompt (lost) or with 2+ (duplicated) at the end."""
    messages = [s for s in run.sends if s.method == "sendMessage"]  # edits are not messages
    prompts = [s for s in messages if s.prompt]
    per_chat = Counter(s.chat_id for s in prompts)
    lost = sum(1 for chat in run.due_chats if per_chat[chat] == 0)
    duplicated = sum(1 for n in per_chat.values() if n >= 2)
    if not prompts or not run.ticks:
        return BarResult("B2", None, "msg/s", None, _B2_TARGET, False, note="nothing was sent")
    start, end = run.ticks[0].start, prompts[-1].at
    window = [s for s in messages if start <= s.at <= end]
    sustained = len(window) / (end - start)
    idle = [b.start - a.end for a, b in zip(run.ticks, run.ticks[1:], strict=False)]
    ok = (
        sustained >= 29
        and run.max_per_bucket <= RATE
        and run.too_many_requests == 0
        and lost == 0
        and duplicated == 0
    )
    note = ""
    if sustained < 29 and sum(idle) > 1:
        note = (
            f"the limiter idled {sum(idle):.1f} s between dispatcher ticks: a tick sends its "
            "batch of 500 (~17 s at 30/s), and the next one starts only at the job's next "
            "5 s interval"
        )
    return BarResult(
        "B2",
        rounded(sustained, 2),
        "msg/s",
        None,
        _B2_TARGET,
        ok,
        note=note,
        details={
            "seconds_planned": run.seconds,
            "elapsed_s": rounded(end - start, 2),
            "sends": len(window),
            "prompts": len(prompts),
            "max_sends_in_a_second_bucket": run.max_per_bucket,
            "max_sends_in_any_sliding_second": max_in_sliding_window([s.at for s in messages]),
            "too_many_requests": run.too_many_requests,
            "due": len(run.due_chats),
            "lost": lost,
            "duplicated": duplicated,
            "prompted_rows": run.prompted_rows,
            "finished": run.finished,
            "ticks": len(run.ticks),
            "idle_between_ticks_s": [rounded(i, 2) for i in idle],
            "errors": run.errors[:10],
        },
    )


_B2_TARGET = ">= 29 msg/s, <= 30 in any second, 0 x 429, 0 lost, 0 duplicated"


def bar_b3(run: FanoutRun) -> BarResult:
    """B3: p95 of the time from a pain-score press (during the B2 fan-out) to the bot's reply
    in that chat (the "go exercise" question, which arrives as the edit of the keypad message,
    ``editMessageText``, or as a new message) arriving at the fake; the time to the
    answerCallbackQuery is reported alongside. A press never answered counts as infinite."""
    replies: dict[int, float] = {}
    for s in run.sends:
        if s.reply_to is not None:
            replies.setdefault(s.reply_to, s.at)
    to_reply = [replies.get(p.checkin_id, float("inf")) - p.at for p in run.presses]
    to_answer = [run.answers.get(p.query_id or "", float("inf")) - p.at for p in run.presses]
    p95 = percentile(to_reply, 95)
    unanswered = sum(1 for x in to_reply if x == float("inf"))
    return BarResult(
        "B3",
        rounded(p95),
        "s",
        None,
        "p95 <= 1 s",
        bool(to_reply) and p95 <= 1.0,
        note="" if to_reply else "no press was made",
        details={
            "presses": len(to_reply),
            "unanswered": unanswered,
            "reply_p50_s": rounded(percentile(to_reply, 50)),
            "reply_max_s": rounded(max(to_reply, default=float("nan"))),
            "answer_callback_p95_s": rounded(percentile(to_answer, 95)),
            "slowest": [
                {"reply_s": rounded(lat), "after_tick_start_s": rounded(since)}
                for lat, since in sorted(
                    (
                        (
                            lat,
                            min(
                                (p.at - t.start for t in run.ticks if t.start <= p.at), default=None
                            )
                            or 0.0,
                        )
                        for lat, p in zip(to_reply, run.presses, strict=True)
                    ),
                    reverse=True,
                )[:5]
            ],
        },
    )


# ---------------------------------------------------------------------------------------------
# B4: the pain-score callback through the real Application, against a bare handler
# ---------------------------------------------------------------------------------------------


def bare_callback_app(fake: FakeTelegram) -> Application:
    """The B4 reference: a bare PTB Application whose only handler answers and edits."""

    async def on_press(update: Update, _context: Any) -> None:
        query = update.callback_query
        await query.answer()
        await query.edit_message_text(f"Thanks, noted: {query.data}")

    app = Application.builder().token(BENCH_TOKEN).base_url(f"{fake.api_base_url}/bot").build()
    app.add_handler(CallbackQueryHandler(on_press))
    return app


async def press_all(fake: FakeTelegram, app: Application, users: Sequence[FakeUser]) -> float:
    """Each user presses "5" on their newest keypad, one update after another, as the
    Application processes them (``concurrent_updates`` is not set); seconds for all."""
    fake.deliver = deliver_to(app)
    t0 = time.perf_counter()
    for user in users:
        await user.press("5")
    return time.perf_counter() - t0


async def bar_b4(bench: Bench) -> BarResult:
    """B4: pain-score callbacks per second through the real Application (answer, store the
    score, drop the keypad, ask the next question: 3 API calls and one transaction), each for
    its own patient with a ``started`` check-in, against a bare PTB Application whose
    CallbackQueryHandler answers and edits the message (2 API calls), in 5 interleaved
    rounds of 200 (the machine's load drifts; both sides see the same drift). Updates are
    processed one after another, as the Application does by default. The rate limiter is
    off: B4 is about the handler's cost, not Telegram's 30/s (B2)."""
    sizes = bench.options.sizes
    n, warm, rounds = sizes.b4_updates, sizes.b4_warm_up, sizes.b4_rounds
    chunk = n // rounds
    async with bench.database("callbacks") as url:
        engine = create_engine(url)
        try:
            now = datetime.now(UTC)
            ours_ids = [B4_TELEGRAM_ID + i for i in range(1, n + warm + 1)]
            checkins = await add_patients_with_started_checkins(engine, ours_ids, 1, now)
            async with FakeTelegram(token=BENCH_TOKEN) as fake:
                settings = bench_settings(fake, url, send_rate_per_second=0)
                app = build_application(settings, engine=engine)
                app.bot_data.run_jobs = False
                bare = bare_callback_app(fake)
                await app.initialize()
                await bare.initialize()
                try:
                    progress(f"B4: preparing {2 * (n + warm):,} keypads ...")
                    ours = [fake.user(tg, "Pat", "en") for tg in ours_ids]
                    refs = [
                        fake.user(B4_BARE_TELEGRAM_ID + i, "Ref", "en")
                        for i in range(1, n + warm + 1)
                    ]
                    await gather_limited(
                        [
                            lambda u=u: send_score_keypad(
                                app.bot, u.id, f"ci:{checkins[u.id][0]}:b"
                            )
                            for u in ours
                        ]
                        + [lambda u=u: send_score_keypad(bare.bot, u.id, "bare") for u in refs],
                        SEND_CONCURRENCY,
                    )
                    progress(f"B4: {n:,} callbacks each, in {rounds} interleaved rounds ...")
                    await press_all(fake, bare, refs[:warm])
                    await press_all(fake, app, ours[:warm])
                    bare_s, ours_s = [], []
                    for r in range(rounds):
                        part = slice(warm + r * chunk, warm + (r + 1) * chunk)
                        if r % 2:  # alternate which goes first
                            ours_s.append(await press_all(fake, app, ours[part]))
                            bare_s.append(await press_all(fake, bare, refs[part]))
                        else:
                            bare_s.append(await press_all(fake, bare, refs[part]))
                            ours_s.append(await press_all(fake, app, ours[part]))
                    errors = [f"{r.method}: {r.status} {r.description}" for r in fake.errors]
                    unanswered = len(fake.unanswered_callback_queries)
                finally:
                    await bare.shutdown()
                    await app.shutdown()
            async with engine.connect() as conn:
                stored = await conn.scalar(
                    select(func.count())
                    .select_from(CheckIn)
                    .where(CheckIn.status == reminders.Status.EXERCISING, CheckIn.pain_before == 5)
                )
        finally:
            await engine.dispose()
    pressed = chunk * rounds
    ours_rate = pressed / sum(ours_s)
    reference = pressed / sum(bare_s)
    ratio = ours_rate / reference
    complete = stored == warm + pressed and unanswered == 0 and not errors
    return BarResult(
        "B4",
        rounded(ratio),
        "x bare",
        rounded(reference, 1),
        f">= {B4_TARGET} x a bare callback handler",
        ratio >= B4_TARGET and complete,
        reference_unit="updates/s",
        note="" if complete else "not every press was stored and answered without error",
        details={
            "bot_updates_per_s": rounded(ours_rate, 1),
            "bot_per_round": [rounded(chunk / t, 1) for t in ours_s],
            "bare_per_round": [rounded(chunk / t, 1) for t in bare_s],
            "updates": pressed,
            "stored": stored,
            "unanswered": unanswered,
            "errors": errors[:10],
        },
    )


# ---------------------------------------------------------------------------------------------
# B5: start-up, memory and the due-claim query at --patients
# ---------------------------------------------------------------------------------------------


async def bar_b5(bench: Bench) -> BarResult:
    """B5 on the populated database (``--patients``, 100,000 by default):

    - start-up: wall time from spawning a fresh ``python -c`` to the end of its first
      dispatcher tick (nothing due), doing what ``python -m bot run`` does before polling:
      imports, migrations (a no-op at head), locales, ``build_application``, ``initialize``,
      ``post_init``, then one tick (see ``bot.bench_support.startup_probe``);
    - RSS: that process's VmRSS right after the tick;
    - due-claim query: median of 9 runs of ``reminders.fetch_due`` (limit 1,000, with 1,000+
      schedules due), each in its own transaction, rolled back (as bench_claim.py does).
    """
    pop = await bench.population()
    engine = create_engine(pop.url)
    sessions = make_session_factory(engine)
    times, rows = [], 0
    try:
        for _ in range(B5_CLAIM_RUNS):
            async with sessions() as s, s.begin():
                t0 = time.perf_counter()
                rows = len(await reminders.fetch_due(s, pop.now, B5_CLAIM_LIMIT))
                times.append(time.perf_counter() - t0)
                await s.rollback()
    finally:
        await engine.dispose()
    claim_ms = statistics.median(times) * 1000

    idle_now = pop.now - timedelta(minutes=10)  # before every populated slot: nothing due
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    )
    async with FakeTelegram(token=BENCH_TOKEN) as fake:
        progress("B5: start-up in a fresh process ...")
        t0 = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            PROBE,
            pop.url,
            fake.api_base_url,
            idle_now.isoformat(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=REPO_ROOT,
            env=env,
        )
        line = await proc.stdout.readline()
        startup_s = time.perf_counter() - t0
        _, err = await proc.communicate()
    if not line:
        return BarResult(
            "B5",
            None,
            "s",
            None,
            _B5_TARGET,
            False,
            note="the start-up probe failed: " + err.decode(errors="replace")[-500:],
        )
    probe = json.loads(line)
    rss = probe["rss_mb"]
    idle_tick = probe["first_tick_sent"] == 0
    ok = startup_s <= 5 and rss <= 200 and claim_ms <= 20 and idle_tick
    return BarResult(
        "B5",
        rounded(startup_s, 2),
        "s start-up",
        None,
        _B5_TARGET,
        ok,
        note="" if idle_tick else "the first tick was not idle",
        details={
            "patients": bench.options.patients,
            "backend": bench.backend,
            "startup_s": rounded(startup_s, 2),
            "rss_mb": rounded(rss, 1),
            "peak_rss_mb": rounded(probe["peak_rss_mb"], 1),
            "due_claim_median_ms": rounded(claim_ms, 2),
            "due_claim_min_ms": rounded(min(times) * 1000, 2),
            "due_claim_rows": rows,
            "startup_steps_s": {k: rounded(v) for k, v in probe["steps_s"].items()},
            "interpreter_start_s": rounded(startup_s - probe["in_process_s"]),
        },
    )


_B5_TARGET = "start-up <= 5 s, RSS <= 200 MB, due-claim <= 20 ms"


# ---------------------------------------------------------------------------------------------
# B6: weekly digests
# ---------------------------------------------------------------------------------------------


def digest_benchmark() -> Callable[..., Any] | None:
    """The reusable digest measurement of ``tests/bench/bench_digest.py``, once it exists:
    ``await measure(engine, therapists=, patients_each=, days=7) -> seconds`` for building
    the data set's every digest. The one place to adapt when that script lands."""
    module = load_bench_script("bench_digest")
    return getattr(module, "measure", None) if module is not None else None


async def bar_b6(bench: Bench) -> BarResult:
    """B6: seconds to compute every weekly digest of 1,000 therapists x 20 patients with a week
    of check-ins (200 therapists with --quick, scaled linearly to 1,000 for the verdict)."""
    therapists = bench.options.sizes.b6_therapists
    target = f"<= 30 s for {B6_THERAPISTS:,} x {B6_PATIENTS_EACH}"
    measure = digest_benchmark()
    if measure is None:
        return BarResult(
            "B6",
            None,
            "s",
            None,
            target,
            False,
            note="digest not built yet: tests/bench/bench_digest.py has no reusable "
            "measure(engine, therapists=, patients_each=, days=) to call",
        )
    async with bench.database("digest") as url:
        engine = create_engine(url)
        try:
            progress(f"B6: digests for {therapists:,} therapists x {B6_PATIENTS_EACH} ...")
            seconds = await measure(
                engine, therapists=therapists, patients_each=B6_PATIENTS_EACH, days=7
            )
        finally:
            await engine.dispose()
    scaled = seconds * B6_THERAPISTS / therapists
    return BarResult(
        "B6",
        rounded(scaled, 2),
        "s",
        None,
        target,
        scaled <= 30,
        note="" if therapists == B6_THERAPISTS else f"measured {therapists} therapists, scaled",
        details={"therapists": therapists, "patients_each": B6_PATIENTS_EACH, "seconds": seconds},
    )


# ---------------------------------------------------------------------------------------------
# B7: fairness, one user flooding heavy commands while another asks and prompts fall due
# ---------------------------------------------------------------------------------------------


async def add_history(engine: AsyncEngine, telegram_id: int, days: int, now: datetime) -> None:
    """A consented patient (English, UTC) with a completed session on each of the last
    ``days`` days, so that /progress draws a chart and /export builds a PDF (the heavy work)."""
    users, checkins = User.__table__, CheckIn.__table__
    long_ago = now - timedelta(days=days + 30)
    async with engine.begin() as conn:
        user_id = (
            await conn.execute(
                insert(users).returning(users.c.id),
                patient_row(telegram_id, long_ago),
            )
        ).scalar_one()
        await conn.execute(
            insert(checkins),
            [
                {
                    "user_id": user_id,
                    "kind": "log",
                    "status": reminders.Status.COMPLETED,
                    "started_at": at,
                    "done_at": at + timedelta(minutes=30),
                    "completed_at": at + timedelta(minutes=31),
                    "pain_before": 3 + d % 4,
                    "pain_after": 2 + d % 5,
                    "effort": "moderate",
                    "send_attempts": 0,
                    "flagged": False,
                    "created_at": at,
                    "updated_at": at,
                }
                for d in range(1, days + 1)
                for at in [now - timedelta(days=d)]
            ],
        )


def deliver_via_queue(app: Application) -> Callable[[dict], Any]:
    """The fake's ``deliver`` as production has it: into the update queue, through the
    Application's update processor (bot/fairness.py), not straight to process_update."""

    async def deliver(data: dict) -> None:
        await app.update_queue.put(Update.de_json(data, app.bot))

    return deliver


async def bar_b7(bench: Bench) -> BarResult:
    """B7: one user sends ``b7_heavy`` (60) heavy commands at once (/export and /progress in
    turn: PDF, CSV and charts) while another patient sends /help every 1.2 s for
    ``b7_seconds`` and ``b7_due`` prompts fall due 2 s into the flood. The bot runs as `run`
    starts it (update processor, 30/s limiter, dispatcher job every 1 s); updates go through
    the update queue. Value: the other patient's reply p95 (send to the reply's arrival at
    the fake); details: prompt lateness (arrival minus due instant: it includes up to one
    dispatcher interval), the flood's replies, and how many commands the budget dropped."""
    sizes = bench.options.sizes
    async with bench.database("fairness") as url:
        engine = create_engine(url)
        try:
            now = datetime.now(UTC).replace(microsecond=0)
            # populate first: it numbers its users from 1.
            await populate(engine, sizes.b7_due, sizes.b7_due, now + timedelta(days=1))
            await add_history(engine, FLOODER_TELEGRAM_ID, 28, now)
            await add_history(engine, ASKER_TELEGRAM_ID, 3, now)
            due_chats = [PATIENT_TELEGRAM_ID + i for i in range(1, sizes.b7_due + 1)]
            async with FakeTelegram(token=BENCH_TOKEN) as fake:
                for chat in due_chats:
                    fake.user(chat)
                flooder = fake.user(FLOODER_TELEGRAM_ID, "Flo", "en")
                asker = fake.user(ASKER_TELEGRAM_ID, "Ask", "en")
                settings = bench_settings(
                    fake,
                    url,
                    send_rate_per_second=RATE,
                    dispatch_interval_seconds=B7_DISPATCH_INTERVAL,
                )
                app = build_application(settings, engine=engine)
                fake.deliver = deliver_via_queue(app)
                await app.initialize()
                await app.post_init(app)
                await app.start()
                asks: list[tuple[float, int]] = []  # (sent at, replies seen before it)
                try:
                    progress(f"B7: {sizes.b7_heavy} heavy commands from one user ...")
                    # The prompts fall due 2 s into the flood.
                    due_at = datetime.now(UTC) + timedelta(seconds=2)
                    due_mono = time.monotonic() + 2
                    async with engine.begin() as conn:
                        await conn.execute(update(Schedule).values(next_due_at=due_at))
                    for i in range(sizes.b7_heavy):
                        await flooder.send("/export" if i % 2 else "/progress")
                    began = time.monotonic()
                    while time.monotonic() - began < sizes.b7_seconds:
                        asks.append((time.monotonic(), len(asker.messages)))
                        await asker.send("/help")
                        await asyncio.sleep(B7_ASK_INTERVAL)
                    try:
                        await fake.wait_for(
                            lambda: (
                                len(asker.messages) >= len(asks)
                                and all(fake.chat_messages(c) for c in due_chats)
                            ),
                            timeout=30,
                        )
                    except TimeoutError:
                        pass  # counted below as unanswered / not prompted
                    await fake.wait_for(
                        lambda: (
                            app.update_queue.qsize() == 0
                            and app.update_processor.current_concurrent_updates == 0
                        ),
                        timeout=60,
                    )
                finally:
                    await app.stop()
                    await app.shutdown()
                replies = [
                    r.at
                    for r in fake.requests
                    if r.method == "sendMessage"
                    and r.status == 200
                    and r.params.get("chat_id") == ASKER_TELEGRAM_ID
                ]
                prompt_at = {
                    r.params["chat_id"]: r.at
                    for r in fake.requests
                    if r.method == "sendMessage" and r.status == 200 and is_prompt(r.params)
                }
                flood_replies = len(flooder.messages)
                dropped = app.update_processor.dropped
                slow_down = t("fairness.slow_down", "en")
                slow_downs = sum(1 for m in flooder.messages if m.text == slow_down)
        finally:
            await engine.dispose()
    # The n-th /help is answered by the n-th reply (one user's updates are handled in order).
    to_reply = [
        (replies[n] - at) if n < len(replies) else float("inf")
        for n, (at, _seen) in enumerate(asks)
    ]
    late = [prompt_at.get(c, float("inf")) - due_mono for c in due_chats]
    p95 = percentile(to_reply, 95)
    late_max = max(late, default=float("inf"))
    ok = bool(to_reply) and p95 <= 1.0 and late_max <= 5.0
    return BarResult(
        "B7",
        rounded(p95),
        "s",
        None,
        "other patient's reply p95 <= 1 s; prompts <= 5 s late",
        ok,
        note="" if to_reply else "the other patient asked nothing",
        details={
            "heavy_commands": sizes.b7_heavy,
            "asks": len(to_reply),
            "unanswered": sum(1 for x in to_reply if x == float("inf")),
            "reply_p50_s": rounded(percentile(to_reply, 50)),
            "reply_max_s": rounded(max(to_reply, default=float("nan"))),
            "prompts_due": len(due_chats),
            "prompts_not_sent": sum(1 for x in late if x == float("inf")),
            "prompt_late_p95_s": rounded(percentile(late, 95)),
            "prompt_late_max_s": rounded(late_max),
            "dispatch_interval_s": B7_DISPATCH_INTERVAL,
            "flood_messages_received": flood_replies,
            "flood_commands_dropped": dropped,
            "slow_down_messages": slow_downs,
        },
    )


# ---------------------------------------------------------------------------------------------
# B8: paid broadcast, the fan-out with the limit raised to 1,000/s, against a bare send loop
# ---------------------------------------------------------------------------------------------


async def bar_b8(bench: Bench) -> BarResult:
    """B8: prompts per second of the fan-out with ``b8_messages`` due, the bot built with
    ALLOW_PAID_BROADCAST=true and SEND_RATE_PER_SECOND=1000 (the PriorityRateLimiter on, every
    prompt sent with allow_paid_broadcast), against a bare ``send_message`` loop (plain
    ExtBot, no limiter, the same text, 8 at a time), in ``b8_rounds`` interleaved rounds (a
    one-round ``Dispatcher.tick`` of a batch, then as many bare sends, the order alternating):
    the machine's speed drifts by a fifth within a minute, and both sides see the same drift."""
    sizes = bench.options.sizes
    rounds = sizes.b8_rounds
    chunk = sizes.b8_messages // rounds
    n = chunk * rounds
    text = prompt_text("da")
    async with bench.database("paid") as url:
        engine = create_engine(url)
        try:
            now = datetime.now(UTC).replace(microsecond=0)
            await populate(engine, n, n, now)
            chats = [PATIENT_TELEGRAM_ID + i for i in range(1, n + 1)]
            async with FakeTelegram(token=BENCH_TOKEN) as fake:
                for chat in chats:
                    fake.user(chat)
                settings = bench_settings(
                    fake, url, send_rate_per_second=1000, allow_paid_broadcast=True
                )
                app = build_application(settings, clock=ManualClock(now), engine=engine)
                await app.initialize()
                report = TickReport()
                bare_s, tick_s, sent_per_round = [], [], []
                try:
                    async with ExtBot(BENCH_TOKEN, base_url=settings.bot_api_url) as bare:
                        await bare_send_loop(bare, chats[:50], text)  # warm both pools
                        await bare_send_loop(app.bot, chats[:50], text)
                        dispatcher = Dispatcher(
                            app.bot,
                            app.bot_data.sessions,
                            settings,
                            app.bot_data.clock,
                            batch=chunk,
                        )

                        async def tick() -> None:
                            t0 = time.perf_counter()
                            part = await dispatcher.tick(rounds=1)
                            tick_s.append(time.perf_counter() - t0)
                            sent_per_round.append(part.sent)
                            report.sent += part.sent
                            report.failed += part.failed + part.blocked

                        progress(
                            f"B8: {n:,} paid broadcasts and {n:,} bare sends in {rounds} rounds ..."
                        )
                        for r in range(rounds):
                            part = chats[r * chunk : (r + 1) * chunk]
                            if r % 2:
                                await tick()
                                bare_s.append(await bare_send_loop(bare, part, text))
                            else:
                                bare_s.append(await bare_send_loop(bare, part, text))
                                await tick()
                finally:
                    await app.shutdown()
                paid = [
                    r.params["chat_id"]
                    for r in fake.requests
                    if r.method == "sendMessage"
                    and r.status == 200
                    and r.params.get("allow_paid_broadcast")
                    and is_prompt(r.params)
                ]
        finally:
            await engine.dispose()
    pipeline = report.sent / sum(tick_s) if tick_s else 0.0
    reference = n / sum(bare_s)
    ratio = pipeline / reference
    per_chat = Counter(paid)
    complete = report.sent == n and len(per_chat) == n and max(per_chat.values(), default=0) == 1
    return BarResult(
        "B8",
        rounded(ratio),
        "x bare",
        rounded(reference, 1),
        ">= 0.8 x a bare send loop",
        ratio >= 0.8 and complete,
        reference_unit="msg/s",
        note="" if complete else "not every prompt went out once as a paid broadcast",
        details={
            "pipeline_prompts_per_s": rounded(pipeline, 1),
            "sent_per_round": sent_per_round,
            "tick_per_round_s": [rounded(t) for t in tick_s],
            "bare_per_round_s": [rounded(t) for t in bare_s],
            "due": n,
            "sent": report.sent,
            "failed": report.failed,
            "paid_broadcast_prompts": len(paid),
        },
    )


# ---------------------------------------------------------------------------------------------
# The run and its report
# ---------------------------------------------------------------------------------------------


async def run(options: Options) -> list[BarResult]:
    """Every selected bar, in an order that lets them share one populated database: B5 reads
    the due rows that B1's tick then claims. Each result notes the machine's 1-minute load
    average when it finished (other work on the machine shows up in every figure)."""
    wanted = set(options.only)
    results: dict[str, BarResult] = {}

    def keep(*bars: BarResult) -> None:
        for result in bars:
            if result.bar in wanted:
                result.details["load_average_1m"] = round(os.getloadavg()[0], 2)
                results[result.bar] = result

    with tempfile.TemporaryDirectory(prefix="paincoach-bench-") as tmp:
        async with AsyncExitStack() as stack:
            bench = Bench(options, stack, Path(tmp))
            if "B5" in wanted:
                keep(await bar_b5(bench))
            if "B1" in wanted:
                keep(await bar_b1(bench))
            if wanted & {"B2", "B3"}:
                fanout = await run_fanout(bench)
                keep(bar_b2(fanout), bar_b3(fanout))
            if "B4" in wanted:
                keep(await bar_b4(bench))
            if "B6" in wanted:
                keep(await bar_b6(bench))
            if "B7" in wanted:
                keep(await bar_b7(bench))
            if "B8" in wanted:
                keep(await bar_b8(bench))
    return [results[bar] for bar in BARS if bar in results]


def _figure(value: float | None, unit: str) -> str:
    return "n/a" if value is None else f"{value:g} {unit}"


def table(results: list[BarResult], options: Options) -> str:
    backend = "PostgreSQL" if options.database_url else "SQLite"
    lines = [
        f"python -m bot.bench: {backend}, {options.patients:,} patients"
        f"{', quick' if options.quick else ''}, {os.cpu_count()} CPUs",
        "",
        f"{'bar':<4} {'figure':<16} {'reference':<18} {'target':<64} ok",
    ]
    for r in results:
        reference = _figure(r.reference, r.reference_unit) if r.reference is not None else "-"
        lines.append(
            f"{r.bar:<4} {_figure(r.value, r.unit):<16} {reference:<18} {r.target:<64} "
            f"{'yes' if r.ok else 'NO'}"
        )
    lines.append("")
    for r in results:
        if r.note:
            lines.append(f"{r.bar}: {r.note}")
        shown = {k: v for k, v in r.details.items() if v not in ([], None, "")}
        if shown:
            lines.append(f"{r.bar} details: {json.dumps(shown, ensure_ascii=False)}")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bot.bench",
        description="Measure the performance bars B1-B8 (ARCHITECTURE.md) against a local fake "
        "Bot API, in one run.",
    )
    parser.add_argument(
        "--patients",
        type=int,
        default=100_000,
        help="patients in the populated database (B5, and B1's 5,000 due among them)",
    )
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL URL: scratch databases are created next to it and dropped "
        "afterwards (default: temporary SQLite files)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a 15 s fan-out (B2/B3), 200 therapists (B6), 1,500 paid broadcasts (B8)",
    )
    parser.add_argument("--only", help="comma-separated bars, e.g. B1,B3 (default: all)")
    parser.add_argument("--json", action="store_true", help="one JSON object per bar on stdout")
    parser.add_argument(
        "--programmes",
        action="store_true",
        help="give every due patient a 5-exercise programme, named in the prompt (B1)",
    )
    args = parser.parse_args(argv)
    only = BARS
    if args.only:
        only = tuple(b.strip().upper() for b in args.only.split(",") if b.strip())
        unknown = [b for b in only if b not in BARS]
        if unknown:
            parser.error(f"unknown bar(s): {', '.join(unknown)} (choose from {', '.join(BARS)})")
    if args.database_url and not normalize_url(args.database_url).startswith("postgresql"):
        parser.error("--database-url must be a PostgreSQL URL (SQLite is the default)")
    sizes = QUICK if args.quick else Sizes()
    return Options(
        args.patients, args.database_url, args.quick, only, args.json, sizes, args.programmes
    )


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # APScheduler warns on every skipped run of a still-running tick: expected here.
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    load_locales()
    results = asyncio.run(run(options))
    report = table(results, options)
    if options.json:
        print(report, file=sys.stderr)
        for result in results:
            print(result.as_json())
    else:
        print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
