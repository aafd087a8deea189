"""The worker's handler tables against the event catalogue, and rows already in an
outbox (written before the catalogue) handled by the hub's own handlers."""

from __future__ import annotations

import inspect
import types
import typing
from typing import Any

from sqlalchemy import delete, select

import storage.events as events
from hub.worker import build_delivery, handlers
from storage.events import CATALOGUE, Event
from storage.models import Assignment, Conversation, OutboxEvent, OutboxStatus, RoutingState
from storage.outbox import BatchHandler, OutboxWorker
from storage.types import utcnow
from tests.factories import create_channel, ingest_message


def hub_table(app: Any) -> dict[type[Event], list[Any]]:
    context = app.state.context
    return handlers(context, None, build_delivery(context))


def accepted(handler: Any) -> set[type[Event]]:
    """The event types a handler's second parameter is annotated with (a batch handler's
    own handler for one event)."""
    if isinstance(handler, BatchHandler):
        handler = handler.each
    name = list(inspect.signature(handler).parameters)[1]
    hint = typing.get_type_hints(handler)[name]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return set(typing.get_args(hint))
    return {hint}


class TestCatalogueAndTables:
    async def test_every_event_has_a_handler_or_is_declared_bus_only(self, app: Any) -> None:
        table = hub_table(app)
        declared = {k for k in CATALOGUE.values() if k.__module__ == events.__name__}
        handled = {kind for kind, found in table.items() if kind is not Event and found}

        unhandled = {k.topic for k in declared - handled if not k.bus_only}
        assert unhandled == set(), "declare these bus_only=True or give them a handler"
        wrongly_bus_only = {k.topic for k in handled if k.bus_only}
        assert wrongly_bus_only == set(), "these have handlers: not bus-only"
        assert handled <= declared, "handler tables name only the catalogue's events"
        # The bus gets every event: live updates of open pages.
        assert len(table[Event]) == 1

    async def test_each_handler_takes_the_event_type_it_is_keyed_by(self, app: Any) -> None:
        for kind, found in hub_table(app).items():
            for handler in found:
                assert any(issubclass(kind, hint) for hint in accepted(handler)), (
                    f"{handler!r} is keyed by {kind.__name__}"
                )


class TestRowsWrittenBeforeTheCatalogue:
    async def test_an_old_conversation_opened_row_is_routed(self, app: Any) -> None:
        db = app.state.context.db
        channel = await create_channel(db)
        result = await ingest_message(db, channel, text="Здравствуйте")
        async with db.transaction() as session:
            await session.execute(delete(OutboxEvent))  # the new code's own rows
            # The row as the hub wrote it before event types: a hand-built dict.
            session.add(
                OutboxEvent(
                    topic="conversation.opened",
                    payload={
                        "conversation_id": result.conversation_id,
                        "contact_id": result.contact_id,
                        "channel_id": channel.id,
                    },
                    due_at=utcnow(),
                    status=OutboxStatus.PENDING,
                    attempts=0,
                )
            )

        worker = OutboxWorker(db, hub_table(app))
        await worker.run_once()

        async with db.read() as session:
            conversation = await session.get(Conversation, result.conversation_id)
            rows = (await session.scalars(select(OutboxEvent).order_by(OutboxEvent.id))).all()
            assignments = (
                await session.scalars(
                    select(Assignment).where(Assignment.conversation_id == result.conversation_id)
                )
            ).all()
        assert rows[0].status == OutboxStatus.DONE, rows[0].last_error
        assert conversation is not None
        # No queue and no owner: routing recorded the wait, with its reason.
        assert conversation.routing_state == RoutingState.WAITING
        assert [a.state for a in assignments] == [RoutingState.WAITING]
        waiting = [row for row in rows if row.topic == "conversation.waiting"]
        assert [row.payload for row in waiting] == [
            {
                "conversation_id": result.conversation_id,
                "queue_id": None,
                "reason": conversation.waiting_reason,
                "assignment_id": assignments[0].id,
            }
        ]
