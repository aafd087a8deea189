"""The live stream's decisions: which views an event changes, and sequence numbers that
show a tab what it missed; on the in-process bus and on Redis, on both databases. And the
stream as served: its headers, and a tab whose client leaves is forgotten."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import update

from inbox.sessions import SESSION_COOKIE
from inbox.web.live import Dispatcher, DispatcherClosedError, Tab
from intake.inbox import Viewer
from storage.bus import EventBus, InProcessBus, RedisBus
from storage.db import Database
from storage.models import Conversation
from tests.factories import create_channel, create_manager, ingest_message
from tests.inbox.test_web_pages import signed_in


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


class Reader:
    """A tab's frames one by one, as its response would write them."""

    def __init__(self, tab: Tab) -> None:
        self.tab = tab
        self.frames: deque[str] = deque()

    async def next(self) -> str:
        while not self.frames:
            text = await asyncio.wait_for(self.tab.take(), timeout=10)
            assert text is not None, "the stream ended"
            self.frames.extend(frame + "\n\n" for frame in text.split("\n\n") if frame)
        return self.frames.popleft()

    async def told(self) -> tuple[str, dict[str, Any]]:
        frame = await self.next()
        lines = frame.splitlines()
        event = next(line for line in lines if line.startswith("event: "))
        return event.removeprefix("event: "), data(frame)


async def opened(
    dispatcher: Dispatcher,
    feed: str,
    viewer: Viewer,
    queue_ids: frozenset[int] = frozenset(),
    since: float | None = None,
) -> Reader:
    tab = dispatcher.tab(feed, viewer, queue_ids, since)
    await dispatcher.register(tab)
    return Reader(tab)


def data(chunk: str) -> dict[str, Any]:
    line = next(line for line in chunk.splitlines() if line.startswith("data: "))
    parsed: dict[str, Any] = json.loads(line.removeprefix("data: "))
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
    dispatcher = Dispatcher(bus, db, limit=4)
    try:
        stream = await opened(dispatcher, "inbox", Viewer(me.id, False))
        theirs = await opened(dispatcher, "inbox", Viewer(other.id, False))
        assert dispatcher.tabs == 2
        hello = await stream.next()
        assert hello.startswith("retry: 2000\n")
        assert "event: hello" in hello and data(hello)["seq"] == 0
        assert data(hello)["stream"] != data(await theirs.next())["stream"]
        await bus.publish(
            "conversation.opened", {"event_id": 1, "conversation_id": first.conversation_id}
        )
        change = await stream.next()
        assert "event: change" in change and "id: 1\n" in change
        told = data(change)
        assert told["seq"] == 1 and told["conversation_id"] == first.conversation_id
        assert told["topic"] == "conversation.opened"
        views = told["views"]
        assert isinstance(views, list)
        assert {"unassigned", "open", f"channel-{channel.id}"} <= set(views)
        # Another manager's conversation: sent with no views (its row leaves this tab)...
        await bus.publish(
            "conversation.assigned", {"event_id": 2, "conversation_id": second.conversation_id}
        )
        assert data(await stream.next())["views"] == []
        # ...while its assignee's tab is told it is theirs; each tab counts its own events.
        assert data(await theirs.next())["seq"] == 1
        mine = data(await theirs.next())
        assert mine["seq"] == 2 and "mine" in mine["views"]
        # Events published while the tab is slow beyond its buffer: the numbers skip.
        for event_id in range(3, 10):
            await bus.publish(
                "message.received", {"event_id": event_id, "conversation_id": first.conversation_id}
            )
        await asyncio.sleep(0.5)  # Redis delivers to the subscription in the background
        seqs = [data(await stream.next())["seq"] for _ in range(4)]
        assert stream.tab.dropped == 3 and stream.tab.pending == 0
        assert seqs == sorted(seqs) and seqs[0] > 3 and seqs[-1] > 2 + 7, seqs
    finally:
        await dispatcher.close()


async def test_the_stream_ends_when_the_bus_closes_after_what_it_holds(db: Database) -> None:
    channel = await create_channel(db)
    first = await ingest_message(db, channel, email="a@example.ru")
    bus = InProcessBus()
    dispatcher = Dispatcher(bus, db)
    stream = await opened(dispatcher, "inbox", Viewer(None, True))
    await bus.publish("message.received", {"event_id": 1, "conversation_id": first.conversation_id})
    for _ in range(50):  # the dispatcher hears it
        if stream.tab.pending > 1:
            break
        await asyncio.sleep(0.02)
    await bus.close()
    assert "event: hello" in await stream.next()
    assert data(await stream.next())["seq"] == 1
    assert await asyncio.wait_for(stream.tab.take(), timeout=5) is None
    assert dispatcher.closed


async def test_a_dispatcher_without_tabs_stops_and_a_new_one_takes_over(db: Database) -> None:
    bus = InProcessBus()
    try:
        dispatcher = Dispatcher(bus, db, idle_seconds=0.1)
        first = await opened(dispatcher, "claims", Viewer(None, True))
        dispatcher.unregister(first.tab)
        second = await opened(dispatcher, "inbox", Viewer(None, True))  # within the idle time: kept
        await asyncio.sleep(0.3)
        assert not dispatcher.closed and dispatcher.tabs == 1
        dispatcher.unregister(second.tab)
        for _ in range(50):
            if dispatcher.closed:
                break
            await asyncio.sleep(0.02)
        assert dispatcher.closed
        with pytest.raises(DispatcherClosedError):
            await dispatcher.register(dispatcher.tab("inbox", Viewer(None, True)))
        again = Dispatcher(bus, db)
        stream = await opened(again, "inbox", Viewer(None, True))
        await bus.publish("message.received", {"event_id": 1, "conversation_id": 0})
        assert "event: hello" in await stream.next()
        assert data(await stream.next())["views"] == []
        await again.close()
    finally:
        await bus.close()


async def test_tabs_of_the_same_viewer_share_one_frame_body(db: Database) -> None:
    me = await create_manager(db)
    channel = await create_channel(db)
    first = await ingest_message(db, channel, email="a@example.ru")
    bus = InProcessBus()
    dispatcher = Dispatcher(bus, db)
    try:
        tabs = [await opened(dispatcher, "inbox", Viewer(me.id, False)) for _ in range(3)]
        for tab in tabs:
            assert (await tab.told())[0] == "hello"
        await bus.publish(
            "message.received", {"event_id": 1, "conversation_id": first.conversation_id}
        )
        frames = [await tab.next() for tab in tabs]
        assert [data(frame)["seq"] for frame in frames] == [1, 1, 1]
        bodies = {frame.split('"seq":1,', 1)[1] for frame in frames}
        assert len(bodies) == 1 and '"topic":"message.received"' in bodies.pop()
    finally:
        await dispatcher.close()


async def test_a_tabs_hello_says_whether_a_change_came_since_its_pages_read(
    db: Database, bus: EventBus
) -> None:
    """A change heard between a page's read of the database and its stream's start would
    be lost to the page: its hello says the page is not fresh (the page reloads what it
    shows). Fresh only when the process heard the bus since before the read and heard no
    change since; presence and notifications do not count, and each feed counts its own."""
    channel = await create_channel(db)
    first = await ingest_message(db, channel, email="a@example.ru")
    admin = Viewer(None, True)
    margin = 0.05
    dispatcher = Dispatcher(bus, db, clock_margin=margin)

    async def hello(feed: str, since: float | None) -> bool:
        reader = await opened(dispatcher, feed, admin, since=since)
        event, told = await reader.told()
        assert event == "hello"
        dispatcher.unregister(reader.tab)
        fresh: bool = told["fresh"]
        assert fresh is reader.tab.fresh
        return fresh

    async def after_margin() -> float:
        await asyncio.sleep(margin * 3)
        return time.time()

    try:
        before_start = time.time() - 1
        assert not await hello("inbox", None)  # unknown: not fresh
        assert not await hello("inbox", before_start)  # read before the bus was heard
        read = await after_margin()
        assert await hello("inbox", read) and await hello("claims", read)
        # A tab keeps the dispatcher hearing; a change comes after `read`...
        watcher = await opened(dispatcher, "inbox", admin)
        await watcher.next()
        await bus.publish(
            "message.received", {"event_id": 1, "conversation_id": first.conversation_id}
        )
        assert data(await watcher.next())["seq"] == 1
        assert not await hello("inbox", read)  # ...so a page read before it may lack it
        assert await hello("claims", read)  # the claims feed heard nothing of it
        later = await after_margin()
        assert await hello("inbox", later)
        # Presence and a manager's notification change nothing a page shows.
        await bus.publish(
            "presence.conversation",
            {"conversation_id": first.conversation_id, "manager_id": 1, "state": "viewing"},
        )
        await bus.publish("manager.1", {"kind": "assigned"})
        await bus.publish("claim.filed", {"claim_id": 1, "number": "C-1"})
        for _ in range(100):  # the claim event is heard last
            if dispatcher.changed_at["claims"] > later:
                break
            await asyncio.sleep(0.02)
        assert await hello("inbox", later)
        assert not await hello("claims", later)
        # A `since` that is not a time is no time.
        assert not await hello("inbox", None)
    finally:
        await dispatcher.close()


@contextlib.asynccontextmanager
async def served(app: Any) -> AsyncIterator[int]:
    """The app (its lifespan already running) served by uvicorn on a free port."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_level="warning")
    )
    serving = asyncio.create_task(server.serve())
    try:
        for _ in range(200):
            if server.started:
                break
            await asyncio.sleep(0.05)
        assert server.started
        yield int(server.servers[0].sockets[0].getsockname()[1])
    finally:
        server.should_exit = True
        await serving


async def open_stream(
    port: int, client: httpx.AsyncClient, path: str = "/inbox/stream"
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    """A tab's stream over a socket, as the signed-in `client`; its head checked, its first
    frames (up to the hello's end and what came with it) returned."""
    cookie = client.cookies.get(SESSION_COOKIE)
    assert cookie
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Cookie: {SESSION_COOKIE}={cookie}\r\n\r\n".encode()
    )
    head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)).lower()
    assert head.startswith(b"http/1.1 200")
    assert b"content-type: text/event-stream" in head
    assert b"cache-control: no-store" in head and b"x-accel-buffering: no" in head
    size = int((await asyncio.wait_for(reader.readuntil(b"\r\n"), 10)).strip(), 16)
    first = await asyncio.wait_for(reader.readexactly(size + 2), 10)
    assert first.startswith(b"retry: 2000\n") and b"event: hello" in first
    return reader, writer, first[:-2]


async def test_the_served_stream_and_a_closed_tab_unregisters(
    app: Any, client: httpx.AsyncClient, hub_db: Database
) -> None:
    await create_manager(hub_db, email="olga@example.ru")
    await signed_in(client, "olga@example.ru")
    async with served(app) as port:
        tabs = [(await open_stream(port, client))[1] for _ in range(2)]
        dispatcher: Dispatcher = app.state.live_dispatcher
        assert dispatcher.tabs == 2
        for left, writer in enumerate(tabs, start=1):
            writer.close()
            for _ in range(100):
                if dispatcher.tabs == 2 - left:
                    break
                await asyncio.sleep(0.05)
            assert dispatcher.tabs == 2 - left
