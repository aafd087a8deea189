"""How a decision is written: in one statement on PostgreSQL, with the session's objects
left in step with the rows, and with counts that are right even when a lock had to wait
for another worker's assignment."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from routing.engine import RoutingEngine
from routing.presence import set_presence
from routing.repository import RoutingRepository
from storage.db import Database
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
async def test_counts_are_read_again_when_a_lock_waited_for_an_assignment(
    db: Database,
) -> None:
    """Worker A assigns the queue's only manager (capacity 1) and holds its locks; worker
    B, routing another conversation, waits for the manager's row. When A commits, B must
    count A's assignment, although its statement's snapshot was taken before."""
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
async def test_members_read_on_the_driver_match_the_sessions_reading(db: Database) -> None:
    """Inside a begun transaction the members' statement goes straight to asyncpg; before
    any statement it runs on the session's connection. Both read the same."""
    manager_id, [conversation_id] = await _setup(db, capacity=3, conversations=1)
    engine = RoutingEngine()
    async with db.transaction() as session:
        await engine.route(session, conversation_id)
    async with db.read() as session:
        queue_id = (await session.scalars(select(Queue.id))).one()
    now = utcnow()
    async with db.transaction() as session:
        before_begin = await RoutingRepository(session).lock_members(queue_id, now)
    async with db.transaction() as session:
        repo = RoutingRepository(session)
        await repo.lock_conversation(conversation_id)  # begins the transaction
        on_driver = await repo.lock_members(queue_id, now)
        owners, absent = await repo.lock_managers([manager_id], now)
    assert on_driver == before_begin
    assert on_driver.load == {manager_id: 1}
    assert on_driver.managers[manager_id].last_assigned_at is not None
    assert owners == {manager_id: on_driver.managers[manager_id]} and absent == set()
