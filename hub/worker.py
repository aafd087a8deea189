"""The outbox worker's wiring: which handlers consume which topics."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from channels.base import HubContext
from hub.settings import Settings
from storage.models import OutboxEvent
from storage.outbox import Handler, OutboxWorker, WorkerOptions


def bus_publisher(context: HubContext) -> Handler:
    """Every event goes to the bus for open inbox pages (live updates)."""

    async def publish(_session: AsyncSession, event: OutboxEvent) -> None:
        await context.bus.publish(event.topic, {"event_id": event.id, **event.payload})

    return publish


def handlers(context: HubContext) -> dict[str, Sequence[Handler]]:
    return {"*": [bus_publisher(context)]}


def build_worker(context: HubContext, settings: Settings) -> OutboxWorker:
    options = WorkerOptions(
        poll_interval_seconds=settings.worker_poll_seconds,
        max_attempts=settings.outbox_max_attempts,
    )
    return OutboxWorker(context.db, handlers(context), options)
