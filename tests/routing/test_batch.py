"""Routing in batches decides as routing one conversation after another does (hypothesis).

Each example builds the same world twice in one database (a queue, its managers,
contacts and new conversations; two copies with their own rows): one copy is routed
conversation by conversation with `RoutingEngine.route`, each in its own transaction,
the other in one batch (`route_batch`). Everything routing wrote is then compared,
with each copy's ids replaced by positions in its own copy.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from intake.ingest import IntakeConfig, ingest
from intake.schemas import IdentityIn, InboundMessage
from routing.batch import route_batch
from routing.engine import RoutingEngine
from storage.db import Database
from storage.models import (
    Assignment,
    Channel,
    ChannelKind,
    Contact,
    Conversation,
    IdentityKind,
    Lead,
    Manager,
    ManagerAbsence,
    OutboxEvent,
    Presence,
    Queue,
    QueueMember,
    Strategy,
)

NOW = datetime(2031, 3, 4, 10, 0, tzinfo=UTC)
_copies = itertools.count(1)
IMMEDIATE = ("conversation.assigned", "conversation.waiting")


@dataclass(frozen=True)
class ManagerSpec:
    capacity: int
    online: bool
    active: bool
    absent: bool
    languages: tuple[str, ...]
    assigned_minutes_ago: int | None


@dataclass(frozen=True)
class World:
    strategy: Strategy
    respect_hours: bool
    managers: list[ManagerSpec]
    # Per conversation: its contact (an index; a repeated one writes again) and language.
    conversations: list[tuple[int, str | None]]
    owners: dict[int, int]  # contact index -> manager index, set before routing


managers_st = st.builds(
    ManagerSpec,
    capacity=st.integers(0, 3),
    online=st.booleans(),
    active=st.booleans() | st.just(True),
    absent=st.sampled_from([False, False, True]),
    languages=st.sampled_from([(), ("ru",), ("en",), ("ru", "en")]),
    assigned_minutes_ago=st.none() | st.integers(1, 5),
)


@st.composite
def worlds(draw: st.DrawFn) -> World:
    managers = draw(st.lists(managers_st, min_size=0, max_size=5))
    contacts = draw(st.integers(1, 6))
    conversations = draw(
        st.lists(
            st.tuples(st.integers(0, contacts - 1), st.sampled_from([None, "ru", "en"])),
            min_size=1,
            max_size=12,
        )
    )
    owners = {}
    if managers:
        owners = draw(
            st.dictionaries(
                st.integers(0, contacts - 1), st.integers(0, len(managers) - 1), max_size=2
            )
        )
    return World(
        strategy=draw(
            st.sampled_from([Strategy.EVENLY, Strategy.LEAST_LOADED, Strategy.STRICT_ORDER])
        ),
        respect_hours=draw(st.booleans()),
        managers=managers,
        conversations=conversations,
        owners=owners,
    )


@dataclass
class Copy:
    queue_id: int
    managers: list[int]
    conversations: list[int]
    contacts: list[int]


async def build(db: Database, world: World) -> Copy:
    n = next(_copies)
    async with db.transaction() as session:
        queue = Queue(
            key=f"batch-{n}",
            name="Продажи",
            strategy=world.strategy,
            forward_after_seconds=120,
            respect_member_hours=world.respect_hours,
            sla={"normal": {"first_response": 900}},
            retry_seconds=60,
        )
        session.add(queue)
        await session.flush()
        channel = Channel(
            key=f"batch-{n}",
            kind=ChannelKind.WEBFORM,
            title="form",
            config={},
            default_queue_id=queue.id,
        )
        managers = [
            Manager(
                email=f"b{n}-{i}@example.ru",
                name=f"Менеджер {i}",
                is_active=spec.active,
                presence=Presence.ONLINE if spec.online else Presence.OFFLINE,
                presence_expires_at=NOW + timedelta(days=1),
                capacity=spec.capacity,
                languages=list(spec.languages),
                last_assigned_at=None
                if spec.assigned_minutes_ago is None
                else NOW - timedelta(minutes=spec.assigned_minutes_ago),
            )
            for i, spec in enumerate(world.managers)
        ]
        session.add(channel)
        session.add_all(managers)
        await session.flush()
        session.add_all(
            QueueMember(queue_id=queue.id, manager_id=m.id, position=len(managers) - i)
            for i, m in enumerate(managers)
        )
        session.add_all(
            ManagerAbsence(
                manager_id=m.id, starts_at=NOW - timedelta(days=1), ends_at=NOW + timedelta(days=1)
            )
            for m, spec in zip(managers, world.managers, strict=True)
            if spec.absent
        )
        conversations = []
        contacts: dict[int, int] = {}
        for i, (contact, language) in enumerate(world.conversations):
            result = await ingest(
                session,
                InboundMessage(
                    channel_id=channel.id,
                    channel_kind=ChannelKind.WEBFORM,
                    external_id=f"b{n}-{i}",
                    identities=[IdentityIn(IdentityKind.EMAIL, f"c{n}-{contact}@example.ru")],
                    text="Здравствуйте",
                    contact_language=language,
                ),
                IntakeConfig(),
            )
            conversations.append(result.conversation_id)
            contacts.setdefault(contact, result.contact_id)
        for contact, manager in world.owners.items():
            if contact in contacts:
                row = await session.get(Contact, contacts[contact])
                assert row is not None
                row.owner_id = managers[manager].id
        return Copy(
            queue.id,
            [m.id for m in managers],
            conversations,
            [contacts[c] for c in sorted(contacts)],
        )


async def written(db: Database, copy: Copy) -> dict[str, Any]:
    """What routing wrote in this copy, its ids replaced by positions in the copy."""
    manager = {m: f"M{i}" for i, m in enumerate(copy.managers)}
    conversation = {c: f"C{i}" for i, c in enumerate(copy.conversations)}

    def named(value: Any) -> Any:
        if isinstance(value, dict):
            return {
                manager.get(int(k), k) if k.isdigit() else k: named(v) for k, v in value.items()
            }
        if isinstance(value, list):
            return [named(v) for v in value]
        return value

    async with db.read() as session:
        conversations = (
            await session.scalars(
                select(Conversation)
                .where(Conversation.id.in_(copy.conversations))
                .order_by(Conversation.id)
            )
        ).all()
        assignments = (
            await session.scalars(
                select(Assignment)
                .where(Assignment.conversation_id.in_(copy.conversations))
                .order_by(Assignment.conversation_id, Assignment.id)
            )
        ).all()
        leads = (
            await session.scalars(
                select(Lead).where(Lead.conversation_id.in_(copy.conversations)).order_by(Lead.id)
            )
        ).all()
        contacts = (
            await session.scalars(select(Contact).where(Contact.id.in_(copy.contacts)))
        ).all()
        managers = (
            await session.scalars(
                select(Manager).where(Manager.id.in_(copy.managers)).order_by(Manager.id)
            )
        ).all()
        events = (
            await session.scalars(
                select(OutboxEvent)
                .where(
                    OutboxEvent.topic.in_(
                        [
                            "conversation.assigned",
                            "conversation.waiting",
                            "routing.retry",
                            "routing.forward_due",
                            "sla.due",
                        ]
                    )
                )
                .order_by(OutboxEvent.id)
            )
        ).all()
    ids = {a.id: f"A{n}" for n, a in enumerate(assignments)}
    mine = [e for e in events if e.payload.get("conversation_id") in conversation]
    return {
        "conversations": [
            (
                conversation[c.id],
                c.routing_state,
                manager.get(c.assignee_id or 0),
                c.queue_id == copy.queue_id,
                c.waiting_reason,
                c.assigned_at,
                c.first_response_due_at,
            )
            for c in conversations
        ],
        "assignments": [
            (
                conversation[a.conversation_id],
                a.state,
                manager.get(a.manager_id or 0),
                a.queue_id == copy.queue_id,
                a.reason,
                a.explanation,
                named(a.detail),
                a.ended_at,
            )
            for a in assignments
        ],
        "leads": sorted(
            (conversation[x.conversation_id], manager.get(x.assignee_id or 0)) for x in leads
        ),
        "owners": sorted(manager.get(c.owner_id or 0) or "-" for c in contacts),
        "managers": [m.last_assigned_at for m in managers],
        "events": sorted(
            (
                e.topic,
                conversation[e.payload["conversation_id"]],
                ids.get(e.payload.get("assignment_id")),
                manager.get(e.payload.get("manager_id") or 0),
                e.payload.get("reason"),
                e.payload.get("explanation"),
                e.due_at if e.topic not in IMMEDIATE else None,  # those are due at commit
            )
            for e in mine
        ),
    }


async def compare(db: Database, world: World) -> None:
    engine = RoutingEngine(clock=lambda: NOW)
    one_by_one = await build(db, world)
    together = await build(db, world)
    for conversation_id in one_by_one.conversations:
        async with db.transaction() as session:
            await engine.route(session, conversation_id)
    async with db.transaction() as session:
        await route_batch(engine, session, together.conversations)
    assert await written(db, together) == await written(db, one_by_one)


@pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)
def test_batch_decides_as_one_at_a_time(db_url: str) -> None:
    with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:
        db = Database(db_url, pool_size=4)

        @settings(
            max_examples=60 if db.is_sqlite else 25,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(world=worlds())
        def check(world: World) -> None:
            runner.run(compare(db, world))

        try:
            check()
        finally:
            runner.run(db.dispose())
