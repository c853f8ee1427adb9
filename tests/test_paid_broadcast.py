"""ALLOW_PAID_BROADCAST: the fan-out is sent with allow_paid_broadcast and may go up to
SEND_RATE_PER_SECOND (<= 1000); every other message stays within the free 30/s."""

from __future__ import annotations

import asyncio

import pytest
from telegram.ext import ExtBot

from bot.bench_support import max_in_sliding_window
from bot.config import ConfigError, load_settings
from bot.ratelimit import PriorityRateLimiter
from tests.conftest import TEST_TOKEN
from tests.test_webhook import add_due_patient, running_bot


def test_a_rate_above_30_needs_paid_broadcasts():
    with pytest.raises(ConfigError, match="ALLOW_PAID_BROADCAST=true"):
        load_settings(telegram_bot_token=TEST_TOKEN, send_rate_per_second=100)
    with pytest.raises(ConfigError, match="SEND_RATE_PER_SECOND is invalid"):
        load_settings(
            telegram_bot_token=TEST_TOKEN, send_rate_per_second=1001, allow_paid_broadcast=True
        )
    ok = load_settings(
        telegram_bot_token=TEST_TOKEN, send_rate_per_second=1000, allow_paid_broadcast=True
    )
    assert ok.send_rate_per_second == 1000


async def test_paid_sends_go_faster_and_free_ones_stay_within_30(fake):
    limiter = PriorityRateLimiter(30, paid_rate=120)
    users = [fake.user(7600 + i) for i in range(160)]
    async with ExtBot(TEST_TOKEN, base_url=f"{fake.api_base_url}/bot", rate_limiter=limiter) as bot:
        paid = [
            bot.send_message(u.id, "p", allow_paid_broadcast=True, rate_limit_args={"bulk": True})
            for u in users[:120]
        ]
        free = [bot.send_message(u.id, "f") for u in users[120:]]
        await asyncio.gather(*paid, *free)
    sends = [r for r in fake.requests if r.method == "sendMessage" and r.status == 200]
    free_at = [r.at for r in sends if not r.params.get("allow_paid_broadcast")]
    assert len(sends) == 160 and len(free_at) == 40
    assert max_in_sliding_window([r.at for r in sends]) <= 120
    assert max_in_sliding_window(free_at) <= 30
    assert max_in_sliding_window([r.at for r in sends]) > 30  # the paid lane was faster


async def test_the_fan_out_is_sent_as_paid_broadcast(fake, engine, sessions, clock):
    patient = fake.user(8201, "Bo", language_code="da")
    await add_due_patient(sessions, 8201)
    async with running_bot(
        fake,
        engine,
        clock,
        dispatch_interval_seconds=0.2,
        allow_paid_broadcast=True,
        send_rate_per_second=1000,
    ):
        await fake.wait_for(lambda: patient.last is not None, timeout=10)
        [call] = fake.calls_of("sendMessage")
        assert call["allow_paid_broadcast"] is True
