"""Pruning keeps what the bot's dedup needs: an update Telegram delivers again inside the
retention window is still handled once."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from hub.maintenance import prune_once
from hub.settings import Settings
from storage.models import TelegramUpdate
from storage.types import utcnow
from tests.channels.telegram.flow import BotHub, Chat


async def _handled(hub: BotHub) -> set[int]:
    async with hub.context.db.read() as session:
        return set(await session.scalars(select(TelegramUpdate.update_id)))


async def test_a_retry_after_a_prune_is_still_recognised(hub: BotHub) -> None:
    chat = Chat(language="en")
    await hub.send(chat.text("Hello"))
    press = chat.press("menu:claim")
    await hub.send(press)
    handled = await _handled(hub)
    assert handled, "a button press leaves its update id"
    answers = len(hub.api.texts())
    # Another update, handled long ago: past the retention.
    async with hub.context.db.transaction() as session:
        session.add(
            TelegramUpdate(
                channel_id=hub.channel_id, update_id=1, created_at=utcnow() - timedelta(days=8)
            )
        )

    counts = await prune_once(hub.context.db, Settings())

    assert counts["telegram_updates"] == 1
    assert await _handled(hub) == handled
    await hub.send(press)  # Telegram did not get the 200 in time and delivers it again
    assert len(hub.api.texts()) == answers

    # Once it is past the window too the row goes (Telegram stopped retrying long before).
    async with hub.context.db.transaction() as session:
        await session.execute(
            update(TelegramUpdate).values(created_at=utcnow() - timedelta(days=7, minutes=1))
        )
    await prune_once(hub.context.db, Settings())
    assert await _handled(hub) == set()
