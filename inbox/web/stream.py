"""The workspace's live stream: one Server-Sent Events stream per tab, fed by the event bus.

The outbox worker publishes every committed event on the bus (in-process when embedded,
Redis pub/sub across processes). One dispatcher per process hears the bus for every open tab
(see live.py). For each event about a conversation it reads the conversation as it is now
(once per event and process, however many tabs listen), decides which views it now belongs
to for each kind of viewer (once per kind, shared by their tabs), and each tab is sent
`{"seq", "conversation_id", "topic", "views"}`: a tab showing one of those views, or
showing the conversation in its list or opened, refreshes what it shows. A conversation
the manager may not see is sent with no views (a row that leaves their sight disappears).

`seq` counts the events of this stream, those the bus dropped for a slow tab included, so
a tab that sees a number skipped knows it missed something and reloads its view; a new
stream (after a reconnect) starts with a `hello` of its own id, and the tab reloads too; a
first stream's hello says whether a change came between the page's read and the stream
(`fresh`, see live.py), and a page that is not fresh reloads its list and conversation.

Calls (`call.*`) come as `call` events without a sequence number, a moment's news like
presence: a ring for this manager and the call's later events (see `CallNews`).
A contact edited or merged elsewhere (`contact.changed`, `contact.merged`) comes as a
`contact` event with only its ids, outside the sequence: a tab showing its panel reloads it.
A manager's own notifications (routing.notify's BusNotifier on `manager.{id}`: assigned,
offered, mentioned in a note) come as `notification` events, outside the sequence too.

Presence ("who is viewing / typing") travels on the same bus: a tab posts its state every
few seconds, the hub publishes it with a 15 s expiry, and the streams of the managers who
may see that conversation pass it on as a `presence` event. It never touches the database's
tables.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Annotated, Any

from fastapi import Form, Request, Response

from inbox.deps import ContextDep, ReadSessionDep
from intake.accounts import get_manager
from intake.calls.desk import ringing_for
from intake.inbox import (
    ConversationState,
    Viewer,
    conversation_state,
    viewer_queues,
    views_of,
    visible_conversation,
)
from storage.bus import BusMessage
from storage.db import Database
from storage.types import DbId, utcnow

from .common import PagePrincipal, page_principal, router, viewer_of
from .live import (
    KEEPALIVE_SECONDS,
    RETRY_MS,
    LiveResponse,
    Tab,
    ViewerKey,
    dispatcher_of,
    feed,
    read_at,
    sse,
    tail_of,
)

__all__ = [
    "KEEPALIVE_SECONDS",
    "RETRY_MS",
    "CallNews",
    "ConversationStates",
    "InboxFeed",
    "contact_news",
    "sse",
]

FEED = "inbox"
TOPICS = ("conversation.*", "message.*", "task.*")
CONTACT_TOPICS = ("contact.changed", "contact.merged")
CALL_TOPICS = "call.*"
RINGING_TOPIC = "call.ringing"
MANAGER_TOPICS = "manager.*"
RUNG_KEPT = 100
PRESENCE_TOPIC = "presence.conversation"
PRESENCE_SECONDS = 15
PRESENCE_STATES = ("viewing", "typing")
STATE_CACHE = 256
READS_AT_ONCE = 3
_WANTED = ("conversation.", "message.", "task.", "call.", "manager.")


class ConversationStates:
    """One read of a conversation per event in this process, shared by every stream."""

    def __init__(self, db: Database) -> None:
        self.db = db
        # Reads begun together (a backlog of events) share a few connections, leaving the
        # rest of the pool to the pages.
        self._connections = asyncio.Semaphore(READS_AT_ONCE)
        self._reads: OrderedDict[tuple[object, int], asyncio.Task[ConversationState | None]] = (
            OrderedDict()
        )

    async def _read(self, conversation_id: int) -> ConversationState | None:
        async with self._connections, self.db.read() as session:
            return await conversation_state(session, conversation_id)

    def start(
        self, event_id: object, conversation_id: int
    ) -> asyncio.Task[ConversationState | None]:
        """The read for this event, begun now unless it already was."""
        key = (event_id, conversation_id)
        task = self._reads.get(key)
        if task is None:
            task = asyncio.ensure_future(self._read(conversation_id))
            self._reads[key] = task
            while len(self._reads) > STATE_CACHE:
                self._reads.popitem(last=False)
        return task

    async def get(self, event_id: object, conversation_id: int) -> ConversationState | None:
        if event_id is None:  # not an outbox event: nothing to share it by
            return await self._read(conversation_id)
        return await asyncio.shield(self.start(event_id, conversation_id))


class _Views:
    """A conversation's views per kind of viewer, decided once per message."""

    __slots__ = ("_known", "now", "state")

    def __init__(self, state: ConversationState | None) -> None:
        self.state = state
        self.now = utcnow()
        self._known: dict[ViewerKey, list[str]] = {}

    def of(self, tab: Tab) -> list[str]:
        views = self._known.get(tab.key)
        if views is None:
            state = self.state
            views = [] if state is None else views_of(state, tab.viewer, tab.queue_ids, self.now)
            self._known[tab.key] = views
        return views


@feed(FEED)
class InboxFeed:
    """The inbox's stream: changes with views, calls, contacts, notifications, presence."""

    name: str = FEED
    topics: tuple[str, ...] = (
        *TOPICS,
        *CONTACT_TOPICS,
        CALL_TOPICS,
        PRESENCE_TOPIC,
        MANAGER_TOPICS,
    )

    def __init__(self, db: Database) -> None:
        self.states = ConversationStates(db)
        self.tabs: set[Tab] = set()

    def wants(self, topic: str) -> bool:
        return topic.startswith(_WANTED) or topic in CONTACT_TOPICS or topic == PRESENCE_TOPIC

    def changes(self, topic: str) -> bool:
        return topic != PRESENCE_TOPIC and not topic.startswith("manager.")

    def prefetch(self, message: BusMessage) -> None:
        conversation_id = message.payload.get("conversation_id")
        event_id = message.payload.get("event_id")
        topic = message.topic
        if (
            isinstance(conversation_id, int)
            and event_id is not None
            and topic != PRESENCE_TOPIC
            and not topic.startswith("manager.")
        ):
            self.states.start(event_id, conversation_id)

    def hello(self, tab: Tab) -> str:
        """The hello, then the cards of the calls ringing for this viewer right now (as the
        stream's endpoint found them: `CallNews.rung`)."""
        if not isinstance(tab.extra, CallNews):
            tab.extra = CallNews(tab.viewer)
        ringing = [
            sse("call", {"call_id": call_id, "state": "ringing", "topic": RINGING_TOPIC})
            for call_id in tab.extra.rung
        ]
        hello = {"stream": secrets.token_hex(8), "seq": tab.seq, "fresh": tab.fresh}
        return "".join([sse("hello", hello), *ringing])

    async def deliver(self, message: BusMessage) -> None:
        topic, payload = message.topic, message.payload
        if topic.startswith("manager."):
            manager = topic.removeprefix("manager.")
            if manager.isdigit():
                self._notify(int(manager), payload)
            return
        if topic in CONTACT_TOPICS:
            contact = contact_news(payload)
            if contact is not None:
                frame = sse("contact", contact)
                for tab in self.tabs:
                    tab.push(frame)
            return
        if topic.startswith("call."):
            await self._call(topic, payload)
            return
        conversation_id = payload.get("conversation_id")
        if not isinstance(conversation_id, int):
            return
        if topic == PRESENCE_TOPIC:
            # Presence is a moment's news: no sequence number, nothing to catch up on.
            key = ("presence", int(time.monotonic() // 5))
            views = _Views(await self.states.get(key, conversation_id))
            frame = sse("presence", payload)
            for tab in self.tabs:
                if views.of(tab):
                    tab.push(frame)
            return
        views = _Views(await self.states.get(payload.get("event_id"), conversation_id))
        tails: dict[ViewerKey, str] = {}
        for tab in list(self.tabs):
            tail = tails.get(tab.key)
            if tail is None:
                tail = tails[tab.key] = tail_of(
                    {"conversation_id": conversation_id, "topic": topic, "views": views.of(tab)}
                )
            tab.numbered("change", tail)

    def _notify(self, manager_id: int, payload: dict[str, Any]) -> None:
        frame = None
        for tab in self.tabs:
            if tab.viewer.manager_id == manager_id:
                frame = frame or sse("notification", payload)
                tab.push(frame)

    async def _call(self, topic: str, payload: dict[str, Any]) -> None:
        call_id = payload.get("call_id")
        if not isinstance(call_id, int):
            return
        conversation_id = payload.get("conversation_id")
        views: _Views | None = None
        if isinstance(conversation_id, int):
            views = _Views(await self.states.get(payload.get("event_id"), conversation_id))
        frame = sse("call", {"call_id": call_id, "state": payload.get("state"), "topic": topic})
        for tab in self.tabs:
            calls: CallNews = tab.extra
            if calls.hears(topic, call_id, payload, _sees(views, tab)):
                tab.push(frame)


def _sees(views: _Views | None, tab: Tab) -> Callable[[], bool]:
    """Whether the tab's viewer may see the call's conversation (any view of it); an
    administrator, a call without one."""
    if views is None:
        return lambda: tab.viewer.is_admin
    return lambda: bool(views.of(tab))


def contact_news(payload: dict[str, Any]) -> dict[str, Any] | None:
    """What a tab hears of a contact edited or merged: only the ids (a tab showing that
    contact's panel fetches it again, and the panel checks who asks)."""
    contact_id = payload.get("contact_id")
    if not isinstance(contact_id, int):
        return None
    news: dict[str, Any] = {"contact_id": contact_id}
    merged = payload.get("merged_contact_id")
    if isinstance(merged, int):
        news["merged_contact_id"] = merged
    return news


class CallNews:
    """What one tab hears of calls: a ring pops up the caller's card in the tabs of the
    managers it was offered to (`manager_ids`), else of those who may see its conversation
    (administrators, for a call without one); the call's later events reach the tabs it
    rang in and those who may see it (the card goes, the calls page follows). Only the
    call's id and state travel: the tab fetches the card, which checks who asks."""

    def __init__(self, viewer: Viewer, ringing: Iterable[int] = ()) -> None:
        self.viewer = viewer
        self.rung: OrderedDict[int, None] = OrderedDict()  # calls that rang in this tab
        for call_id in ringing:  # those ringing when the tab opened
            self.rang(call_id)

    def hears(
        self, topic: str, call_id: int, payload: dict[str, Any], sees: Callable[[], bool]
    ) -> bool:
        if topic == RINGING_TOPIC:
            offered = payload.get("manager_ids") or []
            heard = self.viewer.manager_id in offered if offered else sees()
            if heard:
                self.rang(call_id)
            return heard
        return call_id in self.rung or sees()

    def rang(self, call_id: int) -> None:
        self.rung[call_id] = None
        while len(self.rung) > RUNG_KEPT:
            self.rung.popitem(last=False)


@router.post("/inbox/c/{conversation_id}/presence", status_code=204)
async def presence(
    conversation_id: DbId,
    principal: PagePrincipal,
    context: ContextDep,
    session: ReadSessionDep,
    state: Annotated[str, Form(pattern="^(viewing|typing)$")] = "viewing",
) -> Response:
    """This manager is viewing or typing in the conversation (for the next 15 s): told to
    the other managers' tabs over the bus, never written to the database."""
    await visible_conversation(session, viewer_of(principal), conversation_id)
    assert principal.manager_id is not None
    manager = await get_manager(session, principal.manager_id)
    await context.bus.publish(
        PRESENCE_TOPIC,
        {
            "conversation_id": conversation_id,
            "manager_id": principal.manager_id,
            "name": manager.name if manager is not None else "",
            "state": state,
            "seconds": PRESENCE_SECONDS,
        },
    )
    return Response(status_code=204)


@router.get("/inbox/stream")
async def stream(request: Request, context: ContextDep) -> LiveResponse:
    """The tab's live stream (text/event-stream)."""
    # Its own short read session: a request-scoped one would stay open with the stream.
    async with context.db.read() as session:
        principal = await page_principal(request, context, session)
        viewer = viewer_of(principal)
        queue_ids = await viewer_queues(session, viewer)
        ringing = await ringing_for(session, viewer)
    dispatcher = dispatcher_of(request, context)
    tab = dispatcher.tab(FEED, viewer, queue_ids, read_at(request))
    tab.extra = CallNews(viewer, ringing)
    return LiveResponse(dispatcher, tab)
