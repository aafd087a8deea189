"""intake.conversations on SQLite and PostgreSQL: a manager's reply and closing."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from intake.conversations import add_reply, close_conversation
from intake.schemas import AttachmentIn
from storage.db import Database
from storage.models import Conversation, ConversationStatus, Message, OutboxEvent
from storage.types import utcnow
from tests.factories import create_channel, ingest_message

PHOTO = AttachmentIn("box.png", "image/png", 512, "a" * 64)


async def _reply(
    session: AsyncSession, conversation_id: int, attachments: Sequence[AttachmentIn] = ()
) -> Message:
    return await add_reply(
        session,
        conversation_id,
        text="Фото упаковки",
        manager_id=None,
        now=utcnow(),
        idempotency_key="reply-1",
        attachments=attachments,
    )


class TestAddReply:
    async def test_the_reply_comes_back_with_its_attachments(self, db: Database) -> None:
        channel = await create_channel(db)
        taken = await ingest_message(db, channel)
        async with db.transaction() as session:
            message = await _reply(session, taken.conversation_id, [PHOTO])
            assert [(a.filename, a.size) for a in message.attachments] == [("box.png", 512)]

    async def test_the_same_key_returns_the_first_reply_with_its_attachments(
        self, db: Database
    ) -> None:
        channel = await create_channel(db)
        taken = await ingest_message(db, channel)
        async with db.transaction() as session:
            first = await _reply(session, taken.conversation_id, [PHOTO])
        async with db.transaction() as session:
            again = await _reply(session, taken.conversation_id)
            assert again.id == first.id
            assert [a.filename for a in again.attachments] == ["box.png"]


class TestCloseConversation:
    async def test_closing_twice_closes_once(self, db: Database) -> None:
        channel = await create_channel(db)
        taken = await ingest_message(db, channel)
        for _ in range(2):
            async with db.transaction() as session:
                closed = await close_conversation(
                    session, taken.conversation_id, manager_id=None, now=utcnow()
                )
                assert closed.status == ConversationStatus.CLOSED
        async with db.read() as session:
            status = await session.scalar(
                select(Conversation.status).where(Conversation.id == taken.conversation_id)
            )
            events = await session.scalar(
                select(func.count())
                .select_from(OutboxEvent)
                .where(OutboxEvent.topic == "conversation.closed")
            )
        assert (status, events) == (ConversationStatus.CLOSED, 1)
