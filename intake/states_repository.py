"""The queries of conversation states (intake.states): the conversation locked for a change,
and whether its thread has another open conversation."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Conversation, ConversationStatus


class StatesRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def lock(self, conversation_id: int) -> Conversation | None:
        """The conversation as stored now, locked (PostgreSQL) until the transaction ends."""
        # Pending changes flush first; the row read replaces what the session held.
        return await self.session.scalar(
            select(Conversation)
            .where(Conversation.id == conversation_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )

    async def thread_open_elsewhere(self, conversation: Conversation) -> bool:
        """Another conversation of the same channel thread is not closed."""
        found = await self.session.scalar(
            select(Conversation.id)
            .where(
                Conversation.channel_id == conversation.channel_id,
                Conversation.thread_key == conversation.thread_key,
                Conversation.status != ConversationStatus.CLOSED,
                Conversation.id != conversation.id,
            )
            .limit(1)
        )
        return found is not None
