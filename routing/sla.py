"""SLA: first- and next-response targets per queue and priority, counted in working time.

Targets are timers in the outbox (`SlaDue`), with ticks for the open lists
(`SlaClock`, an hour before and at the due time) so rows move between "due soon" and
"breached" as time passes. When one comes due and the client is
still waiting for an answer, the breach is recorded as `SlaBreached` (which the
notifications turn into a message to the queue's supervisor) and, for queues that
say so, the conversation is forwarded to the next member.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from routing.calendar import add_working_time
from routing.engine import RoutingEngine, hours_of, sla_clock_timers, sla_target
from routing.repository import RoutingRepository
from storage.events import SlaBreached, SlaDue
from storage.models import AssignmentReason, ConversationStatus, Strategy
from storage.outbox import emit
from storage.types import utcnow


class SlaMonitor:
    def __init__(self, engine: RoutingEngine, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.engine = engine
        self.clock = clock

    async def client_wrote(self, session: AsyncSession, conversation_id: int) -> None:
        """A client message: stamp it, and if the manager owes an answer, start the clock."""
        repo = RoutingRepository(session)
        conversation = await repo.lock_conversation(conversation_id)
        if conversation is None or conversation.status == ConversationStatus.CLOSED:
            return
        now = self.clock()
        conversation.last_inbound_at = now
        if conversation.first_response_at is None or conversation.queue_id is None:
            return  # the first-response target covers it
        if (
            conversation.next_response_due_at is not None
            and (
                conversation.last_outbound_at is None
                or conversation.last_outbound_at < conversation.next_response_due_at
            )
            and conversation.next_response_due_at > now
        ):
            return  # a clock is already running for an earlier unanswered message
        queue = await repo.queue(conversation.queue_id)
        if queue is None:
            return
        target = sla_target(queue, conversation.priority, "next_response")
        if not target:
            return
        due = add_working_time(hours_of(queue.working_hours), now, target)
        conversation.next_response_due_at = due
        emit(
            session,
            SlaDue(conversation_id=conversation_id, kind="next_response", due_at=due.isoformat()),
            due_at=due,
        )
        for tick in sla_clock_timers(conversation_id, due, now):
            emit(session, tick.event, due_at=tick.due_at)

    async def check(self, session: AsyncSession, timer: SlaDue) -> bool:
        """Handle a due target; True if it was breached."""
        repo = RoutingRepository(session)
        conversation_id = timer.conversation_id
        conversation = await repo.lock_conversation(conversation_id)
        # Closed, waiting for the client or snoozed: nobody owes an answer now (the client's
        # next message opens it and starts the next-response clock).
        if conversation is None or conversation.status != ConversationStatus.OPEN:
            return False
        kind = timer.kind
        due = datetime.fromisoformat(timer.due_at)
        if kind == "first_response":
            if conversation.first_response_at is not None:
                return False
            if conversation.first_response_due_at != due:
                return False  # re-armed since (reassigned)
        else:
            if conversation.next_response_due_at != due:
                return False
            if conversation.last_outbound_at is not None and (
                conversation.last_inbound_at is None
                or conversation.last_outbound_at >= conversation.last_inbound_at
            ):
                return False
        queue = await repo.queue(conversation.queue_id) if conversation.queue_id else None
        emit(
            session,
            SlaBreached(
                conversation_id=conversation_id,
                kind=kind,
                due_at=timer.due_at,
                manager_id=conversation.assignee_id,
                queue_id=conversation.queue_id,
                supervisor_id=queue.supervisor_id if queue is not None else None,
            ),
        )
        if (
            queue is not None
            and queue.sla_breach_action == "forward"
            and (conversation.assignee_id is not None)
        ):
            current = await repo.current_assignment(conversation_id)
            if current is not None and queue.strategy == Strategy.STRICT_ORDER:
                await self.engine.forward_due(session, conversation_id, current.id)
            elif current is not None:
                previous = conversation.assignee_id
                conversation.assignee_id = None
                decision = await self.engine._by_strategy(
                    repo,
                    conversation,
                    queue,
                    self.clock(),
                    note=f"{kind} target missed",
                    after_manager_id=previous,
                    reason=AssignmentReason.SLA,
                    record_wait=False,
                )
                if decision.manager_id is None:
                    conversation.assignee_id = previous
        return True
