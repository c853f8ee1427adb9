"""Fairness: updates run concurrently across users, one at a time per user, and a user who
floods commands gets one "slow down" and then silence, without delaying anyone else.

conftest's `app` hands updates to `process_update` directly, which bypasses the update
processor; here updates go through the Application's update queue, as in production."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from telegram import Update

from bot.app import build_application
from bot.config import load_settings
from bot.context import BotApp
from bot.fairness import FairUpdateProcessor
from tests.conftest import TEST_TOKEN, tx


def message_update(update_id: int, user_id: int, text: str) -> Update:
    return Update.de_json(
        {
            "update_id": update_id,
            "message": {
                "message_id": update_id,
                "date": 0,
                "chat": {"id": user_id, "type": "private", "first_name": "A"},
                "from": {"id": user_id, "is_bot": False, "first_name": "A"},
                "text": text,
            },
        },
        None,
    )


class Probe:
    """Coroutines that record how many of each user's updates run at the same time."""

    def __init__(self) -> None:
        self.running: dict[int, int] = {}
        self.most: dict[int, int] = {}
        self.most_overall = 0
        self.done: list[int] = []
        self.release = asyncio.Event()

    async def work(self, user: int, update_id: int) -> None:
        self.running[user] = self.running.get(user, 0) + 1
        self.most[user] = max(self.most.get(user, 0), self.running[user])
        self.most_overall = max(self.most_overall, sum(self.running.values()))
        await self.release.wait()
        self.running[user] -= 1
        self.done.append(update_id)


async def test_one_update_at_a_time_per_user_and_users_side_by_side():
    processor = FairUpdateProcessor(workers=8, budget=100)
    probe = Probe()
    updates = [
        (i, 1 if i % 2 else 2, message_update(i, 1 if i % 2 else 2, "hi")) for i in range(10)
    ]
    tasks = [
        asyncio.create_task(processor.process_update(u, probe.work(user, i)))
        for i, user, u in updates
    ]
    await asyncio.sleep(0.05)
    assert probe.running == {1: 1, 2: 1}  # both users served at once, one update each
    probe.release.set()
    await asyncio.gather(*tasks)
    assert probe.most == {1: 1, 2: 1}
    assert probe.done == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]  # each user's updates in order


async def test_the_command_budget_says_slow_down_once_then_nothing():
    now = [0.0]
    told: list[int] = []

    async def slow_down(update: Update) -> None:
        told.append(update.update_id)

    processor = FairUpdateProcessor(
        budget=3, window=10, on_throttled=slow_down, clock=lambda: now[0]
    )
    probe = Probe()
    probe.release.set()
    for i in range(6):
        await processor.process_update(message_update(i, 1, "/export"), probe.work(1, i))
    # Plain text and another user's commands are not affected.
    await processor.process_update(message_update(10, 1, "7"), probe.work(1, 10))
    await processor.process_update(message_update(11, 2, "/help"), probe.work(2, 11))
    assert probe.done == [0, 1, 2, 10, 11]
    assert told == [3]  # one "slow down", then silence
    now[0] = 10.5  # the window has room again
    await processor.process_update(message_update(12, 1, "/progress"), probe.work(1, 12))
    assert probe.done[-1] == 12
    assert processor.dropped == 3


@pytest.fixture
async def queued_app(fake, engine, sessions, clock) -> AsyncIterator[BotApp]:
    """The bot with its update processor: updates go through the Application's queue."""
    settings = load_settings(
        telegram_bot_token=TEST_TOKEN,
        telegram_api_base_url=fake.api_base_url,
        database_url=engine.url.render_as_string(hide_password=False),
        user_command_budget=10,
    )
    app = build_application(settings, clock=clock, engine=engine)
    app.bot_data.run_jobs = False
    await app.initialize()
    await app.start()

    async def deliver(data: dict) -> None:
        await app.update_queue.put(Update.de_json(data, app.bot))

    fake.deliver = deliver
    yield app
    await app.stop()
    await app.shutdown()


async def test_a_flood_of_commands_gets_one_slow_down_and_others_are_answered(fake, queued_app):
    flooder = fake.user(6601, "Ana", language_code="da")
    other = fake.user(6602, "Bo", language_code="es")
    for _ in range(30):
        await flooder.send("/help")
    await other.send("/help")
    await fake.wait_for(lambda: len(other.messages) == 1, timeout=20)
    assert tx("help.intro", "es") in other.last.text
    await fake.wait_for(lambda: len(flooder.messages) == 11, timeout=20)
    texts = [m.text for m in flooder.messages]
    assert texts.count(tx("fairness.slow_down", "da")) == 1
    assert sum(tx("help.intro", "da") in t for t in texts) == 10
    # Silence after the one warning: once every update is through, nothing more came.
    processor = queued_app.update_processor
    await fake.wait_for(
        lambda: queued_app.update_queue.qsize() == 0 and processor.current_concurrent_updates == 0
    )
    assert len(flooder.messages) == 11 and processor.dropped == 20


async def test_the_update_queue_bounds_updates_in_flight():
    """PTB takes every update off its queue at once when updates run concurrently; this
    queue hands out only `in_flight` unfinished ones, so the rest stay queued (and a full
    queue makes the webhook answer 503)."""
    from bot.fairness import UpdateQueue

    queue = UpdateQueue(maxsize=2, in_flight=2)
    await queue.put(0)
    await queue.put(1)
    assert [await queue.get(), await queue.get()] == [0, 1]
    await queue.put(2)
    await queue.put(3)
    assert queue.full()
    third = asyncio.create_task(queue.get())
    await asyncio.sleep(0.01)
    assert not third.done()  # two are in flight: wait
    queue.task_done()  # one of them finished
    assert await asyncio.wait_for(third, 1) == 2


async def test_one_user_cannot_hold_every_slot_with_a_flood_of_buttons():
    processor = FairUpdateProcessor(workers=4, budget=100, max_per_user=3)
    probe = Probe()
    tasks = [
        asyncio.create_task(processor.process_update(message_update(i, 1, "5"), probe.work(1, i)))
        for i in range(10)
    ]
    await asyncio.sleep(0.05)
    probe.release.set()
    await asyncio.gather(*tasks)
    assert probe.done == [0, 1, 2]  # the rest of the flood was dropped
    assert processor.dropped == 7
