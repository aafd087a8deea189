"""Routing in batches: many new conversations decided together, with the answers that
deciding them one after another gives.

The worker hands over every new conversation it claimed in one round. They are
locked and read in one statement; the members of the queues involved are locked
and read once; each conversation is then decided in memory, in id order, by the
pure strategy code (`routing.choice`), each decision seeing the ones before it
(open conversations, last assignment, the contact's new owner); and everything
decided is written in one statement per table (`BatchRepository.write`).

What a batch does not decide in memory is routed one at a time in the same
transaction, before the batch, as `RoutingEngine.route` does it: any conversation
when routing rules are active (their facts are read per conversation), conversations
that are no longer new (a repeated event), and queues that offer to everybody.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from routing.batch_repository import (
    BatchRepository,
    BatchWrites,
    PendingConversation,
)
from routing.calendar import add_working_time, is_working
from routing.choice import Candidate, Choice, choose
from routing.engine import (
    Decision,
    RoutingEngine,
    assignment_timers,
    effective_presence,
    hours_of,
    retry_timer,
    sla_target,
)
from routing.repository import DecisionEvent, ManagerState, QueueState
from storage.events import ConversationAssigned, ConversationWaiting
from storage.models import AssignmentReason, ConversationStatus, RoutingState, Strategy
from storage.outbox import event_row
from storage.types import utcnow

DEFAULT_QUEUE_NOTE = "the channel's default queue"


class _Members:
    """The members of the batch's queues as candidates, as the decisions so far left them.

    Presence, absence and working hours are taken once, at the start of the batch.
    """

    def __init__(
        self,
        order: dict[int, list[tuple[int, int]]],
        managers: dict[int, ManagerState],
        load: dict[int, int],
        absent: set[int],
        now: datetime,
    ) -> None:
        self.managers = managers
        self.absent = absent
        self.by_queue: dict[int, list[Candidate]] = {}
        self.seats: dict[int, list[tuple[list[Candidate], int]]] = {}
        in_hours = {m.id: is_working(hours_of(m.working_hours), now) for m in managers.values()}
        for queue_id, members in order.items():
            candidates = self.by_queue[queue_id] = []
            for manager_id, position in members:
                manager = managers[manager_id]
                self.seats.setdefault(manager_id, []).append((candidates, len(candidates)))
                candidates.append(
                    Candidate(
                        manager_id=manager_id,
                        position=position,
                        is_active=manager.is_active,
                        presence=effective_presence(manager, now),
                        absent=manager_id in absent,
                        in_hours=in_hours[manager_id],
                        open_count=load.get(manager_id, 0),
                        capacity=manager.capacity,
                        languages=tuple(manager.languages or ()),
                        last_assigned_at=manager.last_assigned_at,
                    )
                )

    def candidates(self, queue_id: int) -> list[Candidate]:
        return self.by_queue.get(queue_id, [])

    def assigned(self, manager_id: int, now: datetime) -> None:
        for candidates, index in self.seats.get(manager_id, ()):
            candidate = candidates[index]
            candidates[index] = replace(
                candidate, open_count=candidate.open_count + 1, last_assigned_at=now
            )


def _in_memory(conversation: PendingConversation, queues: dict[int, QueueState]) -> bool:
    """Whether the batch decides this conversation itself (see the module's docstring)."""
    if (
        conversation.status == ConversationStatus.CLOSED
        or conversation.assignee_id is not None
        or conversation.routing_state != RoutingState.NEW
    ):
        return False
    queue = queues.get(conversation.default_queue_id or 0)
    return queue is None or not queue.is_active or queue.strategy != Strategy.EVERYBODY


async def route_batch(
    engine: RoutingEngine, session: AsyncSession, conversation_ids: Sequence[int]
) -> dict[int, Decision | None]:
    """Route these conversations as `engine.route` would, one after another in id order;
    returns each one's decision (None where nothing was needed)."""
    repo = BatchRepository(session)
    decisions: dict[int, Decision | None] = {}
    if not conversation_ids:
        return decisions
    pending = await repo.lock_conversations(conversation_ids)
    queue_ids = sorted({c.default_queue_id for c in pending if c.default_queue_id is not None})
    queues = await repo.queues(
        [*queue_ids, *(c.queue_id for c in pending if c.queue_id is not None)]
    )
    rules = await repo.has_active_rules()
    batched = [] if rules else [c for c in pending if _in_memory(c, queues)]
    in_batch = {c.id for c in batched}
    for conversation_id in sorted(set(conversation_ids)):
        if conversation_id not in in_batch:
            decisions[conversation_id] = await engine.route(session, conversation_id)
    if not batched:
        return decisions

    now = engine.clock()
    owner_ids = sorted({c.owner_id for c in batched if c.owner_id is not None})
    order, managers, load, absent = await repo.lock_members(queue_ids, owner_ids, now)
    members = _Members(order, managers, load, absent, now)
    writes = BatchWrites(utcnow(), [], [], [], {}, {}, {})
    owners: dict[int, int] = {}  # contacts that got their owner in this batch
    for conversation in batched:
        decided_at = engine.clock()
        decisions[conversation.id] = _decide(
            engine, conversation, queues, members, owners, writes, decided_at
        )
    await repo.write(writes)
    return decisions


def _decide(
    engine: RoutingEngine,
    conversation: PendingConversation,
    queues: dict[int, QueueState],
    members: _Members,
    owners: dict[int, int],
    writes: BatchWrites,
    now: datetime,
) -> Decision:
    owner_id = owners.get(conversation.contact_id, conversation.owner_id)
    if owner_id is not None and _can_own(members, owner_id):
        # The owner first (or the manager an earlier conversation of the batch made the
        # contact's owner): presence and capacity are not asked of the owner.
        queue = queues.get(conversation.queue_id or 0)
        return _assign(
            engine,
            conversation,
            owner_id,
            queue,
            conversation.queue_id,
            AssignmentReason.OWNER,
            "the contact's responsible manager",
            {},
            members,
            owners,
            writes,
            now,
        )
    queue = queues.get(conversation.default_queue_id or 0)
    if queue is None or not queue.is_active:
        return _wait(conversation, None, "no queue for this conversation", writes, now)
    strategy = Strategy(queue.strategy)
    choice: Choice = choose(
        strategy,
        members.candidates(queue.id),
        language=conversation.language,
        respect_hours=queue.respect_member_hours,
    )
    if choice.manager_id is None:
        return _wait(conversation, queue, choice.explanation, writes, now)
    return _assign(
        engine,
        conversation,
        choice.manager_id,
        queue,
        queue.id,
        AssignmentReason.STRATEGY,
        f"{DEFAULT_QUEUE_NOTE}; queue «{queue.name}»; {choice.explanation}",
        {
            "strategy": strategy.value,
            "refused": {str(k): v for k, v in choice.refused.items()},
        },
        members,
        owners,
        writes,
        now,
    )


def _can_own(members: _Members, manager_id: int) -> bool:
    manager = members.managers.get(manager_id)
    return manager is not None and manager.is_active and manager_id not in members.absent


def _assign(
    engine: RoutingEngine,
    conversation: PendingConversation,
    manager_id: int,
    queue: QueueState | None,
    queue_id: int | None,
    reason: AssignmentReason,
    explanation: str,
    detail: dict[str, Any],
    members: _Members,
    owners: dict[int, int],
    writes: BatchWrites,
    now: datetime,
) -> Decision:
    decided: dict[str, Any] = {
        "id": conversation.id,
        "assignee_id": manager_id,
        "queue_id": queue_id,
        "routing_state": RoutingState.ASSIGNED,
        "waiting_reason": None,
        "assigned_at": now,
    }
    due: datetime | None = None
    if conversation.first_response_at is None:
        # Each assignment restarts the first-response clock in its queue's calendar.
        target = sla_target(queue, conversation.priority, "first_response") if queue else None
        if queue is not None and target:
            due = add_working_time(hours_of(queue.working_hours), now, target)
        decided["first_response_due_at"] = due
    events = [
        event_row(
            ConversationAssigned(
                conversation_id=conversation.id,
                manager_id=manager_id,
                queue_id=queue_id,
                reason=reason.value,
                explanation=explanation,
            ),
            now=writes.at,
        )
    ]
    if queue is not None:
        events += [
            _row(timer, writes) for timer in assignment_timers(conversation, queue, due, now)
        ]
    writes.assignments.append(
        _assignment_row(conversation, RoutingState.ASSIGNED, manager_id, queue_id, explanation)
        | {"reason": reason, "detail": detail}
    )
    writes.conversations.append(decided)
    writes.events.append(events)
    writes.managers[manager_id] = now
    if conversation.has_lead:
        writes.leads[conversation.id] = manager_id
    if (
        conversation.owner_id is None
        and conversation.contact_id not in owners
        and engine.config.first_assignee_becomes_owner
    ):
        owners[conversation.contact_id] = writes.owners[conversation.contact_id] = manager_id
    members.assigned(manager_id, now)
    return Decision(RoutingState.ASSIGNED, manager_id, queue_id, reason.value, explanation)


def _wait(
    conversation: PendingConversation,
    queue: QueueState | None,
    why: str,
    writes: BatchWrites,
    now: datetime,
) -> Decision:
    queue_id = queue.id if queue is not None else None
    waiting: dict[str, Any] = {
        "id": conversation.id,
        "routing_state": RoutingState.WAITING,
        "waiting_reason": why,
    }
    if queue_id is not None:
        waiting["queue_id"] = queue_id
    events = [
        event_row(
            ConversationWaiting(conversation_id=conversation.id, queue_id=queue_id, reason=why),
            now=writes.at,
        )
    ]
    if queue is not None:
        events.append(_row(retry_timer(conversation, queue, now), writes))
    writes.assignments.append(
        _assignment_row(conversation, RoutingState.WAITING, None, queue_id, why)
        | {"reason": AssignmentReason.STRATEGY, "detail": {}}
    )
    writes.conversations.append(waiting)
    writes.events.append(events)
    return Decision(RoutingState.WAITING, None, queue_id, "waiting", why)


def _row(timer: DecisionEvent, writes: BatchWrites) -> dict[str, Any]:
    return event_row(timer.event, due_at=timer.due_at, now=writes.at)


def _assignment_row(
    conversation: PendingConversation,
    state: RoutingState,
    manager_id: int | None,
    queue_id: int | None,
    explanation: str,
) -> dict[str, Any]:
    return {
        "conversation_id": conversation.id,
        "state": state,
        "manager_id": manager_id,
        "queue_id": queue_id,
        "explanation": explanation,
        "actor_manager_id": None,
    }
