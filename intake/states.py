"""A conversation's states beyond open and closed: snoozed until a time, waiting for the
client, and reopened.

- Snoozed: out of the open views until `snoozed_until`. The wake-up is an outbox timer
  (`SnoozeDue`) that wakes only the snooze it was armed for, so a retried or outdated
  timer changes nothing; a client's message wakes it earlier.
- Waiting for the client (`pending`): the manager has answered and waits; it stays in the
  open views, SLA targets do not fall due meanwhile, and the client's next message opens it.
- Reopened: open again, by a manager (from closed, waiting or snoozed), at the snooze's end,
  or when the client writes. `ConversationReopened` tells the assignee's tabs.

A woken conversation moves to the top of the lists: its activity (`last_message_at`, what
the lists sort by) becomes the wake-up time. Services flush; they never commit.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from intake.states_repository import StatesRepository
from storage.errors import Conflict, InvalidInput, NotFound
from storage.events import (
    ConversationPending,
    ConversationReopened,
    ConversationSnoozed,
    MessageReceived,
    SnoozeDue,
    SnoozeEnded,
)
from storage.models import Conversation, ConversationStatus
from storage.outbox import Handlers, emit
from storage.types import utcnow

__all__ = [
    "MAX_SNOOZE",
    "SNOOZE_CHOICES",
    "client_wrote",
    "mark_pending",
    "reopen",
    "snooze",
    "snooze_time",
    "state_handlers",
    "wake",
]

MAX_SNOOZE = timedelta(days=366)
SNOOZE_CHOICES = ("hour", "tomorrow", "monday")
MORNING = time(9, 0)
# A snooze ends or a client writes: these statuses become open again.
AWAY_STATUSES = (ConversationStatus.SNOOZED.value, ConversationStatus.PENDING.value)


def snooze_time(choice: str, now: datetime, zone: ZoneInfo) -> datetime:
    """The end of a quick snooze choice, in UTC: `hour` (an hour from now), `tomorrow`
    (9:00 tomorrow in `zone`), `monday` (9:00 next Monday in `zone`, a week on if today is
    one); InvalidInput for another choice."""
    local = now.astimezone(zone)
    if choice == "hour":
        return now + timedelta(hours=1)
    if choice == "tomorrow":
        day = local.date() + timedelta(days=1)
    elif choice == "monday":
        day = local.date() + timedelta(days=7 - local.weekday())
    else:
        raise InvalidInput(f"no snooze choice {choice!r}", code="invalid_snooze")
    return datetime.combine(day, MORNING, tzinfo=zone).astimezone(UTC)


def local_time(value: str, zone: ZoneInfo) -> datetime:
    """A time as a form's date-time field gives it (`2026-12-08T09:30`, no zone: in `zone`;
    with an offset: as given), in UTC; InvalidInput when it is no time."""
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise InvalidInput(f"{value!r} is not a date and time", code="invalid_snooze") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(UTC)


async def _conversation(repo: StatesRepository, conversation_id: int) -> Conversation:
    conversation = await repo.lock(conversation_id)
    if conversation is None:
        raise NotFound(f"no conversation {conversation_id}")
    return conversation


async def snooze(
    session: AsyncSession,
    conversation_id: int,
    *,
    until: datetime,
    manager_id: int | None,
    now: datetime,
) -> Conversation:
    """Put an open (or waiting) conversation aside until `until` (in the future, within a
    year); snoozing again moves the time. Conflict for a closed conversation."""
    if until.tzinfo is None:
        raise InvalidInput("the snooze's end needs a time zone", code="invalid_snooze")
    until = until.astimezone(UTC)
    if until <= now:
        raise InvalidInput("the snooze must end in the future", code="snooze_in_past")
    if until > now + MAX_SNOOZE:
        raise InvalidInput("a snooze ends within a year", code="snooze_too_long")
    conversation = await _conversation(StatesRepository(session), conversation_id)
    if conversation.status == ConversationStatus.CLOSED:
        raise Conflict(f"conversation {conversation_id} is closed", code="conversation_closed")
    conversation.status = ConversationStatus.SNOOZED
    conversation.snoozed_until = until
    emit(
        session,
        ConversationSnoozed(
            conversation_id=conversation_id,
            until=until.isoformat(),
            manager_id=conversation.assignee_id,
            snoozed_by=manager_id,
        ),
    )
    emit(session, SnoozeDue(conversation_id=conversation_id, until=until.isoformat()), due_at=until)
    await session.flush()
    return conversation


async def mark_pending(
    session: AsyncSession, conversation_id: int, *, manager_id: int | None
) -> Conversation:
    """Mark it as waiting for the client (a snoozed one wakes into it); Conflict if closed."""
    conversation = await _conversation(StatesRepository(session), conversation_id)
    if conversation.status == ConversationStatus.CLOSED:
        raise Conflict(f"conversation {conversation_id} is closed", code="conversation_closed")
    if conversation.status == ConversationStatus.PENDING:
        return conversation
    conversation.status = ConversationStatus.PENDING
    conversation.snoozed_until = None
    emit(
        session,
        ConversationPending(
            conversation_id=conversation_id,
            manager_id=conversation.assignee_id,
            marked_by=manager_id,
        ),
    )
    await session.flush()
    return conversation


async def reopen(
    session: AsyncSession, conversation_id: int, *, manager_id: int | None, now: datetime
) -> Conversation:
    """Open a closed, waiting or snoozed conversation again (an open one stays as it is).

    A closed conversation whose thread has since opened another conversation cannot be
    reopened (Conflict `thread_reopened`): one open conversation per thread.
    """
    repo = StatesRepository(session)
    conversation = await _conversation(repo, conversation_id)
    if conversation.status == ConversationStatus.OPEN:
        return conversation
    if conversation.status == ConversationStatus.CLOSED and await repo.thread_open_elsewhere(
        conversation
    ):
        raise Conflict(
            f"the thread of conversation {conversation_id} has an open conversation",
            code="thread_reopened",
        )
    _open(session, conversation, now, reason="manager", by=manager_id)
    await session.flush()
    return conversation


def _open(
    session: AsyncSession, conversation: Conversation, now: datetime, *, reason: str, by: int | None
) -> None:
    previous = conversation.status
    conversation.status = ConversationStatus.OPEN
    conversation.snoozed_until = None
    conversation.closed_at = None
    if reason == "snooze_ended":
        conversation.last_message_at = now  # back on top of the lists
    emit(
        session,
        ConversationReopened(
            conversation_id=conversation.id,
            from_=previous,
            reason=reason,
            manager_id=conversation.assignee_id,
            reopened_by=by,
        ),
    )


async def wake(session: AsyncSession, timer: SnoozeDue, now: datetime) -> bool:
    """A snooze's end: open the conversation if it is still snoozed until that very time.
    True if it woke; a repeated or outdated timer changes nothing."""
    conversation = await StatesRepository(session).lock(timer.conversation_id)
    if conversation is None or conversation.status != ConversationStatus.SNOOZED:
        return False
    until = datetime.fromisoformat(timer.until)
    if conversation.snoozed_until is None or conversation.snoozed_until != until:
        return False
    _open(session, conversation, now, reason="snooze_ended", by=None)
    if conversation.assignee_id is not None:
        emit(
            session,
            SnoozeEnded(conversation_id=conversation.id, manager_id=conversation.assignee_id),
        )
    await session.flush()
    return True


async def client_wrote(session: AsyncSession, conversation_id: int, now: datetime) -> bool:
    """The client wrote: a snoozed or waiting conversation is open again. True if it was."""
    conversation = await StatesRepository(session).lock(conversation_id)
    if conversation is None or conversation.status not in AWAY_STATUSES:
        return False
    _open(session, conversation, now, reason="client_wrote", by=None)
    await session.flush()
    return True


def state_handlers(clock: Callable[[], datetime] = utcnow) -> Handlers:
    """The outbox handlers: snooze timers, and clients' messages that end a snooze or a wait."""

    async def snooze_due(session: AsyncSession, event: SnoozeDue, _event_id: int) -> None:
        await wake(session, event, clock())

    async def received(session: AsyncSession, event: MessageReceived, _event_id: int) -> None:
        # A first message opens a new conversation; machine mail (auto-replies) is no answer.
        if event.continues and not event.automatic:
            await client_wrote(session, event.conversation_id, clock())

    return {SnoozeDue: [snooze_due], MessageReceived: [received]}
