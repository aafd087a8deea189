"""Outbox handlers through which routing consumes intake's events and its own timers."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from routing.batch import route_batch
from routing.engine import RoutingEngine
from routing.sla import SlaMonitor
from storage.events import (
    CapacityChanged,
    ConversationClosed,
    ConversationOpened,
    Event,
    ForwardDue,
    MessageReceived,
    PresenceChanged,
    QueueChanged,
    RoutingRetry,
    SlaDue,
)
from storage.outbox import BatchHandler, Handlers

# Events whose handlers lock conversations and managers.
ROUTING_EVENTS: frozenset[type[Event]] = frozenset(
    {
        ConversationOpened,
        RoutingRetry,
        ForwardDue,
        PresenceChanged,
        CapacityChanged,
        QueueChanged,
        ConversationClosed,
        SlaDue,
        MessageReceived,
    }
)


def routing_handlers(engine: RoutingEngine, sla: SlaMonitor) -> Handlers:
    async def opened(session: AsyncSession, event: ConversationOpened, _event_id: int) -> None:
        await engine.route(session, event.conversation_id)

    async def opened_together(
        session: AsyncSession, events: Sequence[tuple[ConversationOpened, int]]
    ) -> None:
        await route_batch(engine, session, [event.conversation_id for event, _id in events])

    async def retry(session: AsyncSession, event: RoutingRetry, _event_id: int) -> None:
        await engine.retry(session, event.conversation_id, event.assignment_id)

    async def forward(session: AsyncSession, event: ForwardDue, _event_id: int) -> None:
        if event.assignment_id is None:
            raise ValueError("routing.forward_due event without assignment_id")
        await engine.forward_due(session, event.conversation_id, event.assignment_id)

    async def presence(session: AsyncSession, event: PresenceChanged, _event_id: int) -> None:
        if event.to == "online":
            await engine.capacity_freed(session, event.manager_id)

    async def queue_changed(session: AsyncSession, event: QueueChanged, _event_id: int) -> None:
        await engine.queue_changed(session, event.queue_id)

    async def capacity_changed(
        session: AsyncSession, event: CapacityChanged, _event_id: int
    ) -> None:
        await engine.capacity_freed(session, event.manager_id)

    async def closed(session: AsyncSession, event: ConversationClosed, _event_id: int) -> None:
        if event.manager_id is not None:
            await engine.capacity_freed(session, event.manager_id)

    async def sla_due(session: AsyncSession, event: SlaDue, _event_id: int) -> None:
        await sla.check(session, event)

    async def inbound(session: AsyncSession, event: MessageReceived, _event_id: int) -> None:
        # A new conversation's first message is covered by the first-response target;
        # machine mail (auto-replies, bounces) asks for no answer.
        if event.continues and not event.automatic:
            await sla.client_wrote(session, event.conversation_id)

    async def inbound_together(
        session: AsyncSession, events: Sequence[tuple[MessageReceived, int]]
    ) -> None:
        # The conversations locked in id order, as a batch of decisions locks them.
        for event, event_id in sorted(events, key=lambda e: (e[0].conversation_id, e[1])):
            await inbound(session, event, event_id)

    return {
        ConversationOpened: [BatchHandler(opened, opened_together)],
        RoutingRetry: [retry],
        ForwardDue: [forward],
        PresenceChanged: [presence],
        ConversationClosed: [closed],
        QueueChanged: [queue_changed],
        CapacityChanged: [capacity_changed],
        SlaDue: [sla_due],
        MessageReceived: [BatchHandler(inbound, inbound_together)],
    }
