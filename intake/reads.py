"""Unread markers: each manager's read position in each conversation.

A conversation is unread for a manager while it has a client message after the last one
the manager read. Marking read moves the position to the newest message and never back, so
two tabs marking at once agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from intake.inbox_repository import InboxRepository
from storage.errors import InvalidInput, NotFound
from storage.models import Message


async def mark_read(
    session: AsyncSession,
    manager_id: int,
    conversation_id: int,
    now: datetime,
    message_id: int | None = None,
) -> None:
    """The manager has read the conversation up to `message_id` (its newest by default)."""
    repo = InboxRepository(session)
    latest = await repo.latest_message_id(conversation_id)
    if latest is None:
        raise NotFound(f"no conversation {conversation_id} with messages")
    if message_id is None:
        message_id = latest
    else:
        message = await session.get(Message, message_id)
        if message is None or message.conversation_id != conversation_id:
            raise InvalidInput(
                f"message {message_id} is not in conversation {conversation_id}",
                code="invalid_message",
            )
    await repo.set_read_position(manager_id, conversation_id, message_id, now)


async def unread_of(
    session: AsyncSession, manager_id: int, conversation_ids: Sequence[int]
) -> set[int]:
    """Which of these conversations have client messages the manager has not read
    (two queries whatever the number of conversations)."""
    repo = InboxRepository(session)
    latest = await repo.latest_message_ids(conversation_ids)
    read = await repo.read_positions(manager_id, list(latest))
    return {
        conversation_id
        for conversation_id, message_id in latest.items()
        if message_id > read.get(conversation_id, 0)
    }
