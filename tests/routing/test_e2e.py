"""Routing end to end: requests come in through the hub's real endpoints (the web form),
the outbox worker routes them (drained here with a controlled clock), and the results
are read back through the REST API and the outbox table.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from intake.conversations import add_reply
from routing.engine import RoutingEngine
from routing.handlers import routing_handlers
from routing.presence import set_presence
from routing.sla import SlaMonitor
from storage.db import Database
from storage.models import (
    Assignment,
    Channel,
    Contact,
    Manager,
    OutboxEvent,
    Presence,
    Queue,
    QueueMember,
    RoutingRule,
    Strategy,
)
from storage.outbox import OutboxWorker
from tests.factories import create_token


class Clock:
    def __init__(self) -> None:
        # Ahead of the wall clock, so events written with the real time are due at once.
        self.now = datetime.now(UTC) + timedelta(hours=1)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Hub:
    """The app under test, its worker (drained on demand) and an operator's API token."""

    def __init__(self, app: Any, client: httpx.AsyncClient, headers: dict[str, str]) -> None:
        self.db: Database = app.state.context.db
        self.client = client
        self.headers = headers
        self.clock = Clock()
        engine = RoutingEngine(clock=self.clock)
        self.worker = OutboxWorker(
            self.db,
            routing_handlers(engine, SlaMonitor(engine, clock=self.clock)),
            clock=self.clock,
        )

    async def drain(self) -> None:
        await self.worker.drain(max_rounds=1000)

    async def submit(self, email: str, message: str) -> int:
        response = await self.client.post(
            "/forms/default",
            json={"name": "Иван Петров", "email": email, "message": message, "consent": True},
        )
        assert response.status_code == 201, response.text
        return int(response.json()["conversation_id"])

    async def conversation(self, conversation_id: int) -> dict[str, Any]:
        response = await self.client.get(
            f"/api/v1/conversations/{conversation_id}", headers=self.headers
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def managers(self, *names: str, online: bool = True) -> list[int]:
        ids = []
        async with self.db.transaction() as session:
            for name in names:
                manager = Manager(email=f"{name}@example.ru", name=name, capacity=10)
                session.add(manager)
                await session.flush()
                if online:
                    await set_presence(
                        session, manager.id, Presence.ONLINE, now=self.clock(), ttl_seconds=86400
                    )
                ids.append(manager.id)
        return ids

    async def queue(
        self, key: str, members: list[int], *, default: bool = False, **settings: Any
    ) -> int:
        async with self.db.transaction() as session:
            queue = Queue(key=key, name=key.title(), **{"sla": {}, **settings})
            session.add(queue)
            await session.flush()
            session.add_all(
                QueueMember(queue_id=queue.id, manager_id=m, position=i)
                for i, m in enumerate(members)
            )
            if default:
                channel = (
                    await session.scalars(select(Channel).where(Channel.key == "default"))
                ).one()
                channel.default_queue_id = queue.id
            return queue.id

    async def history(self, conversation_id: int) -> list[Assignment]:
        async with self.db.read() as session:
            return list(
                (
                    await session.scalars(
                        select(Assignment)
                        .where(Assignment.conversation_id == conversation_id)
                        .order_by(Assignment.id)
                    )
                ).all()
            )

    async def events(self, topic: str) -> list[OutboxEvent]:
        async with self.db.read() as session:
            return list(
                (
                    await session.scalars(
                        select(OutboxEvent)
                        .where(OutboxEvent.topic == topic)
                        .order_by(OutboxEvent.id)
                    )
                ).all()
            )


@pytest.fixture
async def hub(app: Any, client: httpx.AsyncClient) -> Hub:
    token, _row = await create_token(app.state.context.db, name="operator")
    return Hub(app, client, {"Authorization": f"Bearer {token}"})


async def test_a_known_contact_goes_to_its_owner(hub: Hub) -> None:
    ann, bob = await hub.managers("ann", "bob")
    (owner,) = await hub.managers("olga", online=False)  # owner-first asks no presence
    await hub.queue("sales", [ann, bob], default=True)

    first = await hub.submit("client@example.ru", "Хочу узнать цены")
    await hub.drain()
    contact_id = (await hub.conversation(first))["contact_id"]
    async with hub.db.transaction() as session:
        contact = await session.get(Contact, contact_id)
        assert contact is not None
        assert contact.owner_id in (ann, bob)  # the first assignee became the owner
        contact.owner_id = owner

    second = await hub.submit("client@example.ru", "Ещё вопрос по заказу")
    assert second != first
    await hub.drain()

    detail = await hub.conversation(second)
    assert detail["contact_id"] == contact_id
    assert detail["assignee_id"] == owner
    (assignment,) = await hub.history(second)
    assert (assignment.state, assignment.manager_id, assignment.reason) == (
        "assigned",
        owner,
        "owner",
    )
    assert assignment.explanation == "the contact's responsible manager"
    assigned = [e.payload for e in await hub.events("conversation.assigned")]
    assert {"conversation_id": second, "manager_id": owner, "reason": "owner"}.items() <= (
        next(p for p in assigned if p["conversation_id"] == second).items()
    )


async def test_a_request_matching_a_rule_goes_to_the_rules_queue(hub: Hub) -> None:
    ann, claims_manager = await hub.managers("ann", "carl")
    await hub.queue("sales", [ann], default=True)
    claims = await hub.queue("claims", [claims_manager])
    async with hub.db.transaction() as session:
        session.add(
            RoutingRule(
                name="Претензии",
                position=1,
                conditions={"keywords": ["претензия", "жалоба"]},
                actions={"queue_id": claims, "priority": "high", "tags": ["claim"]},
            )
        )

    plain = await hub.submit("one@example.ru", "Хочу заказать доставку")
    claim = await hub.submit("two@example.ru", "ПРЕТЕНЗИЯ: товар пришёл разбитым")
    await hub.drain()

    assert (await hub.conversation(plain))["assignee_id"] == ann
    assert (await hub.conversation(claim))["assignee_id"] == claims_manager
    (assignment,) = await hub.history(claim)
    assert assignment.queue_id == claims
    assert assignment.reason == "strategy"
    assert "«Претензии»" in assignment.explanation
    (plain_assignment,) = await hub.history(plain)
    assert "the channel's default queue" in plain_assignment.explanation


async def test_an_unanswered_conversation_is_forwarded_after_the_idle_time(hub: Hub) -> None:
    first, second, third = await hub.managers("ann", "bob", "cid")
    await hub.queue(
        "calls",
        [first, second, third],
        default=True,
        strategy=Strategy.STRICT_ORDER,
        forward_after_seconds=120,
    )
    conversation_id = await hub.submit("client@example.ru", "Перезвоните мне")
    await hub.drain()
    assert (await hub.conversation(conversation_id))["assignee_id"] == first

    hub.clock.advance(119)
    await hub.drain()
    assert (await hub.conversation(conversation_id))["assignee_id"] == first

    hub.clock.advance(2)
    await hub.drain()
    assert (await hub.conversation(conversation_id))["assignee_id"] == second
    hub.clock.advance(121)
    await hub.drain()
    assert (await hub.conversation(conversation_id))["assignee_id"] == third
    hub.clock.advance(121)  # and round again
    await hub.drain()
    assert (await hub.conversation(conversation_id))["assignee_id"] == first

    history = await hub.history(conversation_id)
    assert [(a.manager_id, a.reason) for a in history] == [
        (first, "strategy"),
        (second, "forward"),
        (third, "forward"),
        (first, "forward"),
    ]
    assert all(a.ended_at is not None for a in history[:-1])
    assert history[-1].ended_at is None
    assert "not answered within 120 s" in history[1].explanation


async def test_a_missed_first_response_target_is_reported(hub: Hub) -> None:
    (ann,) = await hub.managers("ann")
    (supervisor,) = await hub.managers("sue", online=False)
    await hub.queue(
        "support",
        [ann],
        default=True,
        sla={"normal": {"first_response": 600}},
        supervisor_id=supervisor,
    )
    answered = await hub.submit("one@example.ru", "Вопрос, на который ответят")
    missed = await hub.submit("two@example.ru", "Вопрос без ответа")
    await hub.drain()
    assert (await hub.conversation(missed))["assignee_id"] == ann

    async with hub.db.transaction() as session:
        await add_reply(session, answered, text="Отвечаем!", manager_id=ann, now=hub.clock())

    hub.clock.advance(599)
    await hub.drain()
    assert await hub.events("sla.breached") == []

    hub.clock.advance(2)
    await hub.drain()
    breaches = [e.payload for e in await hub.events("sla.breached")]
    assert len(breaches) == 1, breaches
    (breach,) = breaches
    assert breach["conversation_id"] == missed
    assert breach["kind"] == "first_response"
    assert breach["manager_id"] == ann
    assert breach["supervisor_id"] == supervisor
    assert (await hub.conversation(answered))["first_response_at"] is not None
