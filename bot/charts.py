"""Progress charts as PNG bytes, drawn off-screen with matplotlib's Agg renderer.

No pyplot: a ``Figure`` with its own ``FigureCanvasAgg`` selects no global backend, keeps no
global registry of open figures (nothing to close, no memory growth) and is garbage-collected
when rendering returns; matplotlib's own advice for web servers ("Embedding in a web
application server", matplotlib docs). Rendering takes a few hundred milliseconds: callers on
the event loop run it in a thread (``asyncio.to_thread``).
"""

from __future__ import annotations

import io
import threading
from datetime import date, datetime, time, timedelta

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import date2num
from matplotlib.figure import Figure

from bot import l10n
from bot.i18n import t
from bot.services.progress import Progress

# 1000 x 1200 px: portrait, fills a phone screen; Telegram keeps photos up to 1280 px a side.
SIZE_INCHES = (10, 12)
DPI = 100
# Big type: the image is shown about 400 px wide on a phone, so 18 pt here reads as ~7 pt.
TITLE_PT, LABEL_PT, TICK_PT, NOTE_PT = 26, 20, 18, 20
# Okabe-Ito colours: told apart with the common colour-vision deficiencies.
BEFORE, AFTER, AVERAGE, PLANNED, DONE, MUTED = (
    "#E69F00",
    "#0072B2",
    "#444444",
    "#D9D9D9",
    "#009E73",
    "#777777",
)
# matplotlib keeps shared caches (fonts, text layout) that are not documented as thread-safe;
# concurrent /progress calls render one after the other.
_RENDER_LOCK = threading.Lock()


def short_date(day: date, locale: str) -> str:
    """'23 Nov', '23. nov.', '23 nov' in the patient's language (CLDR, through bot.l10n)."""
    return l10n.short_date(day, locale)


def render_progress_chart(progress: Progress, locale: str) -> bytes:
    """Pain before/after each session (top) and sessions per week (bottom), as PNG bytes."""
    with _RENDER_LOCK:
        fig = Figure(figsize=SIZE_INCHES, dpi=DPI, layout="constrained")
        FigureCanvasAgg(fig)
        pain_ax, week_ax = fig.subplots(2, 1, height_ratios=(3, 2))
        _draw_pain(pain_ax, progress, locale)
        _draw_weeks(week_ax, progress, locale)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=DPI)
        return buffer.getvalue()


def _x(day: date) -> float:
    return float(date2num(datetime.combine(day, time(0))))


def _draw_pain(ax, progress: Progress, locale: str) -> None:
    mondays = [w.start for w in progress.weeks]
    end = mondays[-1] + timedelta(days=7)
    ax.set_title(t("progress.chart.pain_title", locale), fontsize=TITLE_PT, loc="left")
    ax.set_xlim(_x(mondays[0]), _x(end))
    ax.set_ylim(-0.4, 10.4)
    ax.set_yticks(range(0, 11, 2))
    ax.set_ylabel(t("progress.chart.pain_axis", locale), fontsize=LABEL_PT)
    ax.set_xticks([_x(m) for m in mondays], [short_date(m, locale) for m in mondays])
    ax.tick_params(labelsize=TICK_PT)
    ax.grid(axis="y", alpha=0.3)
    for monday in mondays[1:]:
        ax.axvline(_x(monday), color=PLANNED, linewidth=1, zorder=0)
    for week in progress.weeks:
        if week.pain_mean is not None:
            ax.hlines(
                week.pain_mean,
                _x(week.start),
                _x(week.start + timedelta(days=7)),
                colors=AVERAGE,
                linestyles="dashed",
                linewidth=2.5,
                label=t("progress.chart.weekly_average", locale),
            )
    if not progress.sessions:
        ax.text(
            0.5,
            0.5,
            t("progress.chart.no_sessions", locale),
            transform=ax.transAxes,
            ha="center",
            va="center",
            fontsize=NOTE_PT,
            color=MUTED,
        )
    else:
        xs = [float(date2num(p.at.replace(tzinfo=None))) for p in progress.sessions]
        before = [p.before for p in progress.sessions]
        after = [p.after for p in progress.sessions]
        ax.vlines(xs, before, after, colors=MUTED, linewidth=2.5, zorder=2)
        ax.scatter(
            xs,
            before,
            s=170,
            facecolors="white",
            edgecolors=BEFORE,
            linewidths=3,
            zorder=3,
            label=t("progress.chart.before", locale),
        )
        ax.scatter(xs, after, s=170, color=AFTER, zorder=4, label=t("progress.chart.after", locale))
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))  # one "weekly average" entry, not five
    if unique:
        ax.legend(
            unique.values(),
            unique.keys(),
            loc="upper center",
            bbox_to_anchor=(0.5, -0.08),
            ncol=3,
            fontsize=TICK_PT,
            frameon=False,
        )


def _draw_weeks(ax, progress: Progress, locale: str) -> None:
    weeks = progress.weeks
    xs = range(len(weeks))
    labels = [short_date(w.start, locale) for w in weeks]
    labels[-1] = t("progress.chart.this_week", locale)
    top = max([w.planned for w in weeks] + [w.done for w in weeks] + [1])
    ax.set_title(t("progress.chart.sessions_title", locale), fontsize=TITLE_PT, loc="left")
    ax.bar(
        xs,
        [w.planned for w in weeks],
        width=0.75,
        color=PLANNED,
        label=t("progress.chart.planned", locale),
    )
    ax.bar(
        xs, [w.done for w in weeks], width=0.45, color=DONE, label=t("progress.chart.done", locale)
    )
    empty = t("progress.no_value", locale)
    for x, week in zip(xs, weeks, strict=True):
        ax.text(
            x,
            max(week.planned, week.done) + top * 0.03,
            f"{week.done}/{week.planned}" if week.planned or week.done else empty,
            ha="center",
            va="bottom",
            fontsize=NOTE_PT,
            fontweight="bold",
        )
    ax.set_xticks(list(xs), labels)
    ax.set_ylim(0, top * 1.15 + 0.3)  # room for the done/planned labels above the bars
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.tick_params(labelsize=TICK_PT)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    ax.legend(
        loc="upper center", bbox_to_anchor=(0.5, -0.1), fontsize=TICK_PT, frameon=False, ncol=2
    )
