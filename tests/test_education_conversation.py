"""/tip and /source through the fake Bot API (issue 5)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.db.models import TipShown
from bot.services import education
from tests.conftest import setup_through, tx


@pytest.mark.parametrize("loc", ["en", "da", "es"])
async def test_tip_never_repeats_until_the_pool_is_used_up(app, fake, sessions, loc):
    user = fake.user(6001, language_code=loc)
    await setup_through(user, loc)  # setup ends with a first tip
    pool = {tip.key for tip in education.GENERAL_POOL}
    for _ in range(len(pool) - 1):  # the onboarding tip was the first of the pool
        await user.send("/tip")
    async with sessions() as s:
        shown = list(await s.scalars(select(TipShown.tip_key).order_by(TipShown.id)))
    assert len(shown) == len(pool) and set(shown) == pool  # every tip once, no repeat
    await user.send("/tip")  # the pool is used up: it starts over
    async with sessions() as s:
        shown = list(await s.scalars(select(TipShown.tip_key).order_by(TipShown.id)))
    assert shown[-1] in pool
    last_key = shown[-1]
    assert user.last.text.startswith(tx(f"tips.{last_key}", loc).split("\n")[0][:40])
    assert f"/source {last_key}" in user.last.text
    assert not fake.errors


async def test_source_names_the_file_behind_a_message(app, fake):
    user = fake.user(6002, language_code="da")
    await user.send("/source nervous_system_10kg_50kg")
    tip = education.TIPS_BY_KEY["nervous_system_10kg_50kg"]
    assert tip.source in user.last.text
    assert tx(f"education.topic.{tip.topic.value}", "da") in user.last.text
    await user.send("/source nope")
    assert user.last.text == tx("education.source_usage", "da")


async def test_tip_needs_consent(app, fake):
    user = fake.user(6003, language_code="es")
    await user.send("/tip")
    assert user.last.text == tx("settings.need_start", "es")
