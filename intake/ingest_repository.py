"""The queries intake needs; services call these and never write SQL themselves."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Any

from sqlalchemy import and_, bindparam, insert, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from intake.identities import IdentityValue
from storage.models import (
    Base,
    Contact,
    Conversation,
    ConversationStatus,
    Identity,
    Lead,
    MergeSuggestion,
    Message,
)
from storage.models.base import table_of


class IntakeRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def find_message(self, channel_id: int, external_id: str) -> Message | None:
        result = await self.session.scalars(
            select(Message).where(
                Message.channel_id == channel_id, Message.external_id == external_id
            )
        )
        return result.first()

    async def find_identities(self, values: Iterable[IdentityValue]) -> Sequence[Identity]:
        conditions = [and_(Identity.kind == v.kind, Identity.value == v.value) for v in values]
        if not conditions:
            return []
        result = await self.session.scalars(select(Identity).where(or_(*conditions)))
        return result.all()

    async def find_open_conversation(self, channel_id: int, thread_key: str) -> Conversation | None:
        result = await self.session.scalars(
            select(Conversation).where(
                Conversation.channel_id == channel_id,
                Conversation.thread_key == thread_key,
                Conversation.status != ConversationStatus.CLOSED,
            )
        )
        return result.first()

    async def conversation_contact_and_lead(self, conversation_id: int) -> tuple[int, int | None]:
        row = (
            await self.session.execute(
                select(Conversation.contact_id, Lead.id)
                .outerjoin(Lead, Lead.conversation_id == Conversation.id)
                .where(Conversation.id == conversation_id)
            )
        ).one()
        return int(row[0]), (int(row[1]) if row[1] is not None else None)

    async def lead_of_conversation(self, conversation_id: int) -> int | None:
        result = await self.session.scalars(
            select(Lead.id).where(Lead.conversation_id == conversation_id)
        )
        return result.first()

    async def contacts_oldest_first(self, ids: Sequence[int]) -> Sequence[Contact]:
        result = await self.session.scalars(
            select(Contact).where(Contact.id.in_(ids)).order_by(Contact.created_at, Contact.id)
        )
        return result.all()

    async def merge_suggestions_between(self, contact_id: int, others: Sequence[int]) -> set[int]:
        result = await self.session.scalars(
            select(MergeSuggestion.other_contact_id).where(
                MergeSuggestion.contact_id == contact_id,
                MergeSuggestion.other_contact_id.in_(others),
            )
        )
        return set(result.all())


class BulkIntakeRepository:
    """Set-at-a-time statements for ingesting a batch of messages in one transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def seen_messages(
        self, keys: Collection[tuple[int, str]]
    ) -> dict[tuple[int, str], tuple[int, int, int, int | None]]:
        """(channel_id, external_id) -> (message, conversation, contact, lead) ids."""
        if not keys:
            return {}
        rows = await self.session.execute(
            select(
                Message.channel_id,
                Message.external_id,
                Message.id,
                Message.conversation_id,
                Conversation.contact_id,
                Lead.id,
            )
            .join(Conversation, Conversation.id == Message.conversation_id)
            .outerjoin(Lead, Lead.conversation_id == Conversation.id)
            .where(tuple_(Message.channel_id, Message.external_id).in_(list(keys)))
        )
        return {(r[0], str(r[1])): (r[2], r[3], r[4], r[5]) for r in rows}

    async def open_threads(
        self, threads: Collection[tuple[int, str]]
    ) -> dict[tuple[int, str], int]:
        """(channel_id, thread_key) -> the open conversation's id, for those that have one."""
        if not threads:
            return {}
        table = table_of(Conversation)
        rows = await self.session.execute(
            select(table.c.channel_id, table.c.thread_key, table.c.id).where(
                tuple_(table.c.channel_id, table.c.thread_key).in_(list(threads)),
                table.c.status != ConversationStatus.CLOSED.value,
            )
        )
        return {(int(r[0]), str(r[1])): int(r[2]) for r in rows}

    async def leads_of(self, conversation_ids: Collection[int]) -> dict[int, int]:
        """conversation id -> its lead's id, for those that have one."""
        if not conversation_ids:
            return {}
        table = table_of(Lead)
        rows = await self.session.execute(
            select(table.c.conversation_id, table.c.id).where(
                table.c.conversation_id.in_(list(conversation_ids))
            )
        )
        return {int(r[0]): int(r[1]) for r in rows}

    async def touch_conversations(self, touches: Sequence[dict[str, Any]]) -> None:
        """Set each conversation's last message time (`cid`, `at`); `inbound` ones also
        their last inbound time."""
        table = table_of(Conversation)
        for inbound in (True, False):
            rows = [t for t in touches if t["inbound"] is inbound]
            if not rows:
                continue
            values: dict[str, Any] = {"last_message_at": bindparam("at")}
            if inbound:
                values["last_inbound_at"] = bindparam("at")
            await self.session.execute(
                update(table).where(table.c.id == bindparam("cid")).values(values),
                [{"cid": t["cid"], "at": t["at"]} for t in rows],
            )

    async def identity_owners(
        self, values: Collection[tuple[str, str]]
    ) -> dict[tuple[str, str], int]:
        """(kind, value) -> contact id, for the identities already known."""
        if not values:
            return {}
        rows = await self.session.execute(
            select(Identity.kind, Identity.value, Identity.contact_id).where(
                tuple_(Identity.kind, Identity.value).in_(list(values))
            )
        )
        return {(r[0], r[1]): r[2] for r in rows}

    async def insert_returning_ids(
        self, model: type[Base], rows: Sequence[dict[str, Any]]
    ) -> list[int]:
        if not rows:
            return []
        table = table_of(model)
        # Core, not the ORM's bulk insert: these rows need no identity map.
        if self.session.get_bind().dialect.name == "sqlite":
            # SQLAlchemy cannot promise RETURNING order on SQLite and would insert row
            # by row. One multi-row INSERT into a rowid table numbers its rows in
            # VALUES order (each new rowid is the largest so far plus one, and the
            # hub's writer holds the write lock), so ascending ids are in row order.
            result = await self.session.execute(insert(table).returning(table.c.id), list(rows))
            return sorted(int(value) for value in result.scalars().all())
        result = await self.session.execute(
            insert(table).returning(table.c.id, sort_by_parameter_order=True), list(rows)
        )
        return [int(value) for value in result.scalars().all()]

    async def insert_rows(self, model: type[Base], rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            await self.session.execute(insert(table_of(model)), list(rows))

    async def fill_missing_contact_details(self, details: Sequence[dict[str, Any]]) -> None:
        """Give known contacts a name or language where they have none yet."""
        for column in ("name", "language"):
            rows = [{"cid": d["id"], "v": d[column]} for d in details if d.get(column)]
            if rows:
                table = table_of(Contact)
                await self.session.execute(
                    update(table)
                    .where(table.c.id == bindparam("cid"))
                    # ingest() fills an empty name or language as well as a missing one.
                    .where(or_(table.c[column].is_(None), table.c[column] == ""))
                    .values({column: bindparam("v")}),
                    rows,
                )
