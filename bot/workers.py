"""A bounded worker pool for CPU-heavy work (charts, PDF), off the event loop.

``asyncio.to_thread`` uses the loop's default executor, shared with everything else and as
wide as the machine allows; a burst of /export and /progress then fills it and the renders
compete with the event loop (replies, the dispatcher) for the GIL. Here at most ``WORKERS``
renders run at once and the rest wait in line, while the loop keeps answering: with one user
served one update at a time (bot/fairness.py), one user occupies at most one worker.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

WORKERS = 2  # the machine has 2 cores; renders beyond that only slow each other down
_pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="cpu-work")


async def run_cpu(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """``await run_cpu(render, data)``: run ``render(data)`` in the bounded pool."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_pool, functools.partial(fn, *args, **kwargs))
