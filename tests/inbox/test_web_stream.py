"""The live stream's decisions: which views an event changes, and sequence numbers that
show a tab what it missed; on the in-process bus and on Redis, on both databases."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import update

from inbox.web.stream import ConversationStates, changes
from intake.inbox import Viewer
from storage.bus import EventBus, InProcessBus, RedisBus
from storage.db import Database
from storage.models import Conversation
from tests.factories import create_channel, create_manager, ingest_message


@pytest.fixture(params=["memory", "redis"])
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[EventBus]:
    if request.param == "memory":
        made: EventBus = InProcessBus(max_queue=4)
    else:
        made = RedisBus(request.getfixturevalue("redis_url"), max_queue=4)
    try:
        yield made
    finally:
        await made.close()


def data(chunk: str) -> dict[str, object]:
    line = next(line for line in chunk.splitlines() if line.startswith("data: "))
    parsed: dict[str, object] = json.loads(line.removeprefix("data: "))
    return parsed


async def test_the_stream_tells_each_manager_the_views_an_event_changes(
    db: Database, bus: EventBus
) -> None:
    me = await create_manager(db)
    other = await create_manager(db)
    channel = await create_channel(db)
    first = await ingest_message(db, channel, email="a@example.ru")
    second = await ingest_message(db, channel, email="b@example.ru")
    async with db.transaction() as session:
        await session.execute(
            update(Conversation)
            .where(Conversation.id == second.conversation_id)
            .values(assignee_id=other.id)
        )
    stream = changes(bus, ConversationStates(db), Viewer(me.id, False), frozenset())
    try:
        hello = await anext(stream)
        assert "event: hello" in hello and data(hello)["seq"] == 0
        await bus.publish(
            "conversation.opened", {"event_id": 1, "conversation_id": first.conversation_id}
        )
        change = await anext(stream)
        assert "event: change" in change and "id: 1" in change
        told = data(change)
        assert told["seq"] == 1 and told["conversation_id"] == first.conversation_id
        views = told["views"]
        assert isinstance(views, list)
        assert {"unassigned", "open", f"channel-{channel.id}"} <= set(views)
        # Another manager's conversation: sent with no views (its row leaves this tab).
        await bus.publish(
            "conversation.assigned", {"event_id": 2, "conversation_id": second.conversation_id}
        )
        assert data(await anext(stream))["views"] == []
        # Events published while the tab is slow beyond the queue: the numbers skip.
        for event_id in range(3, 10):
            await bus.publish(
                "message.received", {"event_id": event_id, "conversation_id": first.conversation_id}
            )
        await asyncio.sleep(0.5)  # Redis delivers to the subscription in the background
        after_gap = data(await anext(stream))
        assert after_gap["seq"] > 3, after_gap
    finally:
        await stream.aclose()
