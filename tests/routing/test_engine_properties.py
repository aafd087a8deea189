"""The routing engine under random sequences of arrivals, presence changes, replies,
closures, capacity changes and time passing (hypothesis stateful testing).

Everything runs through the real engine, intake and outbox worker on a real database,
with a controlled clock. Each example gets its own channel, queue and managers in the
test's database. The engine is wrapped so that each decision is recorded together
with what the test itself reads of every queue member at that moment (an independent
eligibility check), and the invariants are checked after every step.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import func, select, update

from intake.conversations import add_reply, close_conversation
from intake.ingest import IntakeConfig, ingest
from intake.schemas import IdentityIn, InboundMessage
from routing.engine import Decision, RoutingEngine
from routing.handlers import routing_handlers
from routing.presence import set_presence
from routing.repository import RoutingRepository
from routing.sla import SlaMonitor
from storage.db import Database
from storage.models import (
    Assignment,
    AssignmentReason,
    Channel,
    ChannelKind,
    Conversation,
    ConversationStatus,
    Manager,
    ManagerAbsence,
    OutboxEvent,
    OutboxStatus,
    Presence,
    Queue,
    QueueMember,
    RoutingState,
    Strategy,
)
from storage.outbox import OutboxWorker

LONG_TTL = 10**8  # presence never lapses by itself here; presence changes are explicit
RETRY_SECONDS = 60
_ids = itertools.count(1)


class Clock:
    """Controlled time that ticks a microsecond per reading (distinct, monotonic instants)."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(microseconds=1)
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Seen:
    """One decision as the engine made it and the members as the test saw them then."""

    kind: str  # assign | wait | offer
    conversation_id: int
    queue_id: int | None
    at: datetime
    eligible: set[int]
    members: dict[int, dict[str, Any]]
    manager_id: int | None = None
    reason: str | None = None
    previous_manager_id: int | None = None
    previous_assigned_at: datetime | None = None
    previous_answered: bool = False
    takers: list[int] = field(default_factory=list)
    why: str = ""
    assignment_id: int | None = None


async def members_now(session: Any, queue_id: int, now: datetime, conversation_id: int) -> dict:
    """Each member's state read by the test itself (not through the engine's code)."""
    rows = (
        await session.execute(
            select(QueueMember.manager_id, QueueMember.position, Manager)
            .join(Manager, Manager.id == QueueMember.manager_id)
            .where(QueueMember.queue_id == queue_id)
        )
    ).all()
    result: dict[int, dict[str, Any]] = {}
    for manager_id, position, manager in rows:
        open_count = await session.scalar(
            select(func.count())
            .select_from(Conversation)
            .where(
                Conversation.assignee_id == manager_id,
                Conversation.status != ConversationStatus.CLOSED,
                Conversation.id != conversation_id,
            )
        )
        absent = await session.scalar(
            select(func.count())
            .select_from(ManagerAbsence)
            .where(
                ManagerAbsence.manager_id == manager_id,
                ManagerAbsence.starts_at <= now,
                ManagerAbsence.ends_at > now,
            )
        )
        online = manager.presence == Presence.ONLINE and (
            manager.presence_expires_at is None or manager.presence_expires_at > now
        )
        result[int(manager_id)] = {
            "position": int(position),
            "active": bool(manager.is_active),
            "online": online,
            "absent": bool(absent),
            "open": int(open_count or 0),
            "capacity": int(manager.capacity),
            "last_assigned_at": manager.last_assigned_at,
        }
    return result


def eligible_of(members: dict[int, dict[str, Any]]) -> set[int]:
    return {
        m
        for m, s in members.items()
        if s["active"] and s["online"] and not s["absent"] and s["open"] < s["capacity"]
    }


class AuditedEngine(RoutingEngine):
    """The real engine; each decision is also recorded with the members' state at that moment."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock=clock)
        self.seen: list[Seen] = []

    async def _snapshot(self, repo: RoutingRepository, conversation: Conversation, queue_id: Any):
        now = self.clock.now  # type: ignore[attr-defined]
        members = await members_now(repo.session, queue_id, now, conversation.id)
        current = await repo.current_assignment(conversation.id)
        return now, members, current

    async def _assign(self, repo, conversation, manager, queue_id, reason, explanation, now, **kw):  # type: ignore[no-untyped-def, override]
        previous_assigned_at = conversation.assigned_at
        answered = (
            conversation.last_outbound_at is not None
            and previous_assigned_at is not None
            and conversation.last_outbound_at >= previous_assigned_at
        )
        _at, members, current = await self._snapshot(repo, conversation, queue_id)
        decision: Decision = await super()._assign(
            repo, conversation, manager, queue_id, reason, explanation, now, **kw
        )
        self.seen.append(
            Seen(
                "assign",
                conversation.id,
                queue_id,
                now,
                eligible_of(members),
                members,
                manager_id=manager.id,
                reason=str(reason.value),
                previous_manager_id=current.manager_id if current is not None else None,
                previous_assigned_at=previous_assigned_at,
                previous_answered=answered,
                assignment_id=decision.assignment_id,
            )
        )
        return decision

    async def _wait(self, repo, conversation, queue, why, now, **kw):  # type: ignore[no-untyped-def, override]
        members: dict[int, dict[str, Any]] = {}
        current = await repo.current_assignment(conversation.id)
        if queue is not None:
            _at, members, current = await self._snapshot(repo, conversation, queue.id)
        decision: Decision = await super()._wait(repo, conversation, queue, why, now, **kw)
        self.seen.append(
            Seen(
                "wait",
                conversation.id,
                queue.id if queue is not None else None,
                now,
                eligible_of(members),
                members,
                previous_manager_id=current.manager_id if current is not None else None,
                why=why,
                assignment_id=decision.assignment_id,
            )
        )
        return decision

    async def _offer(self, repo, conversation, queue, takers, note, now):  # type: ignore[no-untyped-def, override]
        _at, members, _current = await self._snapshot(repo, conversation, queue.id)
        decision: Decision = await super()._offer(repo, conversation, queue, takers, note, now)
        self.seen.append(
            Seen(
                "offer",
                conversation.id,
                queue.id,
                now,
                eligible_of(members),
                members,
                takers=list(takers),
                assignment_id=decision.assignment_id,
            )
        )
        return decision


class RoutingMachine(RuleBasedStateMachine):
    """One example: one channel whose default queue has 2-4 managers."""

    runner: ClassVar[asyncio.Runner]
    db: ClassVar[Database]
    clock: ClassVar[Clock]

    def __init__(self) -> None:
        super().__init__()
        self.engine = AuditedEngine(self.clock)
        self.worker = OutboxWorker(
            self.db,
            routing_handlers(self.engine, SlaMonitor(self.engine, clock=self.clock)),
            clock=self.clock,
        )
        self.managers: list[int] = []
        self.conversations: list[int] = []
        self.checked = 0  # decisions already checked
        self.floor: dict[int, int] = {}  # open counts allowed over capacity after a manual cut

    def run(self, coro: Any) -> Any:
        return self.runner.run(coro)

    # -- setting up ------------------------------------------------------------------------

    @initialize(
        strategy=st.sampled_from(
            [Strategy.EVENLY, Strategy.STRICT_ORDER, Strategy.LEAST_LOADED, Strategy.EVERYBODY]
        ),
        capacities=st.lists(st.integers(1, 4), min_size=2, max_size=4),
        online=st.lists(st.sampled_from([True, True, True, False]), min_size=4, max_size=4),
        positions=st.permutations(range(4)),
        forward_after=st.sampled_from([60, 300]),
    )
    def setup(
        self,
        strategy: Strategy,
        capacities: list[int],
        online: list[bool],
        positions: list[int],
        forward_after: int,
    ) -> None:
        self.strategy = strategy
        self.forward_after = forward_after
        self.run(self._setup(capacities, online, positions))
        self.drain()

    async def _setup(self, capacities: list[int], online: list[bool], positions: list[int]):
        n = next(_ids)
        async with self.db.transaction() as session:
            queue = Queue(
                key=f"q{n}",
                name=f"Queue {n}",
                strategy=self.strategy,
                forward_after_seconds=self.forward_after,
                retry_seconds=RETRY_SECONDS,
                sla={},
            )
            session.add(queue)
            await session.flush()
            channel = Channel(
                key=f"form-{n}",
                kind=ChannelKind.WEBFORM,
                title=f"form {n}",
                config={},
                default_queue_id=queue.id,
            )
            session.add(channel)
            for index, capacity in enumerate(capacities):
                manager = Manager(
                    email=f"m{n}-{index}@example.ru",
                    name=f"Manager {index}",
                    capacity=capacity,
                    presence=Presence.OFFLINE,
                )
                session.add(manager)
                await session.flush()
                session.add(
                    QueueMember(queue_id=queue.id, manager_id=manager.id, position=positions[index])
                )
                self.managers.append(manager.id)
            await session.flush()
            self.queue_id, self.channel_id = queue.id, channel.id
        for manager_id, is_online in zip(self.managers, online, strict=False):
            if is_online:
                await self._presence(manager_id, Presence.ONLINE)

    def teardown(self) -> None:
        # Timers of this example must not fire into the next one.
        async def clear() -> None:
            async with self.db.transaction() as session:
                await session.execute(
                    update(OutboxEvent)
                    .where(OutboxEvent.status == OutboxStatus.PENDING)
                    .values(status=OutboxStatus.DONE)
                )

        self.run(clear())

    def drain(self) -> None:
        self.run(self.worker.drain(max_rounds=1000))

    # -- rules ---------------------------------------------------------------------------

    @rule(count=st.integers(1, 3))
    def arrive(self, count: int) -> None:
        for _ in range(count):
            self._arrive()

    def _arrive(self) -> None:
        async def go() -> None:
            n = next(_ids)
            message = InboundMessage(
                channel_id=self.channel_id,
                channel_kind=ChannelKind.WEBFORM,
                external_id=f"arrival-{n}",
                identities=[IdentityIn("email", f"client{n}@example.ru")],
                text="Здравствуйте, нужна помощь",
                received_at=self.clock(),
            )
            async with self.db.transaction() as session:
                result = await ingest(session, message, IntakeConfig())
            self.conversations.append(result.conversation_id)
            async with self.db.transaction() as session:
                await self.engine.route(session, result.conversation_id)

        self.run(go())
        self.drain()

    async def _presence(self, manager_id: int, presence: Presence) -> None:
        async with self.db.transaction() as session:
            await set_presence(
                session, manager_id, presence, now=self.clock(), ttl_seconds=LONG_TTL
            )

    @rule(which=st.integers(0, 3), presence=st.sampled_from(list(Presence)))
    def presence(self, which: int, presence: Presence) -> None:
        self.run(self._presence(self.managers[which % len(self.managers)], presence))
        self.drain()

    @rule(which=st.integers(0, 3))
    def toggle_active(self, which: int) -> None:
        manager_id = self.managers[which % len(self.managers)]

        async def go() -> None:
            async with self.db.transaction() as session:
                manager = await session.get(Manager, manager_id)
                assert manager is not None
                manager.is_active = not manager.is_active
                if manager.is_active:
                    await self.engine.capacity_freed(session, manager_id)

        self.run(go())
        self.drain()

    @rule(which=st.integers(0, 3), minutes=st.sampled_from([1, 5, 30]))
    def absence(self, which: int, minutes: int) -> None:
        manager_id = self.managers[which % len(self.managers)]

        async def go() -> None:
            async with self.db.transaction() as session:
                now = self.clock()
                session.add(
                    ManagerAbsence(
                        manager_id=manager_id,
                        starts_at=now,
                        ends_at=now + timedelta(minutes=minutes),
                    )
                )

        self.run(go())
        self.drain()

    async def _open_assigned(self) -> list[tuple[int, int]]:
        async with self.db.read() as session:
            rows = await session.execute(
                select(Conversation.id, Conversation.assignee_id).where(
                    Conversation.id.in_(self.conversations),
                    Conversation.status != ConversationStatus.CLOSED,
                    Conversation.assignee_id.is_not(None),
                )
            )
            return sorted((int(a), int(b)) for a, b in rows)

    @precondition(lambda self: bool(self.conversations))
    @rule(which=st.integers(0, 10**6))
    def reply(self, which: int) -> None:
        async def go() -> None:
            candidates = await self._open_assigned()
            if not candidates:
                return
            conversation_id, manager_id = candidates[which % len(candidates)]
            async with self.db.transaction() as session:
                await add_reply(
                    session,
                    conversation_id,
                    text="Добрый день!",
                    manager_id=manager_id,
                    now=self.clock(),
                )

        self.run(go())
        self.drain()

    @precondition(lambda self: bool(self.conversations))
    @rule(which=st.integers(0, 10**6))
    def close(self, which: int) -> None:
        async def go() -> None:
            async with self.db.read() as session:
                ids = sorted(
                    await session.scalars(
                        select(Conversation.id).where(
                            Conversation.id.in_(self.conversations),
                            Conversation.status != ConversationStatus.CLOSED,
                        )
                    )
                )
            if not ids:
                return
            conversation_id = ids[which % len(ids)]
            async with self.db.transaction() as session:
                conversation = await close_conversation(
                    session, conversation_id, manager_id=None, now=self.clock()
                )
                if conversation.assignee_id is not None:
                    await self.engine.capacity_freed(session, conversation.assignee_id)

        self.run(go())
        self.drain()

    @rule(seconds=st.sampled_from([1, 30, 59, 61, 120, 301, 900]))
    def time_passes(self, seconds: int) -> None:
        self.clock.advance(seconds)
        self.drain()

    @rule(which=st.integers(0, 3), capacity=st.integers(0, 4))
    def change_capacity(self, which: int, capacity: int) -> None:
        manager_id = self.managers[which % len(self.managers)]

        async def go() -> None:
            async with self.db.transaction() as session:
                manager = await session.get(Manager, manager_id)
                assert manager is not None
                raised = capacity > manager.capacity
                manager.capacity = capacity
                open_count = await self._open_count(session, manager_id)
                if open_count > capacity:
                    self.floor[manager_id] = open_count
                if raised:
                    await self.engine.capacity_freed(session, manager_id)

        self.run(go())
        self.drain()

    async def _open_count(self, session: Any, manager_id: int) -> int:
        return int(
            await session.scalar(
                select(func.count())
                .select_from(Conversation)
                .where(
                    Conversation.assignee_id == manager_id,
                    Conversation.status != ConversationStatus.CLOSED,
                )
            )
            or 0
        )

    # -- invariants ------------------------------------------------------------------------

    @invariant()
    def state_is_consistent(self) -> None:
        self.run(self._check_state())

    async def _check_state(self) -> None:
        now = self.clock.now
        async with self.db.read() as session:
            conversations = (
                await session.scalars(
                    select(Conversation).where(Conversation.id.in_(self.conversations or [0]))
                )
            ).all()
            rows = (
                await session.scalars(
                    select(Assignment)
                    .where(Assignment.conversation_id.in_(self.conversations or [0]))
                    .order_by(Assignment.id)
                )
            ).all()
            pending = (
                await session.scalars(
                    select(OutboxEvent).where(OutboxEvent.status == OutboxStatus.PENDING)
                )
            ).all()
            failed = (
                await session.scalars(
                    select(OutboxEvent).where(OutboxEvent.last_error.is_not(None))
                )
            ).all()
            assert not failed, [(e.topic, e.last_error) for e in failed]
            for manager_id in self.managers:
                manager = await session.get(Manager, manager_id)
                assert manager is not None
                open_count = await self._open_count(session, manager_id)
                floor = min(self.floor.get(manager_id, 0), open_count)
                self.floor[manager_id] = floor
                assert open_count <= max(manager.capacity, floor), (
                    f"manager {manager_id}: {open_count} open, capacity {manager.capacity}"
                )

        current: dict[int, list[Assignment]] = {}
        for row in rows:
            if row.ended_at is None:
                current.setdefault(row.conversation_id, []).append(row)
        # Retry timers by (conversation, wait): a timer of a wait since replaced does nothing.
        retries = collections.Counter(
            (int(e.payload["conversation_id"]), e.payload.get("assignment_id"))
            for e in pending
            if e.topic == "routing.retry"
        )
        forwards = {
            (int(e.payload["conversation_id"]), int(e.payload["assignment_id"]))
            for e in pending
            if e.topic == "routing.forward_due" and e.due_at > now
        }
        for c in conversations:
            if c.status == ConversationStatus.CLOSED:
                continue
            live = current.get(c.id, [])
            assert len(live) == 1, (c.id, c.routing_state, [(r.state, r.manager_id) for r in live])
            row = live[0]
            assert c.routing_state == row.state, (c.id, c.routing_state, row.state)
            if c.routing_state == RoutingState.ASSIGNED:
                assert c.assignee_id is not None and row.manager_id == c.assignee_id
                answered = c.last_outbound_at is not None and c.last_outbound_at >= c.assigned_at
                if self.strategy == Strategy.STRICT_ORDER and not answered:
                    # Unanswered: a forward timer runs for this very assignment.
                    assert (c.id, row.id) in forwards, (c.id, row.id, forwards)
            elif c.routing_state == RoutingState.OFFERED:
                assert c.assignee_id is None
                assert self.strategy == Strategy.EVERYBODY
            else:
                assert c.routing_state == RoutingState.WAITING, c.routing_state
                assert c.assignee_id is None
                assert c.waiting_reason, c.id
                # One retry timer, not none (stuck) and not a growing pile.
                timers = retries[(c.id, row.id)]
                assert timers == 1, f"waiting conversation {c.id}: {timers} retry timers"

    @invariant()
    def decisions_were_right(self) -> None:
        stored = self.run(self._assignment_ids())
        seen = [s for s in self.engine.seen if s.queue_id == self.queue_id]
        for s in seen[self.checked :]:
            if s.assignment_id is not None and s.assignment_id not in stored:
                continue  # rolled back
            self._check_decision(s)
        self.checked = len(seen)
        if self.strategy == Strategy.EVENLY:
            self._check_evenly([s for s in seen if s.assignment_id in stored or s.kind == "wait"])

    async def _assignment_ids(self) -> set[int]:
        async with self.db.read() as session:
            return set(
                await session.scalars(
                    select(Assignment.id).where(
                        Assignment.conversation_id.in_(self.conversations or [0])
                    )
                )
            )

    def _check_decision(self, s: Seen) -> None:
        order = sorted(s.members, key=lambda m: (s.members[m]["position"], m))
        if s.kind == "wait":
            assert s.why
            assert s.eligible - {s.previous_manager_id} == set(), (
                f"waited ({s.why}) while {s.eligible} could take it"
            )
            return
        if s.kind == "offer":
            assert set(s.takers) == s.eligible and s.takers
            return
        assert s.reason in (AssignmentReason.STRATEGY, AssignmentReason.FORWARD), s.reason
        member = s.members[s.manager_id]  # type: ignore[index]
        # Never an ineligible manager: active, online, not absent, under capacity then.
        assert member["active"] and member["online"] and not member["absent"], member
        assert member["open"] < member["capacity"], member
        if s.reason == AssignmentReason.FORWARD:
            assert self.strategy == Strategy.STRICT_ORDER
            assert s.previous_manager_id is not None and s.previous_assigned_at is not None
            assert not s.previous_answered
            assert s.at - s.previous_assigned_at >= timedelta(seconds=self.forward_after)
            start = order.index(s.previous_manager_id) + 1
            expected = next(
                m
                for m in order[start:] + order[:start]
                if m in s.eligible and m != s.previous_manager_id
            )
            assert s.manager_id == expected, (s.manager_id, expected, order, s.eligible)
            return
        if self.strategy == Strategy.STRICT_ORDER:
            assert s.manager_id == next(m for m in order if m in s.eligible)
        elif self.strategy == Strategy.LEAST_LOADED:
            loads = {m: s.members[m]["open"] / s.members[m]["capacity"] for m in s.eligible}
            assert loads[s.manager_id] == min(loads.values()), loads  # type: ignore[index]
        elif self.strategy == Strategy.EVENLY:
            epoch = datetime.min.replace(tzinfo=UTC)
            last = {m: s.members[m]["last_assigned_at"] or epoch for m in s.eligible}
            assert last[s.manager_id] == min(last.values()), last  # type: ignore[index]

    def _check_evenly(self, seen: list[Seen]) -> None:
        """Among managers eligible at every decision since a point, counts differ by <= 1."""
        decisions = [s for s in seen if s.kind in ("assign", "wait")]
        for a, b in itertools.combinations(self.managers, 2):
            start = 0
            for index, s in enumerate(decisions):
                if a not in s.eligible or b not in s.eligible:
                    start = index + 1
            window = decisions[start:]
            count_a = sum(1 for s in window if s.kind == "assign" and s.manager_id == a)
            count_b = sum(1 for s in window if s.kind == "assign" and s.manager_id == b)
            assert abs(count_a - count_b) <= 1, (a, count_a, b, count_b, len(window))


@pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)
def test_routing_state_machine(db_url: str) -> None:
    with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:
        db = Database(db_url, pool_size=4)
        RoutingMachine.runner = runner
        RoutingMachine.db = db
        RoutingMachine.clock = Clock(datetime.now(UTC) + timedelta(days=1))
        examples = 80 if db.is_sqlite else 20
        try:
            run_state_machine_as_test(
                RoutingMachine,
                settings=settings(
                    max_examples=examples,
                    stateful_step_count=30,
                    deadline=None,
                    suppress_health_check=list(HealthCheck),
                ),
            )
        finally:
            runner.run(db.dispose())
