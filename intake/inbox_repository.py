"""The managers' workspace's own queries: canned replies and read positions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from intake.journal_repository import contains_any
from storage.models import CannedReply, ConversationRead, Message, MessageDirection
from storage.models.base import table_of


class InboxRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # Canned replies

    async def canned_replies(
        self, manager_id: int | None, *, prefix: str | None, limit: int
    ) -> Sequence[CannedReply]:
        """The shared replies and `manager_id`'s own, by shortcut; `prefix` narrows them to
        shortcuts starting with it or titles containing it."""
        query = select(CannedReply).where(
            or_(CannedReply.owner_id.is_(None), CannedReply.owner_id == manager_id)
        )
        if prefix:
            escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(
                or_(
                    func.lower(CannedReply.shortcut).like(escaped.lower() + "%", escape="\\"),
                    contains_any(CannedReply.title, prefix),
                )
            )
        query = query.order_by(CannedReply.shortcut, CannedReply.owner_id.is_(None)).limit(limit)
        return (await self.session.scalars(query)).all()

    async def canned_reply(self, reply_id: int) -> CannedReply | None:
        return await self.session.get(CannedReply, reply_id)

    async def shortcut_taken(
        self, owner_id: int | None, shortcut: str, *, except_id: int | None = None
    ) -> bool:
        query = select(CannedReply.id).where(
            CannedReply.shortcut == shortcut,
            CannedReply.owner_id.is_(None)
            if owner_id is None
            else CannedReply.owner_id == owner_id,
        )
        if except_id is not None:
            query = query.where(CannedReply.id != except_id)
        return (await self.session.scalar(query.limit(1))) is not None

    # Read positions

    async def latest_message_ids(self, conversation_ids: Sequence[int]) -> dict[int, int]:
        """Each conversation's latest inbound message id (those without one are absent)."""
        if not conversation_ids:
            return {}
        rows = await self.session.execute(
            select(Message.conversation_id, func.max(Message.id))
            .where(
                Message.conversation_id.in_(conversation_ids),
                Message.direction == MessageDirection.INBOUND,
            )
            .group_by(Message.conversation_id)
        )
        return {conversation_id: message_id for conversation_id, message_id in rows.all()}

    async def read_positions(
        self, manager_id: int, conversation_ids: Sequence[int]
    ) -> dict[int, int]:
        if not conversation_ids:
            return {}
        rows = await self.session.execute(
            select(ConversationRead.conversation_id, ConversationRead.last_read_message_id).where(
                ConversationRead.manager_id == manager_id,
                ConversationRead.conversation_id.in_(conversation_ids),
            )
        )
        return {conversation_id: message_id for conversation_id, message_id in rows.all()}

    async def latest_message_id(self, conversation_id: int) -> int | None:
        return await self.session.scalar(
            select(func.max(Message.id)).where(Message.conversation_id == conversation_id)
        )

    async def set_read_position(
        self, manager_id: int, conversation_id: int, message_id: int, now: datetime
    ) -> None:
        """Move the manager's read position forward to `message_id` (never back)."""
        dialect = self.session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        table = table_of(ConversationRead)
        statement = insert(table).values(
            manager_id=manager_id,
            conversation_id=conversation_id,
            last_read_message_id=message_id,
            read_at=now,
        )
        statement = statement.on_conflict_do_update(
            index_elements=[table.c.manager_id, table.c.conversation_id],
            set_={
                "last_read_message_id": func.max(
                    table.c.last_read_message_id, statement.excluded.last_read_message_id
                )
                if dialect == "sqlite"
                else func.greatest(
                    table.c.last_read_message_id, statement.excluded.last_read_message_id
                ),
                "read_at": statement.excluded.read_at,
            },
        )
        await self.session.execute(statement)
