"""The practice's week for the therapist's digest: per patient, sessions done against planned
and the weekly pain average.

Drawn with matplotlib's object-oriented API on the Agg canvas (no pyplot: no process-wide
figure state), so a digest job can render in a worker thread without blocking the event loop.
One chart at a time: matplotlib is not thread-safe (its font caches are shared), and one
CPU-bound render competing with the event loop for the GIL is enough.

Readable on a phone: the figure is WIDTH_IN inches wide, which is 390 points, the width of a
390-px-wide phone screen in CSS pixels (1 pt = 1 px there at 72 dpi); every text is at least
MIN_PT, so it shows at MIN_PT or more on that screen. DPI only adds sharpness.

Names are drawn literally: every text artist is made with ``parse_math=False``, so a name like
``$x$`` or ``a\\b`` is not read as mathtext (which fails, or draws something else).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache
from io import BytesIO

from matplotlib import font_manager
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

# More rows than this are unreadable in a phone-sized image; the text lists everyone.
MAX_BARS = 20
LABEL_CHARS = 14
WIDTH_IN = 390 / 72  # 390 pt: a 390-px phone screen shows the figure at 1 pt = 1 px
MIN_PT = 9
DPI = 200
PLANNED_COLOUR = "#d0d4d9"
DONE_COLOUR = "#2a7ab0"
PAIN_COLOUR = "#E69F00"
MUTED = "#555555"
ROW_IN = 0.34
_RENDERING = threading.Lock()


@dataclass(frozen=True)
class ChartRow:
    label: str  # "3. Ana", as numbered in the text
    done: int
    planned: int
    pain: float | None = None  # the week's average pain, 0-10


@dataclass(frozen=True)
class ChartLabels:
    title: str
    done: str  # "Sessions done / planned"
    planned: str
    more: str | None = None  # "First 20 of 200 patients", when cut
    pain: str = "Pain"
    no_pain: str = "-"
    decimal: str = "."  # the reader's decimal separator


def has_data(rows: list[ChartRow]) -> bool:
    """Whether there is anything to draw (else the digest says so in a line of text)."""
    return any(r.planned or r.done or r.pain is not None for r in rows)


@lru_cache(maxsize=1)
def _drawable() -> frozenset[int]:
    """Code points the default font has (a name with emoji would only draw empty boxes)."""
    path = font_manager.findfont(font_manager.FontProperties())
    return frozenset(font_manager.get_font(path).get_charmap())


def chartable(text: str) -> str:
    drawable = _drawable()
    kept = "".join(c for c in text if ord(c) in drawable).strip()
    return kept[:LABEL_CHARS] + ("…" if len(kept) > LABEL_CHARS else "")


def render(rows: list[ChartRow], labels: ChartLabels) -> bytes:
    """A PNG: one row per patient, in the order of the digest's text."""
    with _RENDERING:
        fig = build(rows, labels)
        buffer = BytesIO()
        # Light compression: a chart of flat colours stays small, and encoding is faster.
        fig.savefig(buffer, format="png", dpi=DPI, pil_kwargs={"compress_level": 1})
        return buffer.getvalue()


def build(rows: list[ChartRow], labels: ChartLabels) -> Figure:
    """The figure itself (tests read its texts and sizes)."""
    shown = rows[:MAX_BARS]
    names = [chartable(r.label) for r in shown]
    height = 1.3 + ROW_IN * max(len(shown), 1) + (0.3 if labels.more else 0)
    fig = Figure(figsize=(WIDTH_IN, height), dpi=DPI)
    FigureCanvasAgg(fig)
    left = min(0.4, 0.05 + 0.0145 * max((len(n) for n in names), default=0))
    bottom = (0.45 + (0.3 if labels.more else 0)) / height
    fig.subplots_adjust(left=left, right=0.97, top=1 - 0.85 / height, bottom=bottom, wspace=0.12)
    sessions_ax, pain_ax = fig.subplots(1, 2, sharey=True, width_ratios=(3, 2))
    y = list(range(len(shown)))

    sessions_ax.barh(y, [r.planned for r in shown], color=PLANNED_COLOUR)
    sessions_ax.barh(y, [r.done for r in shown], height=0.5, color=DONE_COLOUR)
    top = max([1, *(max(r.planned, r.done) for r in shown)])
    sessions_ax.set_xlim(0, top * 1.25)  # never the empty −0.045…0.045 axis
    sessions_ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=4))
    for i, r in enumerate(shown):
        sessions_ax.text(
            max(r.planned, r.done) + top * 0.03,
            i,
            f"{r.done}/{r.planned}",
            va="center",
            fontsize=MIN_PT,
            parse_math=False,
        )
    sessions_ax.set_yticks(y, names, parse_math=False)
    sessions_ax.set_ylim(len(shown) - 0.5, -0.5)  # the first patient of the text on top
    sessions_ax.set_title(labels.done, fontsize=MIN_PT + 1, loc="left", parse_math=False)

    pain_ax.barh(y, [r.pain or 0 for r in shown], height=0.5, color=PAIN_COLOUR)
    pain_ax.set_xlim(0, 10)
    pain_ax.set_xticks([0, 5, 10])
    for i, r in enumerate(shown):
        text = labels.no_pain if r.pain is None else f"{r.pain:.1f}".replace(".", labels.decimal)
        x = 0.2 if r.pain is None else min(r.pain + 0.3, 8.2)
        pain_ax.text(
            x,
            i,
            text,
            va="center",
            fontsize=MIN_PT,
            color=MUTED if r.pain is None else "black",
            parse_math=False,
        )
    pain_ax.set_title(labels.pain, fontsize=MIN_PT + 1, loc="left", parse_math=False)
    pain_ax.tick_params(axis="y", left=False)

    for ax in (sessions_ax, pain_ax):
        ax.tick_params(labelsize=MIN_PT)
        ax.spines[["top", "right"]].set_visible(False)
    fig.text(
        0.02, 1 - 0.3 / height, labels.title, fontsize=MIN_PT + 2, va="center", parse_math=False
    )
    if labels.more:
        fig.text(0.02, 0.08 / height, labels.more, fontsize=MIN_PT, color=MUTED, parse_math=False)
    return fig
