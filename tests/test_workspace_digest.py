"""Digest fixes of issue 16: the first week after joining, a phone-readable chart of pain and
adherence (or a line of text), names drawn literally, a partial send never repeated."""

from __future__ import annotations

from datetime import timedelta

import pytest
from matplotlib.text import Text
from sqlalchemy import select, update

from bot.db.models import DigestSent, Therapist
from bot.digest_chart import MIN_PT, WIDTH_IN, ChartLabels, ChartRow, build, chartable
from bot.handlers import digest_view
from bot.services import digest
from tests.conftest import tx
from tests.test_digest import (
    SLOT_UTC,
    add_patient,
    add_therapist,
    day,
    no_chat_spacing,
    sender,
    session_row,
)

NAMES = ["$x$", r"a\b", "<b>Eve</b>", "Søren Æbelø"]


def texts_of(fig) -> list[Text]:
    return [a for a in fig.findobj(Text) if a.get_text()]


def test_chart_is_readable_on_a_390_px_phone_and_draws_names_literally():
    rows = [ChartRow(f"{n}. {name}", 2, 5, 4.5) for n, name in enumerate(NAMES, 1)]
    rows.append(ChartRow("5. Ana", 0, 0, None))
    labels = ChartLabels("Week of 23–29 Nov", "Sessions done / planned", "planned", pain="Pain")
    fig = build(rows, labels)
    fig.canvas.draw()  # mathtext would raise on "$x$" and "a\b" here
    assert fig.get_figwidth() == pytest.approx(WIDTH_IN) and WIDTH_IN == pytest.approx(390 / 72)
    shown = texts_of(fig)
    assert min(a.get_fontsize() for a in shown) >= MIN_PT >= 9
    ticks = [a.get_text() for a in shown]
    for name in NAMES:
        assert any(chartable(f". {name}").strip(". ") in tick for tick in ticks), name
    assert all(not a.get_parse_math() for a in shown if "$" in a.get_text())
    left, right = fig.axes[0].get_xlim()
    assert left == 0 and right >= 1  # never the empty −0.045…0.045 axis


def test_chart_with_nothing_recorded_is_a_line_of_text():
    from bot.digest_chart import has_data

    assert not has_data([ChartRow("1. Ana", 0, 0, None)])
    assert has_data([ChartRow("1. Ana", 0, 0, 3.0)])


async def test_first_week_after_joining_and_a_dollar_name(app, fake, sessions, clock):
    """Ana joined on the Sunday of the covered week; $x$ joined after it."""
    async with sessions() as s, s.begin():
        therapist = await add_therapist(s, "Anna", tz="UTC", uid=7601)
        ana = await add_patient(s, "Ana", therapist)
        ana.consent_at = day(6, 12)
        s.add(session_row(ana, day(6, 18), kind="log", before=5, after=3))
        odd = await add_patient(s, "$x$ <i>", therapist)
        odd.consent_at = SLOT_UTC - timedelta(hours=2)
        await s.execute(update(Therapist).values(next_digest_at=SLOT_UTC))
    no_chat_spacing(app)
    anna = fake.user(7601, "Anna")
    clock.set(SLOT_UTC)
    report = await sender(app).tick()
    assert report.sent == 1 and not fake.errors
    text = "\n".join(m.text for m in anna.messages if m.text)
    assert "$x$ <i>" in text  # escaped for Telegram, shown literally
    assert tx("workspace.digest_not_yet", "en", date="30 November") in text
    assert tx("workspace.digest_joined", "en", date="29 November") in text
    assert "0 of 0" in text  # Ana: no prompts, one logged session
    assert anna.last.photo is not None  # the chart rendered with "$x$" in it


async def test_a_digest_that_failed_half_way_is_recorded_and_not_sent_again(
    app, fake, sessions, clock
):
    async with sessions() as s, s.begin():
        therapist = await add_therapist(s, "Anna", tz="UTC", uid=7602)
        pat = await add_patient(s, "Ben", therapist)
        s.add(session_row(pat, day(1), before=4, after=2))
        await s.execute(update(Therapist).values(next_digest_at=SLOT_UTC))
    no_chat_spacing(app)
    anna = fake.user(7602, "Anna")
    clock.set(SLOT_UTC)
    fake.inject("sendPhoto", status=400, description="Bad Request: IMAGE_PROCESS_FAILED")
    await sender(app).tick()
    texts = [m for m in anna.messages if m.text]
    assert len(texts) == 1
    async with sessions() as s:
        [row] = await s.scalars(select(DigestSent))
    assert row.sent_at is not None and row.detail.startswith("partial: 1 messages")
    # Past the lease, nothing is sent again.
    clock.set(SLOT_UTC + digest.DIGEST_LEASE * 3)
    await sender(app).tick()
    assert len([m for m in anna.messages if m.text]) == 1


def test_chart_caption_and_rows_use_weekly_pain():
    week = digest.PatientWeek(1, name="Ana", planned=5, done=3, pain_sum=12, pain_n=3)
    result = digest.Digest(1, digest.week_before(SLOT_UTC, "UTC"), [week])
    [row] = digest_view.chart_rows(result, "en")
    assert (row.done, row.planned, row.pain) == (3, 5, 4.0)
