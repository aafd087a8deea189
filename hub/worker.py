"""The outbox worker's wiring: which handlers consume which events."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from channels.base import HubContext
from channels.delivery import DeliveryWorker
from channels.email.notifier import EmailNotifier
from channels.email.outbound import EmailSender
from channels.email.poller import EmailPollers
from channels.email.service import EmailIntake
from channels.greeting import greeting_handlers
from channels.telegram.notifier import TelegramNotifier
from channels.telegram.outbound import TelegramSender
from channels.telegram.polling import TelegramPollers
from channels.telephony.handlers import telephony_handlers
from hub.maintenance import Maintenance
from hub.settings import Settings
from intake.claims.service import claim_handlers
from intake.states import state_handlers
from routing.handlers import ROUTING_EVENTS, routing_handlers
from routing.notify import BusNotifier, Notifier, notification_handlers
from routing.sla import SlaMonitor
from storage.bus import EventBus, publish_event
from storage.events import Event, MessageOutbound
from storage.models import ChannelKind
from storage.outbox import Handler, Handlers, OutboxWorker, WorkerOptions

log = logging.getLogger(__name__)


def bus_publisher(context: HubContext) -> Handler[Event]:
    """Every event goes to the bus for open inbox pages (live updates)."""

    async def publish(_session: AsyncSession, event: Event, event_id: int) -> None:
        await publish_event(context.bus, event, event_id=event_id)

    return publish


def merge(*tables: Handlers) -> dict[type[Event], list[Handler[Any]]]:
    merged: dict[type[Event], list[Handler[Any]]] = {}
    for table in tables:
        for kind, handlers in table.items():
            merged.setdefault(kind, []).extend(handlers)
    return merged


def handlers(
    context: HubContext,
    settings: Settings | None = None,
    delivery: DeliveryWorker | None = None,
) -> dict[type[Event], list[Handler[Any]]]:
    engine = context.routing
    # The managers' bot notifies only managers who linked their Telegram.
    notifiers: list[Notifier] = [BusNotifier(context.bus), TelegramNotifier(context.bots)]
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
    tables: list[Handlers] = [
        routing_handlers(engine, SlaMonitor(engine)),
        notification_handlers(notifiers),
        telephony_handlers(context.bus),
        claim_handlers(DELIVERABLE_KINDS),
        greeting_handlers(DELIVERABLE_KINDS),
        state_handlers(engine.clock),
        {Event: [bus_publisher(context)]},
    ]
    if delivery is not None:

        async def wake_delivery(
            _session: AsyncSession, _event: MessageOutbound, _event_id: int
        ) -> None:
            delivery.wake()  # the reply is committed; the delivery worker sends it

        tables.append({MessageOutbound: [wake_delivery]})
    return merge(*tables)


# Channel kinds with a sender: clients who came by them can be written to.
DELIVERABLE_KINDS = frozenset({ChannelKind.EMAIL, ChannelKind.TELEGRAM})


def build_delivery(context: HubContext) -> DeliveryWorker:
    """Outbound delivery, one sender per channel kind that can send."""
    return DeliveryWorker(
        context.db,
        {
            ChannelKind.EMAIL: EmailSender(context.blobs, context.secret),
            ChannelKind.TELEGRAM: TelegramSender(context),
        },
    )


def build_worker(
    context: HubContext, settings: Settings, delivery: DeliveryWorker | None = None
) -> OutboxWorker:
    options = WorkerOptions(
        poll_interval_seconds=settings.worker_poll_seconds,
        max_attempts=settings.outbox_max_attempts,
        solo_events=ROUTING_EVENTS,
        # Routing decides again from the event whatever a crash takes away: its
        # transactions need not wait for the disk.
        redoable_events=ROUTING_EVENTS,
        # A new conversation reaches its manager without waiting behind the backlog of
        # notifications, live updates and the rest: routing's events have a lane of their own.
        first_events=ROUTING_EVENTS,
    )
    return OutboxWorker(context.db, handlers(context, settings, delivery), options)


Service = Callable[[asyncio.Event], Awaitable[None]]


# SQLite's processes share no NOTIFY: a commit that wrote outbox events in an answering
# process is announced on the bus (Redis), and the worker process wakes to it.
OUTBOX_COMMITTED = "outbox.committed"


class CommitAnnouncer:
    """`Database.on_outbox_commit`'s callback in an answering process on SQLite: announces
    the commit on the bus. Commits that come while an announcement is on its way make one
    more, not one each: the worker takes everything due when it wakes."""

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus
        self._sending: asyncio.Task[None] | None = None
        self._again = False

    def __call__(self) -> None:
        if self._sending is not None and not self._sending.done():
            self._again = True
            return
        self._sending = asyncio.get_running_loop().create_task(self._announce())

    async def _announce(self) -> None:
        while True:
            self._again = False
            try:
                await self.bus.publish(OUTBOX_COMMITTED, {})
            except Exception:
                log.warning("outbox commit not announced; the worker polls", exc_info=True)
                return
            if not self._again:
                return


def announce_commits(context: HubContext, settings: Settings) -> None:
    """In an answering process without the worker, on SQLite with a shared bus: every
    commit of outbox events wakes the worker process (PostgreSQL's NOTIFY does it there)."""
    if not settings.run_worker and context.db.is_sqlite and settings.redis_url:
        context.db.on_outbox_commit(CommitAnnouncer(context.bus))


def wakeups(bus: EventBus, worker: OutboxWorker) -> Service:
    """The worker process's side of `announce_commits`: wake the outbox worker whenever an
    answering process announces a commit."""

    async def listen(stop: asyncio.Event) -> None:
        async with bus.subscribe(OUTBOX_COMMITTED) as subscription:
            while not stop.is_set():
                if await subscription.get(timeout=0.5) is not None:
                    worker.wake()

    return listen


def background_services(context: HubContext, settings: Settings) -> dict[str, Service]:
    """What a worker process runs until stopped: the outbox, delivery, maintenance (pruning
    rows past retention) and the mailbox and bot pollers."""
    delivery = build_delivery(context)
    worker = build_worker(context, settings, delivery)
    services: dict[str, Service] = {
        "outbox-worker": worker.run,
        "delivery": delivery.run,
        "maintenance": Maintenance(context.db, settings).run,
    }
    if context.db.is_sqlite and settings.redis_url:
        services["outbox-wakeups"] = wakeups(context.bus, worker)
    if settings.poll_mailboxes:
        services["imap-pollers"] = EmailPollers(context, EmailIntake(context)).run
    if settings.poll_telegram:
        services["telegram-pollers"] = TelegramPollers(context).run
    return services


async def run_services(services: Mapping[str, Service], stop: asyncio.Event) -> None:
    """Run them side by side until `stop`; one failing does not stop the others."""

    async def guarded(name: str, service: Service) -> None:
        try:
            await service(stop)
        except Exception:
            log.exception("%s stopped with an error", name)

    await asyncio.gather(*(guarded(name, service) for name, service in services.items()))
