"""Outbox handlers through which routing consumes intake's events and its own timers."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from routing.batch import route_batch
from routing.engine import RoutingEngine
from routing.sla import SlaMonitor
from storage.models import OutboxEvent
from storage.outbox import BatchHandler, Handler

# Topics whose handlers lock conversations and managers.
ROUTING_TOPICS = frozenset(
    {
        "conversation.opened",
        "routing.retry",
        "routing.forward_due",
        "manager.presence_changed",
        "manager.capacity_changed",
        "routing.queue_changed",
        "conversation.closed",
        "sla.due",
        "message.received",
    }
)


def routing_handlers(engine: RoutingEngine, sla: SlaMonitor) -> dict[str, Sequence[Handler]]:
    async def opened(session: AsyncSession, event: OutboxEvent) -> None:
        await engine.route(session, int(event.payload["conversation_id"]))

    async def opened_together(session: AsyncSession, events: Sequence[OutboxEvent]) -> None:
        await route_batch(engine, session, [int(e.payload["conversation_id"]) for e in events])

    async def retry(session: AsyncSession, event: OutboxEvent) -> None:
        assignment_id = event.payload.get("assignment_id")
        await engine.retry(
            session,
            int(event.payload["conversation_id"]),
            int(assignment_id) if assignment_id is not None else None,
        )

    async def forward(session: AsyncSession, event: OutboxEvent) -> None:
        await engine.forward_due(
            session, int(event.payload["conversation_id"]), int(event.payload["assignment_id"])
        )

    async def presence(session: AsyncSession, event: OutboxEvent) -> None:
        if event.payload.get("to") == "online":
            await engine.capacity_freed(session, int(event.payload["manager_id"]))

    async def queue_changed(session: AsyncSession, event: OutboxEvent) -> None:
        await engine.queue_changed(session, int(event.payload["queue_id"]))

    async def capacity_changed(session: AsyncSession, event: OutboxEvent) -> None:
        await engine.capacity_freed(session, int(event.payload["manager_id"]))

    async def closed(session: AsyncSession, event: OutboxEvent) -> None:
        manager_id = event.payload.get("manager_id")
        if manager_id is not None:
            await engine.capacity_freed(session, int(manager_id))

    async def sla_due(session: AsyncSession, event: OutboxEvent) -> None:
        await sla.check(session, event.payload)

    async def inbound(session: AsyncSession, event: OutboxEvent) -> None:
        # A new conversation's first message is covered by the first-response target;
        # machine mail (auto-replies, bounces) asks for no answer.
        if event.payload.get("continues", True) and not event.payload.get("automatic"):
            await sla.client_wrote(session, int(event.payload["conversation_id"]))

    async def inbound_together(session: AsyncSession, events: Sequence[OutboxEvent]) -> None:
        # The conversations locked in id order, as a batch of decisions locks them.
        for event in sorted(events, key=lambda e: (int(e.payload["conversation_id"]), e.id)):
            await inbound(session, event)

    return {
        "conversation.opened": [BatchHandler(opened, opened_together)],
        "routing.retry": [retry],
        "routing.forward_due": [forward],
        "manager.presence_changed": [presence],
        "conversation.closed": [closed],
        "routing.queue_changed": [queue_changed],
        "manager.capacity_changed": [capacity_changed],
        "sla.due": [sla_due],
        "message.received": [BatchHandler(inbound, inbound_together)],
    }
