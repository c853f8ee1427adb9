"""Pieces of ``python -m bot.bench`` that must stay import-light: the result record, small
statistics, and the start-up probe that bar B5 runs in a fresh interpreter.

Only the standard library is imported at module level, so that the probe's own timing of
``import bot.app`` (and everything it pulls in) is what a real start pays.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# The token the fake Bot API accepts in every benchmark (never a real one).
BENCH_TOKEN = "123456:BENCH-not-a-real-token"
# What B5's subprocess runs: ``python -c PROBE <database url> <api base url> <now iso>``.
PROBE = "from bot.bench_support import startup_probe; startup_probe()"
REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class BarResult:
    """One bar's outcome: the headline figure, what it is compared with, and whether it passes.

    ``value`` is None when the bar could not be measured (``note`` says why). ``reference``
    is the figure the value is a ratio of (bars B1 and B4), measured in the same run, or None.
    ``details`` carries the other figures of the bar (secondary metrics, raw timings).
    """

    bar: str
    value: float | None
    unit: str
    reference: float | None
    target: str
    ok: bool
    reference_unit: str = ""
    note: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)


def rounded(value: float | None, digits: int = 3) -> float | None:
    if value is None or math.isnan(value) or math.isinf(value):
        return None
    return round(value, digits)


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (p95 of 20 values is the 19th smallest); inf when empty."""
    if not values:
        return math.inf
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def max_in_sliding_window(instants: list[float], window: float = 1.0) -> int:
    """The most instants falling in any half-open window [t, t + window) (Telegram's count)."""
    ordered = sorted(instants)
    best, start = 0, 0
    for end, at in enumerate(ordered):
        while at - ordered[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def memory_mb() -> dict[str, float]:
    """This process's resident set now (VmRSS) and at its peak (VmHWM), in MB (Linux)."""
    out: dict[str, float] = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(rest.split()[0]) / 1024  # kB
    except OSError:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
        out = {"VmRSS": peak, "VmHWM": peak}
    return out


# ---------------------------------------------------------------------------------------------
# B5: the start-up probe (runs in a fresh interpreter)
# ---------------------------------------------------------------------------------------------


def startup_probe() -> None:
    """Start the bot the way ``python -m bot run`` does, up to the first dispatcher tick.

    Arguments (``sys.argv[1:4]``): the database URL, the fake Bot API's base URL, and the
    ISO instant to tick at (one with nothing due). Steps, each timed: importing the bot,
    migrations (a no-op check at head, as ``run`` does first), loading the locales,
    ``build_application`` (with the default 30/s limiter), ``initialize`` (getMe),
    ``post_init`` (the command menus; the JobQueue is not started: the first tick is run
    by hand instead), and the first ``Dispatcher.tick()``. Prints one JSON line as soon as
    the tick is done (the parent times the whole process from spawn to that line), then
    shuts down.
    """
    marks: dict[str, float] = {}
    t0 = time.perf_counter()
    database_url, api_base_url, now_iso = sys.argv[1:4]

    import asyncio
    import logging
    from datetime import datetime

    logging.basicConfig(level=logging.WARNING)
    from bot.app import build_application
    from bot.clock import ManualClock
    from bot.config import load_settings
    from bot.db.migrate import upgrade
    from bot.db.session import create_engine
    from bot.i18n import load_locales

    marks["imports"] = time.perf_counter() - t0

    async def start() -> None:
        def mark(step: str, since: float) -> float:
            now = time.perf_counter()
            marks[step] = now - since
            return now

        t = time.perf_counter()
        settings = load_settings(
            telegram_bot_token=BENCH_TOKEN,
            telegram_api_base_url=api_base_url,
            database_url=database_url,
        )
        engine = create_engine(settings.database_url)
        await upgrade(engine)
        await engine.dispose()
        t = mark("migrate", t)
        load_locales()
        t = mark("locales", t)
        app = build_application(settings, clock=ManualClock(datetime.fromisoformat(now_iso)))
        app.bot_data.run_jobs = False
        t = mark("build_application", t)
        await app.initialize()
        t = mark("initialize", t)
        await app.post_init(app)
        t = mark("post_init", t)
        report = await app.bot_data.dispatcher.tick()
        mark("first_tick", t)
        memory = memory_mb()
        print(
            json.dumps(
                {
                    "in_process_s": time.perf_counter() - t0,
                    "steps_s": marks,
                    "rss_mb": memory.get("VmRSS"),
                    "peak_rss_mb": memory.get("VmHWM"),
                    "first_tick_sent": report.sent,
                    "first_tick_missed": report.missed,
                    "first_tick_expired": report.expired,
                }
            ),
            flush=True,
        )
        await app.shutdown()
        await app.bot_data.engine.dispose()

    asyncio.run(start())
