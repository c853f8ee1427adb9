"""The send limiter against the fake Bot API: 30 in any second, replies first, 429 honoured."""

from __future__ import annotations

import asyncio

import pytest
from telegram.ext import ExtBot

from bot.ratelimit import PriorityRateLimiter
from bot.testing.fake_telegram import FakeTelegram


@pytest.fixture
async def limited(fake: FakeTelegram):
    limiter = PriorityRateLimiter(30)
    bot = ExtBot(
        "123456:TEST-TOKEN-never-logged", base_url=f"{fake.api_base_url}/bot", rate_limiter=limiter
    )
    async with bot:
        yield bot


async def test_never_more_than_30_in_a_second_even_at_the_start(fake, limited):
    users = [fake.user(7000 + i) for i in range(70)]
    fake.rate_limit(30)  # the fake answers 429 above 30 in any one-second window
    await asyncio.gather(
        *(limited.send_message(u.id, "hi", rate_limit_args={"bulk": True}) for u in users)
    )
    assert all(len(u.messages) == 1 for u in users)
    assert fake.stats.too_many_requests == 0
    assert fake.stats.max_sends_per_second <= 30


async def test_a_reply_goes_ahead_of_the_fan_out(fake, limited):
    patients = [fake.user(7100 + i) for i in range(60)]
    waiting = fake.user(7200)
    fan_out = [
        asyncio.create_task(limited.send_message(u.id, "reminder", rate_limit_args={"bulk": True}))
        for u in patients
    ]
    await asyncio.sleep(0.1)  # the fan-out has the window full and a queue behind it
    await limited.send_message(waiting.id, "your answer")
    sent_to = [params["chat_id"] for method, params in fake.calls if method == "sendMessage"]
    position = (
        sent_to.index(str(waiting.id)) if str(waiting.id) in sent_to else sent_to.index(waiting.id)
    )
    assert position < 40  # it did not wait for the 60 reminders queued before it
    await asyncio.gather(*fan_out)


async def test_retry_after_is_honoured_and_the_message_sent_once(fake, limited):
    user = fake.user(7300)
    fake.inject("sendMessage", status=429, retry_after=1, times=1)
    await limited.send_message(user.id, "hello")
    assert [m.text for m in user.messages] == ["hello"]
    assert [r.status for r in fake.requests if r.method == "sendMessage"] == [429, 200]
