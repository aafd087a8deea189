"""Recording call events: the call journal, callbacks for missed calls, and the answering
manager taking the conversation. One transaction per webhook request.

What follows from an event, in the same transaction as the call's change:

- an answered call (inbound or outbound) with a number closes the open callbacks of
  that number;
- an inbound call that ended unanswered and was not forwarded opens a callback (or
  adds to the open one) for the contact's owner, else the conversation's assignee;
  nobody yet: routing's assignment of the conversation gives it its manager. It is due
  `callback_minutes` of working time later in that manager's hours (else the line's,
  else its default queue's);
- an answered inbound call whose manager the hub recognises assigns the conversation
  to that manager through the routing engine (audited, reason "telephony").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from channels.telephony.config import TelephonySetup
from intake.calls.book import CallBook, finish_calls, prepare_calls
from intake.calls.events import CallChannel, CallEvent, CallOutcome
from intake.calls.journal import record_call_event
from intake.ingest import IntakeConfig
from intake.tasks import announce_tasks, close_callbacks, open_callback
from routing.calendar import WorkingHours, add_working_time
from routing.engine import RoutingEngine, hours_of
from storage.db import Database
from storage.group_commit import GroupCommit
from storage.models import (
    AssignmentReason,
    Call,
    CallDirection,
    CallState,
    ChannelKind,
    ConversationStatus,
    Manager,
    Queue,
)
from storage.retry import retry_on_conflict
from storage.types import utcnow

Item = tuple[TelephonySetup, Sequence[CallEvent]]


class CallJournal:
    """Records call events in the database; the answering manager is assigned through
    `routing`."""

    def __init__(
        self,
        db: Database,
        intake: IntakeConfig,
        routing: RoutingEngine,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.intake = intake
        self.routing = routing
        self.clock = clock

    async def record(self, setup: TelephonySetup, events: Sequence[CallEvent]) -> list[CallOutcome]:
        """Apply one request's events in one transaction; returns after the commit.

        A concurrent first event of the same call (or a new contact's identity, or a
        callback of the same number) surfaces as an IntegrityError: run again, and the
        other transaction's rows are found.
        """
        results = await retry_on_conflict(lambda: self.record_many([(setup, events)]))
        return results[0]

    async def record_many(self, items: Sequence[Item]) -> list[list[CallOutcome]]:
        """Many requests' events in one transaction, in order (no retry here)."""
        now = self.clock()
        flat = [(setup, event) for setup, events in items for event in events]
        async with self.db.transaction() as session:
            book = await prepare_calls(
                session, [(_channel(setup), e) for setup, e in flat], self.intake, now
            )
            outcomes = [await self.apply(session, setup, e, book, now) for setup, e in flat]
            await finish_calls(book)
            await announce_tasks(session, book.new_tasks)
        result: list[list[CallOutcome]] = []
        position = 0
        for _setup, events in items:
            result.append(outcomes[position : position + len(events)])
            position += len(events)
        return result

    async def apply(
        self,
        session: AsyncSession,
        setup: TelephonySetup,
        event: CallEvent,
        book: CallBook,
        now: datetime,
    ) -> CallOutcome:
        outcome = await record_call_event(
            session, _channel(setup), event, self.intake, book, now=now
        )
        call = outcome.call
        if outcome.answered_now and call.client_number is not None:
            await close_callbacks(session, call, now, book.open_tasks)
        if outcome.missed_now and call.client_number is not None:
            await self._callback(session, setup, call, now, book)
        answered = call.state in (CallState.ANSWERED, CallState.COMPLETED)
        if (
            answered
            and (outcome.answered_now or outcome.manager_now)
            and call.direction == CallDirection.INBOUND
            and call.manager_id is not None
            and call.conversation_id is not None
        ):
            await self._attach(session, call, book)
        return outcome

    async def _callback(
        self,
        session: AsyncSession,
        setup: TelephonySetup,
        call: Call,
        now: datetime,
        book: CallBook,
    ) -> None:
        manager = await self._responsible(session, call, book)
        hours: WorkingHours | None = None
        if manager is not None and manager.working_hours:
            hours = hours_of(manager.working_hours)
        elif setup.config.working_hours is not None:
            hours = setup.config.working_hours
        elif setup.default_queue_id is not None:
            queue = await session.get(Queue, setup.default_queue_id)
            if queue is not None and queue.working_hours:
                hours = hours_of(queue.working_hours)
        start = call.ended_at or now
        minutes = setup.config.callback_minutes
        due = (
            add_working_time(hours, start, minutes * 60)
            if hours is not None
            else start + timedelta(minutes=minutes)
        )
        task, created = await open_callback(
            session,
            call,
            assignee_id=manager.id if manager is not None else None,
            due_at=due,
            language=setup.config.language,
            open_tasks=book.open_tasks,
            announce=False,
        )
        if created:
            book.new_tasks.append(task)

    async def _responsible(
        self, session: AsyncSession, call: Call, book: CallBook
    ) -> Manager | None:
        """The contact's owner, else whoever has the conversation (if active)."""
        candidates: list[int] = []
        contact = await book.contact(call.contact_id)
        if contact is not None and contact.owner_id is not None:
            candidates.append(contact.owner_id)
        conversation = await book.conversation(call.conversation_id)
        if conversation is not None and conversation.assignee_id is not None:
            candidates.append(conversation.assignee_id)
        for manager_id in candidates:
            manager = await session.get(Manager, manager_id)
            if manager is not None and manager.is_active:
                return manager
        return None

    async def _attach(self, session: AsyncSession, call: Call, book: CallBook) -> None:
        assert call.conversation_id is not None and call.manager_id is not None
        conversation = await book.conversation(call.conversation_id)
        if (
            conversation is None
            or conversation.status == ConversationStatus.CLOSED
            or conversation.assignee_id == call.manager_id
        ):
            return
        # The manager talked to the client: that is the conversation's first response.
        answered_at = call.answered_at or self.clock()
        if conversation.first_response_at is None:
            conversation.first_response_at = answered_at
        if conversation.last_outbound_at is None or conversation.last_outbound_at < answered_at:
            conversation.last_outbound_at = answered_at
        conversation.next_response_due_at = None
        await self.routing.assign(
            session,
            conversation.id,
            call.manager_id,
            actor_manager_id=None,
            reason=AssignmentReason.TELEPHONY,
        )


def _channel(setup: TelephonySetup) -> CallChannel:
    return CallChannel(setup.channel_id, ChannelKind.TELEPHONY, setup.config.language)


class CallBatcher(GroupCommit[Item, list[CallOutcome]]):
    """Group commit for call events (storage.group_commit's contract): requests that
    arrive together share a transaction (`record_many`); a batch that fails as a whole
    (a race with another transaction) is recorded request by request, each with its own
    retries (`CallJournal.record`)."""

    def __init__(self, journal: CallJournal, *, committers: int = 1, max_batch: int = 64) -> None:
        self.journal = journal
        super().__init__(
            journal.record_many, self._record_alone, committers=committers, max_batch=max_batch
        )

    async def record(self, setup: TelephonySetup, events: Sequence[CallEvent]) -> list[CallOutcome]:
        """Apply one request's events; returns after the commit that stored them."""
        return await self.submit((setup, events))

    async def _record_alone(self, item: Item) -> list[CallOutcome]:
        setup, events = item
        return await self.journal.record(setup, events)
