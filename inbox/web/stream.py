"""The workspace's live stream: one Server-Sent Events stream per tab, fed by the event bus.

The outbox worker publishes every committed event on the bus (in-process when embedded,
Redis pub/sub across processes). For each event about a conversation the stream reads the
conversation as it is now (once per event and process, however many tabs listen), decides
which of this manager's views it now belongs to, and sends
`{"seq", "conversation_id", "topic", "views"}`: a tab showing one of those views, or
showing the conversation in its list or opened, refreshes what it shows. A conversation
the manager may not see is sent with no views (a row that leaves their sight disappears).

`seq` counts the events of this stream, those the bus dropped for a slow tab included, so
a tab that sees a number skipped knows it missed something and reloads its view; a new
stream (after a reconnect) starts with a `hello` of its own id, and the tab reloads too.

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
import json
import secrets
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Form, Request, Response
from fastapi.responses import StreamingResponse

from channels.base import HubContext
from inbox.deps import ContextDep, ReadSessionDep
from intake.accounts import get_manager
from intake.inbox import (
    ConversationState,
    Viewer,
    conversation_state,
    viewer_queues,
    views_of,
    visible_conversation,
)
from storage.bus import EventBus
from storage.db import Database
from storage.types import DbId

from .common import PagePrincipal, page_principal, router, viewer_of

TOPICS = ("conversation.*", "message.*", "task.*")
CONTACT_TOPICS = ("contact.changed", "contact.merged")
CALL_TOPICS = "call.*"
RINGING_TOPIC = "call.ringing"
RUNG_KEPT = 100
PRESENCE_TOPIC = "presence.conversation"
PRESENCE_SECONDS = 15
PRESENCE_STATES = ("viewing", "typing")
KEEPALIVE_SECONDS = 15.0
RETRY_MS = 2000
STATE_CACHE = 256


class ConversationStates:
    """One read of a conversation per event in this process, shared by every stream."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._reads: OrderedDict[tuple[object, int], asyncio.Task[ConversationState | None]] = (
            OrderedDict()
        )

    async def _read(self, conversation_id: int) -> ConversationState | None:
        async with self.db.read() as session:
            return await conversation_state(session, conversation_id)

    async def get(self, event_id: object, conversation_id: int) -> ConversationState | None:
        if event_id is None:  # not an outbox event: nothing to share it by
            return await self._read(conversation_id)
        key = (event_id, conversation_id)
        task = self._reads.get(key)
        if task is None:
            task = asyncio.ensure_future(self._read(conversation_id))
            self._reads[key] = task
            while len(self._reads) > STATE_CACHE:
                self._reads.popitem(last=False)
        return await asyncio.shield(task)


def states_of(request: Request, context: HubContext) -> ConversationStates:
    states: ConversationStates | None = getattr(request.app.state, "inbox_states", None)
    if states is None or states.db is not context.db:
        states = ConversationStates(context.db)
        request.app.state.inbox_states = states
    return states


def sse(event: str, data: dict[str, Any], event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


async def changes(
    bus: EventBus,
    states: ConversationStates,
    viewer: Viewer,
    queue_ids: frozenset[int],
) -> AsyncIterator[str]:
    """The stream's text: `hello`, then one `change` per conversation event, keep-alives."""
    own = (f"manager.{viewer.manager_id}",) if viewer.manager_id is not None else ()
    async with bus.subscribe(
        *TOPICS, *CONTACT_TOPICS, CALL_TOPICS, PRESENCE_TOPIC, *own
    ) as subscription:
        stream_id = secrets.token_hex(8)
        calls = CallNews(states, viewer, queue_ids)
        seq = 0
        dropped_seen = 0
        yield f"retry: {RETRY_MS}\n" + sse("hello", {"stream": stream_id, "seq": seq})
        while True:
            started = time.monotonic()
            message = await subscription.get(KEEPALIVE_SECONDS)
            if message is None:
                if time.monotonic() - started < KEEPALIVE_SECONDS / 2:
                    return  # the bus closed: the hub is stopping
                yield ": keep-alive\n\n"
                continue
            dropped = int(getattr(subscription, "dropped", 0))
            if dropped > dropped_seen:
                seq += dropped - dropped_seen
                dropped_seen = dropped
            if message.topic.startswith("call."):
                call = await calls.of(message.topic, message.payload)
                if call is not None:
                    yield sse("call", call)
                continue
            if message.topic in own:
                yield sse("notification", message.payload)
                continue
            if message.topic in CONTACT_TOPICS:
                contact = contact_news(message.payload)
                if contact is not None:
                    yield sse("contact", contact)
                continue
            conversation_id = message.payload.get("conversation_id")
            if not isinstance(conversation_id, int):
                continue
            if message.topic == PRESENCE_TOPIC:
                # Presence is a moment's news: no sequence number, nothing to catch up on.
                key = ("presence", int(time.monotonic() // 5))
                state = await states.get(key, conversation_id)
                if state is not None and views_of(state, viewer, queue_ids):
                    yield sse("presence", message.payload)
                continue
            state = await states.get(message.payload.get("event_id"), conversation_id)
            views = views_of(state, viewer, queue_ids) if state is not None else []
            seq += 1
            data = {
                "seq": seq,
                "conversation_id": conversation_id,
                "topic": message.topic,
                "views": views,
            }
            yield sse("change", data, seq)


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

    def __init__(
        self, states: ConversationStates, viewer: Viewer, queue_ids: frozenset[int]
    ) -> None:
        self.states = states
        self.viewer = viewer
        self.queue_ids = queue_ids
        self.rung: OrderedDict[int, None] = OrderedDict()  # calls that rang in this tab

    async def of(self, topic: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        call_id = payload.get("call_id")
        if not isinstance(call_id, int):
            return None
        news = {"call_id": call_id, "state": payload.get("state"), "topic": topic}
        if topic == RINGING_TOPIC:
            offered = payload.get("manager_ids") or []
            heard = self.viewer.manager_id in offered if offered else await self._sees(payload)
            if heard:
                self.rung[call_id] = None
                while len(self.rung) > RUNG_KEPT:
                    self.rung.popitem(last=False)
            return news if heard else None
        if call_id in self.rung or await self._sees(payload):
            return news
        return None

    async def _sees(self, payload: dict[str, Any]) -> bool:
        conversation_id = payload.get("conversation_id")
        if not isinstance(conversation_id, int):
            return self.viewer.is_admin
        state = await self.states.get(payload.get("event_id"), conversation_id)
        # Any view of the conversation means the viewer may see it.
        return state is not None and bool(views_of(state, self.viewer, self.queue_ids))


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
async def stream(request: Request, context: ContextDep) -> StreamingResponse:
    """The tab's live stream (text/event-stream)."""
    # Its own short read session: a request-scoped one would stay open with the stream.
    async with context.db.read() as session:
        principal = await page_principal(request, context, session)
        viewer = viewer_of(principal)
        queue_ids = await viewer_queues(session, viewer)
    return StreamingResponse(
        changes(context.bus, states_of(request, context), viewer, queue_ids),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
