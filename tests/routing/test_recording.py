"""How a decision is written: in one statement on PostgreSQL, with the session's objects
left in step with the rows, and only if the chosen manager's row is still as it was read:
else nothing is written and the decision is taken again on what is there now."""

from __future__ import annotations

import asyncio
from dataclasses import fields, replace

import pytest
from sqlalchemy import select

from routing.engine import RoutingEngine
from routing.presence import set_presence
from routing.repository import (
    DecisionEvent,
    DecisionRow,
    QueueState,
    RoutingRepository,
    RowChanged,
    RowRef,
)
from storage.db import Database
from storage.events import ConversationAssigned
from storage.models import (
    Assignment,
    Channel,
    ChannelKind,
    Contact,
    Conversation,
    Lead,
    Manager,
    OutboxEvent,
    Presence,
    Queue,
    QueueMember,
    RoutingRule,
    RoutingState,
    Strategy,
)
from storage.types import utcnow
from tests.factories import form_conversations


async def _setup(
    db: Database, *, capacity: int, conversations: int, strategy: Strategy = Strategy.EVENLY
) -> tuple[int, list[int]]:
    async with db.transaction() as session:
        queue = Queue(
            key="sales",
            name="Продажи",
            strategy=strategy,
            forward_after_seconds=300,
            sla={"normal": {"first_response": 3600}},
        )
        session.add(queue)
        await session.flush()
        channel = Channel(
            key="site", kind=ChannelKind.WEBFORM, title="site", config={}, default_queue_id=queue.id
        )
        manager = Manager(email="anna@example.ru", name="Анна", capacity=capacity)
        session.add_all([channel, manager])
        await session.flush()
        session.add(QueueMember(queue_id=queue.id, manager_id=manager.id, position=0))
        await set_presence(session, manager.id, Presence.ONLINE, now=utcnow(), ttl_seconds=3600)
        channel_id, manager_id = channel.id, manager.id
    return manager_id, await form_conversations(db, channel_id, conversations)


async def test_a_decision_leaves_the_session_in_step_with_the_rows(db: Database) -> None:
    manager_id, [conversation_id] = await _setup(
        db, capacity=5, conversations=1, strategy=Strategy.STRICT_ORDER
    )
    engine = RoutingEngine()
    async with db.transaction() as session:
        decision = await engine.route(session, conversation_id)
        assert decision is not None and decision.manager_id == manager_id
        conversation = await session.get(Conversation, conversation_id)
        assert conversation is not None
        # What the decision wrote is the objects' committed state: nothing left to flush.
        assert conversation.assignee_id == manager_id
        assert conversation.routing_state == RoutingState.ASSIGNED
        assert conversation.first_response_due_at is not None
        assert not session.dirty
        seen = (conversation.assignee_id, conversation.first_response_due_at)
    async with db.read() as session:
        row = await session.get(Conversation, conversation_id)
        assert row is not None
        assert (row.assignee_id, row.first_response_due_at) == seen
        contact = await session.get(Contact, row.contact_id)
        assert contact is not None and contact.owner_id == manager_id
        lead = (
            await session.scalars(select(Lead).where(Lead.conversation_id == conversation_id))
        ).one()
        assert lead.assignee_id == manager_id
        manager = await session.get(Manager, manager_id)
        assert manager is not None and manager.last_assigned_at is not None
        assignment = (
            await session.scalars(
                select(Assignment).where(Assignment.conversation_id == conversation_id)
            )
        ).one()
        assert assignment.id == decision.assignment_id
        assert assignment.state == RoutingState.ASSIGNED and assignment.ended_at is None
        events = (
            await session.scalars(
                select(OutboxEvent).where(
                    OutboxEvent.topic.in_(
                        ["conversation.assigned", "routing.forward_due", "sla.due"]
                    )
                )
            )
        ).all()
        assert sorted(e.topic for e in events) == [
            "conversation.assigned",
            "routing.forward_due",
            "sla.due",
        ]
        for event in events:
            assert event.payload["assignment_id"] == assignment.id
            assert event.payload["conversation_id"] == conversation_id
        forward = next(e for e in events if e.topic == "routing.forward_due")
        assert (forward.due_at - assignment.created_at).total_seconds() == pytest.approx(300, abs=5)


async def test_a_second_decision_ends_the_first_assignment(db: Database) -> None:
    manager_id, [conversation_id] = await _setup(db, capacity=5, conversations=1)
    engine = RoutingEngine()
    async with db.transaction() as session:
        first = await engine.route(session, conversation_id)
    async with db.transaction() as session:
        second = await engine.assign(session, conversation_id, manager_id, actor_manager_id=None)
    assert first is not None and first.assignment_id != second.assignment_id
    async with db.read() as session:
        rows = (
            await session.scalars(
                select(Assignment)
                .where(Assignment.conversation_id == conversation_id)
                .order_by(Assignment.id)
            )
        ).all()
    assert [r.id for r in rows] == [first.assignment_id, second.assignment_id]
    assert rows[0].ended_at is not None and rows[1].ended_at is None


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_a_decision_waiting_for_another_workers_assignment_is_taken_again(
    db: Database,
) -> None:
    """Worker A assigns the queue's only manager (capacity 1) and has not committed;
    worker B, routing another conversation, reads the manager as free and waits for the
    manager's row to write its decision. When A commits, B's write must find the row
    changed, write nothing, and decide again counting A's assignment."""
    manager_id, [first, second] = await _setup(db, capacity=1, conversations=2)
    engine = RoutingEngine()

    async def route_second() -> RoutingState:
        async with db.transaction() as session:
            decision = await engine.route(session, second)
            assert decision is not None
            return decision.state

    async with db.transaction() as session:
        decision = await engine.route(session, first)
        assert decision is not None and decision.manager_id == manager_id
        waiting = asyncio.create_task(route_second())
        await asyncio.sleep(0.5)
        assert not waiting.done(), "B should wait for the manager's row lock"
    assert await asyncio.wait_for(waiting, 10) == RoutingState.WAITING
    async with db.read() as session:
        assigned = (
            await session.scalars(
                select(Conversation.id).where(Conversation.assignee_id == manager_id)
            )
        ).all()
    assert assigned == [first]


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_rows_read_on_the_driver_match_the_sessions_reading(db: Database) -> None:
    """On PostgreSQL a decision reads straight from asyncpg, without SQLAlchemy's result
    processing: the rows must come out as the session would give them."""
    manager_id, [conversation_id] = await _setup(db, capacity=3, conversations=1)
    engine = RoutingEngine()
    async with db.transaction() as session:
        await engine.route(session, conversation_id)
    async with db.read() as session:
        queue_id = (await session.scalars(select(Queue.id))).one()
    now = utcnow()
    async with db.transaction() as session:
        repo = RoutingRepository(session)
        loaded = await repo.lock_for_decision(conversation_id, now)  # begins on the driver
        ahead = await repo.members(queue_id, now)  # read with the conversation
        on_driver = await repo.members(queue_id, now)  # read on its own
        query = repo._members_query()
        through_session = (await session.execute(query, {"queue_id": queue_id, "at": now})).all()
        assert [
            tuple(row) for row in await repo._rows(query, {"queue_id": queue_id, "at": now})
        ] == [tuple(row) for row in through_session]
        owners, absent = await repo.lock_managers([manager_id], now)
        orm = await RoutingRepository(session).lock_conversation(conversation_id)
        assert loaded is not None and orm is not None
        pairs = [
            (loaded, orm),
            (await repo.contact(orm.contact_id), await session.get(Contact, orm.contact_id)),
            (await repo.channel(orm.channel_id), await session.get(Channel, orm.channel_id)),
            (await repo.queue(queue_id), await session.get(Queue, queue_id)),
            (
                await repo.lead_of(conversation_id),
                (
                    await session.scalars(
                        select(Lead).where(Lead.conversation_id == conversation_id)
                    )
                ).one(),
            ),
        ]
        for row, obj in pairs:
            assert isinstance(row, DecisionRow | QueueState) and obj is not None
            assert not isinstance(row, DecisionRow) or row.pending() == {}
            for field in fields(row):
                value, seen = getattr(row, field.name), getattr(obj, field.name)
                assert (field.name, value, type(value)) == (field.name, seen, type(seen))
    assert ahead == on_driver
    assert on_driver.load == {manager_id: 1}
    assert on_driver.managers[manager_id].last_assigned_at is not None
    # Read without a lock, the members carry their rows' versions; locked, no need.
    assert on_driver.managers[manager_id].version is not None
    assert owners == {manager_id: replace(on_driver.managers[manager_id], version=None)}
    assert absent == set()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_a_manager_row_changed_since_it_was_read_voids_the_whole_decision(
    db: Database,
) -> None:
    manager_id, [conversation_id] = await _setup(db, capacity=3, conversations=1)
    async with db.read() as session:
        queue_id = (await session.scalars(select(Queue.id))).one()
    now = utcnow()
    async with db.transaction() as session:
        repo = RoutingRepository(session)
        conversation = await repo.lock_conversation(conversation_id)
        assert conversation is not None
        seen = (await repo.members(queue_id, now)).managers[manager_id]
        async with db.transaction() as other:  # e.g. the manager's heartbeat, meanwhile
            await set_presence(other, manager_id, Presence.ONLINE, now=now, ttl_seconds=60)
        conversation.priority = "high"  # pending on the object: written with the rest
        with pytest.raises(RowChanged):
            await repo.record(
                {
                    "conversation_id": conversation_id,
                    "state": RoutingState.ASSIGNED,
                    "manager_id": manager_id,
                    "queue_id": queue_id,
                    "reason": "strategy",
                },
                [
                    (conversation, {"assignee_id": manager_id}),
                    (RowRef(Manager, manager_id, seen.version), {"last_assigned_at": now}),
                ],
                [
                    DecisionEvent(
                        ConversationAssigned(conversation_id=conversation_id, manager_id=manager_id)
                    )
                ],
                end_open_of=conversation_id,
                at=now,
            )
        # The same decision on the row as it is now goes through.
        fresh = (await repo.members(queue_id, now)).managers[manager_id]
        assert fresh.version != seen.version
        assignment_id = await repo.record(
            {
                "conversation_id": conversation_id,
                "state": RoutingState.ASSIGNED,
                "manager_id": manager_id,
                "queue_id": queue_id,
                "reason": "strategy",
            },
            [
                (conversation, {"assignee_id": manager_id}),
                (RowRef(Manager, manager_id, fresh.version), {"last_assigned_at": now}),
            ],
            [
                DecisionEvent(
                    ConversationAssigned(conversation_id=conversation_id, manager_id=manager_id)
                )
            ],
            end_open_of=conversation_id,
            at=now,
        )
    async with db.read() as session:
        assignments = (
            await session.scalars(
                select(Assignment.id).where(Assignment.conversation_id == conversation_id)
            )
        ).all()
        assert assignments == [assignment_id]
        events = (
            await session.scalars(
                select(OutboxEvent).where(OutboxEvent.topic == "conversation.assigned")
            )
        ).all()
        assert [e.payload["assignment_id"] for e in events] == [assignment_id]
        row = await session.get(Conversation, conversation_id)
        assert row is not None and (row.assignee_id, row.priority) == (manager_id, "high")


async def test_what_a_rule_set_is_kept_when_the_decision_writes_nothing(db: Database) -> None:
    """A conversation still waiting for the same reason gets no new record; what a rule
    set on it (tags, priority) is written all the same."""
    manager_id, [conversation_id, other] = await _setup(db, capacity=1, conversations=2)
    engine = RoutingEngine()
    async with db.transaction() as session:
        first = await engine.route(session, conversation_id)
    assert first is not None and first.manager_id == manager_id
    async with db.transaction() as session:
        waiting = await engine.route(session, other)
    assert waiting is not None and waiting.state == RoutingState.WAITING
    async with db.transaction() as session:
        session.add(
            RoutingRule(
                name="ВИП",
                position=0,
                conditions={"channel_kind": ["webform"]},
                actions={"priority": "high", "tags": ["vip"]},
            )
        )
    async with db.transaction() as session:
        again = await engine.route(session, other)
    assert again is not None and again.state == RoutingState.WAITING
    assert again.assignment_id is None  # the same wait: nothing new recorded
    async with db.read() as session:
        row = await session.get(Conversation, other)
        assert row is not None and (row.priority, row.tags) == ("high", ["vip"])
        assert row.routing_state == RoutingState.WAITING
