"""Routing: every new conversation to a responsible manager, with the reason recorded.

Order of decision: the contact's owner (if active and not absent), then the first
matching rule (a specific manager, or a queue with a priority and tags), then the
channel's default queue and its strategy. Nobody available: the conversation
waits, with the reason, and is tried again on a timer and whenever a manager of
its queue comes online or frees capacity.

Safety with many workers (PostgreSQL): the conversation's row is locked first,
then the candidate managers' rows in id order; open-conversation counts are read
under those locks, so two workers can neither assign one conversation twice nor
push a manager over capacity. Services only flush; the worker commits.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from intake.inbox_repository import SLA_SOON
from routing.batch_repository import PendingConversation
from routing.calendar import WorkingHours, add_working_time, is_working
from routing.choice import Candidate, choose, eligible_ids
from routing.repository import (
    ContactRow,
    ConversationRow,
    DecisionEvent,
    ManagerState,
    QueueState,
    RoutingRepository,
    RowChanged,
    RowRef,
    Target,
)
from routing.rules import ActiveRule, RoutingFacts, RuleBook, matches
from storage.errors import Conflict, InvalidInput, NotFound
from storage.events import (
    ConversationAssigned,
    ConversationOffered,
    ConversationWaiting,
    ForwardDue,
    RoutingRetry,
    SlaClock,
    SlaDue,
)
from storage.models import (
    AssignmentReason,
    Contact,
    Conversation,
    ConversationStatus,
    Manager,
    Presence,
    Priority,
    Queue,
    RoutingState,
    Strategy,
)
from storage.outbox import emit
from storage.types import utcnow

log = logging.getLogger(__name__)


# How many times a decision is taken again when its manager's row changed meanwhile.
DECIDE_ATTEMPTS = 10


@dataclass(frozen=True)
class RoutingConfig:
    # The first manager assigned becomes the contact's responsible manager.
    first_assignee_becomes_owner: bool = True


@dataclass(frozen=True)
class Decision:
    state: RoutingState
    manager_id: int | None
    queue_id: int | None
    reason: str
    explanation: str
    assignment_id: int | None = None


def effective_presence(manager: Manager | ManagerState, now: datetime) -> Presence:
    """Presence as set, unless its heartbeat lapsed: then offline."""
    if manager.presence_expires_at is not None and manager.presence_expires_at <= now:
        return Presence.OFFLINE
    try:
        return Presence(manager.presence)
    except ValueError:
        return Presence.OFFLINE


_ALWAYS = WorkingHours.always()
_HOURS: dict[str, WorkingHours] = {}


def hours_of(raw: dict[str, Any] | None) -> WorkingHours:
    """The calendar stored as JSON; parsed once per distinct calendar, not per decision."""
    if not raw:
        return _ALWAYS
    key = json.dumps(raw, sort_keys=True)
    hours = _HOURS.get(key)
    if hours is None:
        if len(_HOURS) > 4096:
            _HOURS.clear()
        hours = _HOURS[key] = WorkingHours.model_validate(raw)
    return hours


class RoutingEngine:
    def __init__(
        self, config: RoutingConfig | None = None, *, clock: Callable[[], datetime] = utcnow
    ):
        self.config = config or RoutingConfig()
        self.clock = clock
        self.rules = RuleBook()

    # -- automatic routing -------------------------------------------------------------

    async def route(
        self, session: AsyncSession, conversation_id: int, *, rearm: bool = False
    ) -> Decision | None:
        """Route a conversation that has nobody yet; None if it needs nothing (any more).

        A conversation left waiting has one retry timer; `rearm` (its retry firing)
        arms the next one when it still waits for the same reason.
        """
        repo = RoutingRepository(session)
        now = self.clock()
        conversation = await repo.lock_for_decision(conversation_id, now)
        return await self._route(repo, conversation, now, rearm)

    async def _route(
        self,
        repo: RoutingRepository,
        conversation: ConversationRow | None,
        now: datetime,
        rearm: bool,
    ) -> Decision | None:
        """`route()` on the conversation as `lock_for_decision` read it."""
        if (
            conversation is None
            or conversation.status == ConversationStatus.CLOSED
            or conversation.assignee_id is not None
            or conversation.routing_state == RoutingState.OFFERED
        ):
            return None
        decision = await self._decide(repo, conversation, now, rearm)
        await repo.save_pending()  # what a rule set, where no decision was written
        return decision

    async def _decide(
        self, repo: RoutingRepository, conversation: ConversationRow, now: datetime, rearm: bool
    ) -> Decision:
        contact = await repo.contact(conversation.contact_id)

        # 1. The owner first: presence and capacity are not asked of the owner.
        if contact.owner_id is not None:
            owners, absent = await repo.lock_managers([contact.owner_id], now)
            owner = owners.get(contact.owner_id)
            if owner is not None and owner.is_active and owner.id not in absent:
                return await self._assign(
                    repo,
                    conversation,
                    owner,
                    conversation.queue_id,
                    AssignmentReason.OWNER,
                    "the contact's responsible manager",
                    now,
                )

        # 2. Rules, first match wins.
        channel = await repo.channel(conversation.channel_id)
        queue_id = channel.default_queue_id
        rule_note = "the channel's default queue"
        rules = await self._active_rules(repo)
        if rules:  # the facts cost two queries: only when a rule will look at them
            facts = await self._facts(repo, conversation, channel.kind, channel.key, contact, now)
        for rule in rules:
            conditions, actions = rule.conditions, rule.actions
            if actions.queue_id is not None and conditions.working_hours is not None:
                queue = await repo.queue(actions.queue_id)
                facts.queue_in_hours[actions.queue_id] = (
                    is_working(hours_of(queue.working_hours), now) if queue else True
                )
            if not matches(conditions, actions, facts):
                continue
            if actions.priority is not None:
                conversation.priority = actions.priority
            if actions.tags:
                conversation.tags = sorted({*conversation.tags, *actions.tags})
            if actions.manager_id is not None:
                managers, absent = await repo.lock_managers([actions.manager_id], now)
                manager = managers.get(actions.manager_id)
                if manager is not None and manager.is_active and manager.id not in absent:
                    return await self._assign(
                        repo,
                        conversation,
                        manager,
                        actions.queue_id or queue_id,
                        AssignmentReason.RULE,
                        f"rule {rule.id} «{rule.name}»",
                        now,
                        detail={"rule_id": rule.id},
                    )
            if actions.queue_id is not None:
                queue_id = actions.queue_id
            rule_note = f"rule {rule.id} «{rule.name}»"
            break

        # 3. The queue's strategy.
        queue = await repo.queue(queue_id) if queue_id is not None else None
        if queue is None or not queue.is_active:
            return await self._wait(repo, conversation, None, "no queue for this conversation", now)
        return await self._by_strategy(repo, conversation, queue, now, note=rule_note, rearm=rearm)

    async def _by_strategy(
        self,
        repo: RoutingRepository,
        conversation: Conversation | ConversationRow,
        queue: Queue | QueueState,
        now: datetime,
        *,
        note: str,
        after_manager_id: int | None = None,
        reason: AssignmentReason = AssignmentReason.STRATEGY,
        record_wait: bool = True,
        rearm: bool = False,
    ) -> Decision:
        """`record_wait=False` (moving a conversation on from its manager): if nobody else
        can take it, nothing is recorded and the caller keeps it where it is.

        The members are read without locks: if the chosen manager's row changed before
        the decision was written (another worker assigned them), it is taken again on
        what is there now."""
        respect_hours = queue.respect_member_hours
        strategy = Strategy(queue.strategy)
        language = await self._language(repo, conversation)
        for attempt in range(1, DECIDE_ATTEMPTS + 1):
            candidates, managers = await self._candidates(repo, queue, now)
            if strategy is Strategy.EVERYBODY:
                takers = eligible_ids(candidates, language=language, respect_hours=respect_hours)
                if takers:
                    return await self._offer(repo, conversation, queue, takers, note, now)
            choice = choose(
                strategy,
                candidates,
                language=language,
                respect_hours=respect_hours,
                after_manager_id=after_manager_id,
            )
            if choice.manager_id is None:
                if not record_wait:
                    return Decision(
                        RoutingState.WAITING, None, queue.id, "waiting", choice.explanation
                    )
                return await self._wait(
                    repo,
                    conversation,
                    queue,
                    choice.explanation,
                    now,
                    rearm=rearm,
                    transfer_note=note if reason == AssignmentReason.TRANSFER else None,
                )
            try:
                return await self._assign(
                    repo,
                    conversation,
                    managers[choice.manager_id],
                    queue.id,
                    reason,
                    f"{note}; queue «{queue.name}»; {choice.explanation}",
                    now,
                    detail={
                        "strategy": strategy.value,
                        "refused": {str(k): v for k, v in choice.refused.items()},
                    },
                )
            except RowChanged:
                # Another worker's assignment got through meanwhile: this is progress,
                # and the next reading sees it. Past the limit, the transaction fails
                # and the outbox delivers the event again later.
                if attempt == DECIDE_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

    async def _candidates(
        self, repo: RoutingRepository, queue: Queue | QueueState, now: datetime
    ) -> tuple[list[Candidate], dict[int, ManagerState]]:
        members = await repo.members(queue.id, now)
        managers, counts, absent = members.managers, members.load, members.absent
        in_hours: dict[int, bool] = {}  # by calendar: members mostly share one
        candidates = []
        for manager_id, position in members.order:
            manager = managers[manager_id]
            hours = hours_of(manager.working_hours)
            working = in_hours.get(id(hours))
            if working is None:
                working = in_hours[id(hours)] = is_working(hours, now)
            candidates.append(
                Candidate(
                    manager_id=manager_id,
                    position=position,
                    is_active=manager.is_active,
                    presence=effective_presence(manager, now),
                    absent=manager_id in absent,
                    in_hours=working,
                    open_count=counts.get(manager_id, 0),
                    capacity=manager.capacity,
                    languages=tuple(manager.languages or ()),
                    last_assigned_at=manager.last_assigned_at,
                )
            )
        return candidates, managers

    async def _active_rules(self, repo: RoutingRepository) -> list[ActiveRule]:
        """The active rules, parsed; read again only when the table changed."""
        rules = self.rules.current(repo.rules_version)
        if rules is None:
            rules = self.rules.keep(repo.rules_version, await repo.active_rules())
        return rules

    async def _facts(
        self,
        repo: RoutingRepository,
        conversation: Conversation | ConversationRow,
        kind: str,
        key: str,
        contact: Contact | ContactRow,
        now: datetime,
    ) -> RoutingFacts:
        lead = await repo.lead_of(conversation.id)
        return RoutingFacts(
            channel_kind=kind,
            channel_key=key,
            text=await repo.first_inbound_text(conversation.id),
            language=contact.language,
            now=now,
            form_fields=dict(lead.form_fields) if lead is not None else {},
            contact={
                "name": contact.name,
                "company": contact.company,
                "language": contact.language,
                "owner_id": contact.owner_id,
                **(contact.attributes or {}),
            },
            claim_reason=(lead.form_fields or {}).get("claim_reason") if lead else None,
            queue_in_hours={},
        )

    async def _language(
        self, repo: RoutingRepository, conversation: Conversation | ConversationRow
    ) -> str | None:
        contact = await repo.contact(conversation.contact_id)
        return contact.language

    # -- recording decisions -----------------------------------------------------------

    async def _assign(
        self,
        repo: RoutingRepository,
        conversation: Conversation | ConversationRow,
        manager: ManagerState,
        queue_id: int | None,
        reason: AssignmentReason,
        explanation: str,
        now: datetime,
        *,
        detail: dict[str, Any] | None = None,
        actor_manager_id: int | None = None,
    ) -> Decision:
        first_decision = conversation.routing_state == RoutingState.NEW
        decided: dict[str, object] = {
            "assignee_id": manager.id,
            "queue_id": queue_id,
            "routing_state": RoutingState.ASSIGNED,
            "waiting_reason": None,
            "assigned_at": now,
        }
        changes: list[tuple[Target, dict[str, object]]] = [
            (conversation, decided),
            (RowRef(Manager, manager.id, manager.version), {"last_assigned_at": now}),
        ]
        lead = await repo.lead_of(conversation.id)
        if lead is not None:
            changes.append((lead, {"assignee_id": manager.id}))
        contact = await repo.contact(conversation.contact_id)
        if contact.owner_id is None and self.config.first_assignee_becomes_owner:
            changes.append((contact, {"owner_id": manager.id}))
        queue = await repo.queue(queue_id) if queue_id is not None else None
        due: datetime | None = None
        if conversation.first_response_at is None:
            # Each assignment restarts the first-response clock in its queue's calendar.
            target = sla_target(queue, conversation.priority, "first_response") if queue else None
            if queue is not None and target:
                due = add_working_time(hours_of(queue.working_hours), now, target)
            decided["first_response_due_at"] = due
        events = [
            DecisionEvent(
                ConversationAssigned(
                    conversation_id=conversation.id,
                    manager_id=manager.id,
                    queue_id=queue_id,
                    reason=reason.value,
                    explanation=explanation,
                )
            )
        ]
        if queue is not None:
            events += assignment_timers(conversation, queue, due, now)
        assignment_id = await repo.record(
            {
                "conversation_id": conversation.id,
                "state": RoutingState.ASSIGNED,
                "manager_id": manager.id,
                "queue_id": queue_id,
                "reason": reason,
                "explanation": explanation,
                "detail": detail or {},
                "actor_manager_id": actor_manager_id,
            },
            changes,
            events,
            end_open_of=None if first_decision else conversation.id,  # a first ends nothing
            at=now,
        )
        return Decision(
            RoutingState.ASSIGNED, manager.id, queue_id, reason.value, explanation, assignment_id
        )

    async def _offer(
        self,
        repo: RoutingRepository,
        conversation: Conversation | ConversationRow,
        queue: Queue | QueueState,
        takers: list[int],
        note: str,
        now: datetime,
    ) -> Decision:
        explanation = f"{note}; queue «{queue.name}»: offered to {len(takers)} members"
        assignment_id = await repo.record(
            {
                "conversation_id": conversation.id,
                "state": RoutingState.OFFERED,
                "manager_id": None,
                "queue_id": queue.id,
                "reason": AssignmentReason.STRATEGY,
                "explanation": explanation,
                "detail": {"strategy": Strategy.EVERYBODY.value, "offered_to": takers},
            },
            [
                (
                    conversation,
                    {
                        "queue_id": queue.id,
                        "routing_state": RoutingState.OFFERED,
                        "waiting_reason": None,
                    },
                )
            ],
            [
                DecisionEvent(
                    ConversationOffered(
                        conversation_id=conversation.id,
                        queue_id=queue.id,
                        manager_ids=tuple(takers),
                    )
                )
            ],
            end_open_of=conversation.id,
            at=now,
        )
        return Decision(
            RoutingState.OFFERED, None, queue.id, "strategy", explanation, assignment_id
        )

    async def _wait(
        self,
        repo: RoutingRepository,
        conversation: Conversation | ConversationRow,
        queue: Queue | QueueState | None,
        why: str,
        now: datetime,
        *,
        rearm: bool = False,
        transfer_note: str | None = None,
    ) -> Decision:
        """Leave the conversation waiting; a transfer (`transfer_note`, what the person said)
        is always recorded, as `transfer` with their words."""
        already = (
            transfer_note is None
            and conversation.routing_state == RoutingState.WAITING
            and conversation.waiting_reason == why
        )
        first_decision = conversation.routing_state == RoutingState.NEW
        queue_id = queue.id if queue is not None else None
        waiting: dict[str, Any] = {"routing_state": RoutingState.WAITING, "waiting_reason": why}
        if queue_id is not None:
            waiting["queue_id"] = queue_id
        if not already:  # a retry that changes nothing records nothing new
            # One retry timer per wait: a new wait arms it, its own firing re-arms it;
            # other triggers (capacity freed, a repeated event) find the same wait and
            # arm nothing.
            events = [
                DecisionEvent(
                    ConversationWaiting(
                        conversation_id=conversation.id, queue_id=queue_id, reason=why
                    )
                )
            ]
            if queue is not None:
                events.append(retry_timer(conversation, queue, now))
            assignment_id = await repo.record(
                {
                    "conversation_id": conversation.id,
                    "state": RoutingState.WAITING,
                    "manager_id": None,
                    "queue_id": queue_id,
                    "reason": AssignmentReason.STRATEGY
                    if transfer_note is None
                    else AssignmentReason.TRANSFER,
                    "explanation": why if transfer_note is None else f"{transfer_note}; {why}",
                },
                [(conversation, waiting)],
                events,
                end_open_of=None if first_decision else conversation.id,
                at=now,
            )
            return Decision(RoutingState.WAITING, None, queue_id, "waiting", why, assignment_id)
        if queue_id is not None and conversation.queue_id != queue_id:
            conversation.queue_id = queue_id
        if rearm and queue is not None:
            current = await repo.current_assignment(conversation.id)
            if current is not None:
                timer = retry_timer(conversation, queue, now)
                emit(
                    repo.session,
                    replace(timer.event, assignment_id=current.id),
                    due_at=timer.due_at,
                )
        return Decision(RoutingState.WAITING, None, queue_id, "waiting", why)

    # -- timers and triggers -------------------------------------------------------------

    async def forward_due(
        self, session: AsyncSession, conversation_id: int, assignment_id: int
    ) -> Decision | None:
        """Strict order: the manager has not answered in time, so the next one gets it."""
        repo = RoutingRepository(session)
        conversation = await repo.lock_conversation(conversation_id)
        if conversation is None or conversation.status == ConversationStatus.CLOSED:
            return None
        current = await repo.current_assignment(conversation_id)
        if current is None or current.id != assignment_id or current.manager_id is None:
            return None  # moved on since: taken, transferred or answered
        answered = (
            conversation.last_outbound_at is not None
            and conversation.assigned_at is not None
            and conversation.last_outbound_at >= conversation.assigned_at
        )
        if answered or current.queue_id is None:
            return None
        queue = await repo.queue(current.queue_id)
        if queue is None or queue.strategy != Strategy.STRICT_ORDER:
            return None
        now = self.clock()
        conversation.assignee_id = None
        decision = await self._by_strategy(
            repo,
            conversation,
            queue,
            now,
            note=f"not answered within {queue.forward_after_seconds} s",
            after_manager_id=current.manager_id,
            reason=AssignmentReason.FORWARD,
            record_wait=False,
        )
        if decision.manager_id is None:
            # Nobody else can take it: it stays with the manager it was with (the same
            # assignment), and is offered to the next one after another idle period.
            conversation.assignee_id = current.manager_id
            emit(
                session,
                ForwardDue(conversation_id=conversation.id, assignment_id=current.id),
                due_at=now + timedelta(seconds=queue.forward_after_seconds or 60),
            )
        return decision

    async def retry(
        self, session: AsyncSession, conversation_id: int, assignment_id: int | None = None
    ) -> Decision | None:
        """A waiting conversation's retry timer; a timer of a wait since replaced does nothing."""
        repo = RoutingRepository(session)
        now = self.clock()
        conversation = await repo.lock_for_decision(conversation_id, now)
        if conversation is None or conversation.routing_state != RoutingState.WAITING:
            return None
        if assignment_id is not None:
            current = await repo.current_assignment(conversation_id)
            if current is None or current.id != assignment_id:
                return None
        return await self._route(repo, conversation, now, rearm=True)

    async def queue_changed(self, session: AsyncSession, queue_id: int, limit: int = 200) -> int:
        """A queue got members or became a channel's default: route what waits for it."""
        return await self._route_waiting(session, [queue_id], limit)

    async def capacity_freed(self, session: AsyncSession, manager_id: int, limit: int = 50) -> int:
        """A manager came online or closed a conversation: route what waits in their queues."""
        queues = await RoutingRepository(session).queues_of(manager_id)
        return await self._route_waiting(session, queues, limit)

    async def _route_waiting(self, session: AsyncSession, queue_ids: list[int], limit: int) -> int:
        repo = RoutingRepository(session)
        routed = 0
        for conversation_id in await repo.waiting_conversations(queue_ids, limit):
            decision = await self.route(session, conversation_id)
            if decision is not None and decision.state != RoutingState.WAITING:
                routed += 1
        return routed

    # -- people acting -------------------------------------------------------------------

    async def assign(
        self,
        session: AsyncSession,
        conversation_id: int,
        manager_id: int,
        *,
        actor_manager_id: int | None,
        reason: AssignmentReason = AssignmentReason.MANUAL,
        queue_id: int | None = None,
        note: str | None = None,
    ) -> Decision:
        """Assign by hand (or transfer): capacity and presence are the person's judgement.
        `note`, the person's own words, is kept in the decision's explanation."""
        repo = RoutingRepository(session)
        conversation = await repo.lock_conversation(conversation_id)
        if conversation is None:
            raise NotFound(f"no conversation {conversation_id}")
        if conversation.status == ConversationStatus.CLOSED:
            raise Conflict(f"conversation {conversation_id} is closed", code="conversation_closed")
        managers, _absent = await repo.lock_managers([manager_id], self.clock())
        manager = managers.get(manager_id)
        if manager is None or not manager.is_active:
            raise InvalidInput(f"no active manager {manager_id}", code="unknown_manager")
        who = f"manager {actor_manager_id}" if actor_manager_id else "the API"
        return await self._assign(
            repo,
            conversation,
            manager,
            queue_id or conversation.queue_id,
            reason,
            f"{reason.value} by {who}" + (f": {note}" if note else ""),
            self.clock(),
            actor_manager_id=actor_manager_id,
        )

    async def transfer_to_queue(
        self,
        session: AsyncSession,
        conversation_id: int,
        queue_id: int,
        *,
        actor_manager_id: int | None,
        note: str | None = None,
    ) -> Decision:
        """Hand the conversation to a queue, whose strategy decides (never back to whoever
        had it); `note`, the person's reason, is kept in the decision's explanation."""
        repo = RoutingRepository(session)
        conversation = await repo.lock_conversation(conversation_id)
        if conversation is None:
            raise NotFound(f"no conversation {conversation_id}")
        queue = await repo.queue(queue_id)
        if queue is None:
            raise InvalidInput(f"no queue {queue_id}", code="unknown_queue")
        previous = conversation.assignee_id
        conversation.assignee_id = None
        decision = await self._by_strategy(
            repo,
            conversation,
            queue,
            self.clock(),
            note=(
                f"transferred by manager {actor_manager_id}" if actor_manager_id else "transferred"
            )
            + (f": {note}" if note else ""),
            # A transfer hands the conversation on: never back to whoever had it.
            after_manager_id=previous,
            reason=AssignmentReason.TRANSFER,
        )
        return decision

    async def take(self, session: AsyncSession, conversation_id: int, manager_id: int) -> Decision:
        """A member takes a conversation offered to everybody: the first one wins."""
        repo = RoutingRepository(session)
        conversation = await repo.lock_conversation(conversation_id)
        if conversation is None:
            raise NotFound(f"no conversation {conversation_id}")
        if conversation.status == ConversationStatus.CLOSED:
            raise Conflict(f"conversation {conversation_id} is closed", code="conversation_closed")
        if conversation.assignee_id is not None:
            raise Conflict(f"conversation {conversation_id} is already taken", code="already_taken")
        current = await repo.current_assignment(conversation_id)
        offered_to = (current.detail or {}).get("offered_to", []) if current else []
        if conversation.routing_state == RoutingState.OFFERED and manager_id not in offered_to:
            raise Conflict("this conversation was not offered to you", code="not_offered")
        managers, _absent = await repo.lock_managers([manager_id], self.clock())
        manager = managers.get(manager_id)
        if manager is None or not manager.is_active:
            raise InvalidInput(f"no active manager {manager_id}", code="unknown_manager")
        return await self._assign(
            repo,
            conversation,
            manager,
            conversation.queue_id,
            AssignmentReason.TAKE,
            f"taken by manager {manager_id}",
            self.clock(),
            actor_manager_id=manager_id,
        )


def sla_target(queue: Queue | QueueState, priority: str, kind: str) -> float | None:
    """Seconds of working time for a first or next response at this priority, if set."""
    table = queue.sla or {}
    entry = table.get(priority) or table.get(Priority.NORMAL.value) or {}
    value = entry.get(kind)
    return float(value) if value else None


def assignment_timers(
    conversation: Conversation | ConversationRow | PendingConversation,
    queue: Queue | QueueState,
    due: datetime | None,
    now: datetime,
) -> list[DecisionEvent]:
    """The timers an assignment arms: forwarding (strict order) and the first response
    due at `due`."""
    timers = []
    if queue.strategy == Strategy.STRICT_ORDER and queue.forward_after_seconds:
        timers.append(
            DecisionEvent(
                ForwardDue(conversation_id=conversation.id),
                due_at=now + timedelta(seconds=queue.forward_after_seconds),
            )
        )
    if due is not None:
        timers.append(
            DecisionEvent(
                SlaDue(
                    conversation_id=conversation.id,
                    kind="first_response",
                    due_at=due.isoformat(),
                ),
                due_at=due,
            )
        )
        timers += sla_clock_timers(conversation.id, due, now)
    return timers


def sla_clock_timers(conversation_id: int, due: datetime, now: datetime) -> list[DecisionEvent]:
    """The open lists' ticks for a response target due at `due`: when it comes within
    the "due soon" window (if that is still ahead) and when it falls due."""
    ticks = []
    soon = due - SLA_SOON
    if soon > now:
        ticks.append(
            DecisionEvent(
                SlaClock(conversation_id=conversation_id, due_at=due.isoformat(), at="soon"),
                due_at=soon,
            )
        )
    ticks.append(
        DecisionEvent(
            SlaClock(conversation_id=conversation_id, due_at=due.isoformat(), at="due"),
            due_at=due,
        )
    )
    return ticks


def retry_timer(
    conversation: Conversation | ConversationRow | PendingConversation,
    queue: Queue | QueueState,
    now: datetime,
) -> DecisionEvent:
    """The timer that routes a waiting conversation again."""
    return DecisionEvent(
        RoutingRetry(conversation_id=conversation.id),
        due_at=now + timedelta(seconds=max(queue.retry_seconds, 10)),
    )
