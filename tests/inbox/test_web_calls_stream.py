"""The live stream's calls: a ring reaches the tabs of the managers it was offered to, else
of those who may see its conversation; the call's later events reach the tabs it rang in
and those who may see it; none of it takes a sequence number. On the in-process bus and
on Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import update

from inbox.web.live import Dispatcher
from intake.inbox import Viewer
from storage.bus import EventBus, InProcessBus, RedisBus
from storage.db import Database
from storage.models import Conversation
from tests.factories import create_channel, create_manager, ingest_message
from tests.inbox.test_web_stream import opened


@pytest.fixture(params=["memory", "redis"])
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[EventBus]:
    if request.param == "memory":
        made: EventBus = InProcessBus()
    else:
        made = RedisBus(request.getfixturevalue("redis_url"))
    try:
        yield made
    finally:
        await made.close()


def ring(event_id: int, call_id: int, conversation_id: int | None, *offered: int) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "call_id": call_id,
        "state": "ringing",
        "conversation_id": conversation_id,
        "contact": {"name": "<b>Анна</b>"},
        "manager_ids": list(offered),
    }


async def test_a_ring_reaches_the_managers_concerned_and_its_end_the_same_tabs(
    db: Database, bus: EventBus
) -> None:
    me = await create_manager(db)
    other = await create_manager(db)
    channel = await create_channel(db)
    mine = await ingest_message(db, channel, email="a@example.ru")
    theirs = await ingest_message(db, channel, email="b@example.ru")
    async with db.transaction() as session:
        await session.execute(
            update(Conversation)
            .where(Conversation.id == theirs.conversation_id)
            .values(assignee_id=other.id)
        )
    dispatcher = Dispatcher(bus, db)
    try:
        stream = await opened(dispatcher, "inbox", Viewer(me.id, False))
        boss = await opened(dispatcher, "inbox", Viewer(None, True))
        assert (await stream.told())[0] == "hello"
        assert (await boss.told())[0] == "hello"

        await bus.publish("call.ringing", ring(1, 11, mine.conversation_id, other.id))
        await bus.publish("call.ringing", ring(2, 12, theirs.conversation_id))
        await bus.publish("call.ringing", ring(3, 13, None))
        await bus.publish("call.ringing", ring(4, 14, theirs.conversation_id, me.id))
        await bus.publish("call.ringing", ring(5, 15, mine.conversation_id))
        for call_id, conversation_id in (
            (12, theirs.conversation_id),
            (14, theirs.conversation_id),
            (13, None),
        ):
            ended = {"event_id": 6, "call_id": call_id, "conversation_id": conversation_id}
            await bus.publish("call.ended", {**ended, "state": "missed"})
        await bus.publish(
            "message.received", {"event_id": 7, "conversation_id": mine.conversation_id}
        )

        # Offered to another manager (11), another's conversation (12), no conversation
        # (13): not this tab's; offered to me (14) and an unassigned caller (15) are. The
        # end of a call that rang here comes too, even in a conversation out of sight.
        heard = [await stream.told() for _ in range(4)]
        assert heard[:3] == [
            ("call", {"call_id": 14, "state": "ringing", "topic": "call.ringing"}),
            ("call", {"call_id": 15, "state": "ringing", "topic": "call.ringing"}),
            ("call", {"call_id": 14, "state": "missed", "topic": "call.ended"}),
        ]
        event, change = heard[3]
        assert event == "change" and change["seq"] == 1  # calls take no sequence number

        # An administrator sees every conversation and the calls without one, but a ring
        # offered to named managers stays theirs.
        boss_heard = [(await boss.told())[1].get("call_id") for _ in range(6)]
        assert boss_heard == [12, 13, 15, 12, 14, 13]
    finally:
        await dispatcher.close()
