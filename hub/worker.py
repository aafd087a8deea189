"""The outbox worker's wiring: which handlers consume which topics."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from channels.base import HubContext
from hub.settings import Settings
from routing.engine import hub_engine
from routing.handlers import ROUTING_TOPICS, routing_handlers
from routing.notify import BusNotifier, EmailNotifier, Notifier, notification_handlers
from routing.sla import SlaMonitor
from storage.models import OutboxEvent
from storage.outbox import Handler, OutboxWorker, WorkerOptions


def bus_publisher(context: HubContext) -> Handler:
    """Every event goes to the bus for open inbox pages (live updates)."""

    async def publish(_session: AsyncSession, event: OutboxEvent) -> None:
        await context.bus.publish(event.topic, {"event_id": event.id, **event.payload})

    return publish


def merge(*tables: Mapping[str, Sequence[Handler]]) -> dict[str, list[Handler]]:
    merged: dict[str, list[Handler]] = {}
    for table in tables:
        for topic, handlers in table.items():
            merged.setdefault(topic, []).extend(handlers)
    return merged


def handlers(context: HubContext, settings: Settings | None = None) -> dict[str, list[Handler]]:
    engine = hub_engine(context.extras)  # configured by hub.context.build_context
    notifiers: list[Notifier] = [BusNotifier(context.bus)]
    if settings is not None and settings.notify_smtp_host:
        password = settings.notify_smtp_password
        notifiers.append(
            EmailNotifier(
                settings.notify_smtp_host,
                settings.notify_smtp_port,
                settings.notify_from,
                use_tls=settings.notify_smtp_tls,
                username=settings.notify_smtp_username,
                password=password.get_secret_value() if password is not None else None,
            )
        )
    return merge(
        routing_handlers(engine, SlaMonitor(engine)),
        notification_handlers(notifiers),
        {"*": [bus_publisher(context)]},
    )


def build_worker(context: HubContext, settings: Settings) -> OutboxWorker:
    options = WorkerOptions(
        poll_interval_seconds=settings.worker_poll_seconds,
        max_attempts=settings.outbox_max_attempts,
        solo_topics=ROUTING_TOPICS,
    )
    return OutboxWorker(context.db, handlers(context, settings), options)
