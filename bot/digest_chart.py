"""The practice's week for the therapist's digest: sessions done against planned per patient.

Drawn with matplotlib's object-oriented API on the Agg canvas (no pyplot: no process-wide
figure state), so a digest job can render in a worker thread without blocking the event loop.
One chart at a time: matplotlib is not thread-safe (its font caches are shared), and one
CPU-bound render competing with the event loop for the GIL is enough.
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

# More bars than this are unreadable in a phone-sized image; the text lists everyone.
MAX_BARS = 25
LABEL_CHARS = 18
PLANNED_COLOUR = "#d0d4d9"
DONE_COLOUR = "#2a7ab0"
_RENDERING = threading.Lock()


@dataclass(frozen=True)
class ChartRow:
    label: str  # "3. Ana", as numbered in the text
    done: int
    planned: int


@dataclass(frozen=True)
class ChartLabels:
    title: str
    done: str
    planned: str
    more: str | None = None  # "First 25 of 200 patients", when cut


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
    """A PNG of horizontal bars, one per patient, in the order of the digest's text."""
    with _RENDERING:
        return _render(rows, labels)


def _render(rows: list[ChartRow], labels: ChartLabels) -> bytes:
    shown = rows[:MAX_BARS]
    names = [chartable(r.label) for r in shown]
    height = 1.5 + 0.3 * max(len(shown), 1)
    fig = Figure(figsize=(7, height), dpi=100)
    FigureCanvasAgg(fig)
    # Fixed margins instead of tight_layout, which draws the whole figure once more
    # (half the cost of a chart); the left one fits the longest name.
    left = min(0.45, 0.04 + 0.0115 * max((len(n) for n in names), default=0))
    fig.subplots_adjust(left=left, right=0.97, top=1 - 0.8 / height, bottom=0.45 / height)
    ax = fig.add_subplot()
    y = list(range(len(shown)))
    ax.barh(y, [r.planned for r in shown], color=PLANNED_COLOUR, label=labels.planned)
    ax.barh(y, [r.done for r in shown], height=0.5, color=DONE_COLOUR, label=labels.done)
    ax.set_yticks(y, names)
    ax.set_ylim(len(shown) - 0.5, -0.5)  # the first patient of the text on top
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.spines[["top", "right"]].set_visible(False)
    # The title as figure text: an axes title would measure every tick label to place itself.
    fig.text(0.01, 1 - 0.3 / height, labels.title, fontsize=11, va="center")
    # Between the title and the bars: it never covers a patient's bar or the title.
    ax.legend(loc="lower left", bbox_to_anchor=(0, 1), ncols=2, fontsize=8, frameon=False)
    if labels.more:
        fig.text(0.01, 0.01, labels.more, fontsize=8, color="#555555")
    buffer = BytesIO()
    # Light compression: a chart of flat colours stays small, and encoding is a third faster.
    fig.savefig(buffer, format="png", pil_kwargs={"compress_level": 1})
    return buffer.getvalue()
