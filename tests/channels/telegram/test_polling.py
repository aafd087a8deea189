"""Long polling for installs without a public URL: getUpdates against the stand-in."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bots.texts import t
from channels.telegram.polling import PollingOptions, TelegramPollers
from storage.models import TelegramBotState
from tests.channels.telegram.flow import BotHub, Chat, new_token


async def _add_polling_bot(hub: BotHub) -> dict[str, Any]:
    body: dict[str, Any] = await hub.api_post(
        "/api/v1/channels/telegram",
        {
            "key": "pollbot",
            "token": new_token(),
            "config": {"api_url": hub.api.url, "mode": "polling", "poll_timeout_seconds": 1},
        },
        status=201,
    )
    return body


async def test_a_polling_bot_takes_updates_in_once_and_answers(hub: BotHub) -> None:
    body = await _add_polling_bot(hub)
    assert body["config"]["mode"] == "polling" and "token" not in body["config"]
    chat = Chat(language="en")
    first = chat.text("Hello from polling")
    hub.api.queue_update(first)
    hub.api.queue_update(first)  # Telegram may hand out an update twice
    hub.api.queue_update(chat.text("/start"))

    stop = asyncio.Event()
    pollers = TelegramPollers(hub.context, PollingOptions(refresh_seconds=0.1))
    task = asyncio.create_task(pollers.run(stop))
    started = time.monotonic()

    async def offset() -> int:
        async with hub.context.db.read() as session:
            state = await session.get(TelegramBotState, int(body["id"]))
            return state.update_offset if state is not None else 0

    try:
        while not hub.api.texts(chat.user_id) or not await offset():
            assert time.monotonic() - started < 10, "the poller took nothing in"
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)

    assert [m.text for m in await hub.messages()] == ["Hello from polling"]
    assert hub.api.texts(chat.user_id) == [t("en", "welcome", name="Иван")]
    assert hub.api.sent("deleteWebhook")  # getUpdates needs the webhook gone
    assert await offset() > first["update_id"] + 1  # past the last update taken in
    async with hub.context.db.read() as session:
        state = await session.get(TelegramBotState, int(body["id"]))
    assert state is not None and state.poller is None  # the lease is given back on stop
    # The webhook bot of the hub is not polled.
    assert all(c.token != hub.token for c in hub.api.sent("getUpdates"))


async def test_a_polling_bot_is_polled_as_soon_as_it_is_added_and_stops_when_disabled(
    hub: BotHub,
) -> None:
    stop = asyncio.Event()
    # Re-listing every hour: only the change on the bus can start or stop the poller.
    pollers = TelegramPollers(hub.context, PollingOptions(refresh_seconds=3600))
    tasks = [
        asyncio.create_task(hub.worker().run(stop)),
        asyncio.create_task(pollers.run(stop)),
    ]
    chat = Chat(language="en")
    hub.api.queue_update(chat.text("Hello at once"))
    try:
        await asyncio.sleep(0.3)
        body = await _add_polling_bot(hub)
        started = time.monotonic()
        while [m.text for m in await hub.messages()] != ["Hello at once"]:
            assert time.monotonic() - started < 5, "the new bot was not polled at once"
            await asyncio.sleep(0.05)

        response = await hub.client.patch(
            "/api/v1/channels/pollbot", json={"is_active": False}, headers=hub.headers
        )
        assert response.status_code == 200 and response.json()["is_active"] is False
        started = time.monotonic()
        while int(body["id"]) in pollers.polled:
            assert time.monotonic() - started < 5, "the disabled bot is still polled"
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 15)
