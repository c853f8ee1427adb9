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


async def test_a_429_for_one_chat_pauses_only_that_chat(fake, limited):
    flooded, other = fake.user(7400), fake.user(7401)
    fake.inject("sendMessage", status=429, retry_after=2, times=1)
    first = asyncio.create_task(limited.send_message(flooded.id, "to the flooded chat"))
    await fake.wait_for(lambda: fake.stats.too_many_requests == 1, timeout=5)
    await limited.send_message(other.id, "not held up")  # goes out during the 2 s pause
    assert other.messages and not flooded.messages
    await first
    assert [m.text for m in flooded.messages] == ["to the flooded chat"]
    sends = [r for r in fake.requests if r.method == "sendMessage"]
    refused = next(r for r in sends if r.status == 429)
    retried = [r for r in sends if r.status == 200 and r.params["chat_id"] == flooded.id]
    assert retried[0].at - refused.at >= 1.9  # retry_after honoured for that chat


async def test_429s_for_several_chats_pause_every_send(fake, limited):
    users = [fake.user(7500 + i) for i in range(4)]
    fake.inject("sendMessage", status=429, retry_after=1, times=3)
    await asyncio.gather(*(limited.send_message(u.id, "hi") for u in users[:3]))
    sends = [r for r in fake.requests if r.method == "sendMessage"]
    last_429 = max(r.at for r in sends if r.status == 429)
    await limited.send_message(users[3].id, "after")
    ok = [r for r in fake.requests if r.method == "sendMessage" and r.status == 200]
    assert all(r.at >= last_429 + 0.9 for r in ok)  # the bot-wide limit: everyone waited
    assert all(len(u.messages) == 1 for u in users)
