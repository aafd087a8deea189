"""Managers' side of a conversation: replies, internal notes, closing and reopening."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from intake.composer import mentioned_managers, reply_channel
from intake.ingest import attachment_rows
from intake.ingest_repository import IntakeRepository
from intake.schemas import AttachmentIn
from storage.errors import Conflict, InvalidInput, NotFound
from storage.events import ConversationClosed, MessageOutbound, NoteAdded, NoteMentioned
from storage.models import (
    Conversation,
    ConversationStatus,
    Message,
    MessageDirection,
    MessageStatus,
)
from storage.outbox import emit

MAX_REPLY_LENGTH = 100_000


async def add_reply(
    session: AsyncSession,
    conversation_id: int,
    *,
    text: str,
    manager_id: int | None,
    now: datetime,
    note: bool = False,
    idempotency_key: str | None = None,
    attachments: Sequence[AttachmentIn] = (),
    channel_id: int | None = None,
    mentions: Sequence[int] = (),
) -> Message:
    """Store a manager's reply (queued for delivery through the conversation's channel, or
    `channel_id`, another of intake.composer's reply routes) or an internal note. The first
    reply stamps `first_response_at`.

    Delivery is an outbox event (`message.outbound`); the channel sends it. A note records
    the active managers its text mentions by `@Name` (`mentions`: the ids the composer
    picked) and writes `note.mentioned` for each but its author. The same idempotency key
    returns the message stored the first time. The message comes back with its
    attachments loaded.
    """
    if not text.strip():
        raise InvalidInput("the reply is empty", code="empty_reply")
    if len(text) > MAX_REPLY_LENGTH:
        raise InvalidInput(f"the reply is over {MAX_REPLY_LENGTH} characters", code="too_long")
    conversation = await session.get(Conversation, conversation_id)
    if conversation is None:
        raise NotFound(f"no conversation {conversation_id}")
    via = (
        conversation.channel_id
        if note
        else await reply_channel(session, conversation_id, channel_id, conversation.channel_id)
    )
    external_id = f"reply:{idempotency_key}" if idempotency_key else None
    if external_id is not None:
        existing = await IntakeRepository(session).find_message(via, external_id)
        if existing is not None:
            if existing.conversation_id != conversation_id:
                raise Conflict(
                    "this idempotency key was used for another conversation",
                    code="idempotency_key_reused",
                )
            return await _with_attachments(session, existing)
    mentioned = await mentioned_managers(session, text, mentions) if note else []
    message = Message(
        conversation_id=conversation_id,
        channel_id=via,
        external_id=external_id,
        direction=MessageDirection.NOTE if note else MessageDirection.OUTBOUND,
        status=MessageStatus.RECEIVED if note else MessageStatus.QUEUED,
        author_manager_id=manager_id,
        text=text,
        meta={"mentions": mentioned} if mentioned else {},
    )
    session.add(message)
    await session.flush()
    session.add_all(attachment_rows(message.id, attachments))
    if not note:
        if conversation.first_response_at is None:
            conversation.first_response_at = now
        conversation.last_outbound_at = now
        conversation.next_response_due_at = None
        if conversation.status == ConversationStatus.CLOSED:
            conversation.status = ConversationStatus.OPEN
            conversation.closed_at = None
    await session.flush()
    emit(
        session,
        (NoteAdded if note else MessageOutbound)(
            conversation_id=conversation_id,
            message_id=message.id,
            channel_id=via,
            manager_id=manager_id,
        ),
    )
    for mentioned_id in mentioned:
        if mentioned_id != manager_id:
            emit(
                session,
                NoteMentioned(
                    conversation_id=conversation_id,
                    message_id=message.id,
                    channel_id=via,
                    manager_id=mentioned_id,
                    author_id=manager_id,
                ),
            )
    return await _with_attachments(session, message)


async def _with_attachments(session: AsyncSession, message: Message) -> Message:
    await session.refresh(message, ["attachments"])
    return message


async def close_conversation(
    session: AsyncSession, conversation_id: int, *, manager_id: int | None, now: datetime
) -> Conversation:
    """Close it; the assignee's capacity is freed (routing hears `conversation.closed`)."""
    conversation = await session.get(Conversation, conversation_id)
    if conversation is None:
        raise NotFound(f"no conversation {conversation_id}")
    if conversation.status == ConversationStatus.CLOSED:
        return conversation
    conversation.status = ConversationStatus.CLOSED
    conversation.closed_at = now
    emit(
        session,
        ConversationClosed(
            conversation_id=conversation_id,
            manager_id=conversation.assignee_id,
            closed_by=manager_id,
        ),
    )
    await session.flush()
    return conversation


async def add_system_message(
    session: AsyncSession,
    conversation_id: int,
    *,
    text: str,
    meta: dict[str, Any],
    external_id: str | None = None,
) -> Message:
    """Queue a message the hub itself sends to the client (an acknowledgement, say).

    Unlike a manager's reply it stamps no response times: the client still waits
    for a person. `external_id` keys it within the channel, so it is stored once.
    """
    conversation = await session.get(Conversation, conversation_id)
    if conversation is None:
        raise NotFound(f"no conversation {conversation_id}")
    message = Message(
        conversation_id=conversation_id,
        channel_id=conversation.channel_id,
        external_id=external_id,
        direction=MessageDirection.OUTBOUND,
        status=MessageStatus.QUEUED,
        text=text,
        meta=meta,
    )
    session.add(message)
    await session.flush()
    emit(
        session,
        MessageOutbound(
            conversation_id=conversation_id,
            message_id=message.id,
            channel_id=conversation.channel_id,
            manager_id=None,
        ),
    )
    return message
