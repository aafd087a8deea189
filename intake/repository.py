"""The queries intake needs; services call these and never write SQL themselves."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from intake.identities import IdentityValue
from storage.models import (
    Contact,
    Conversation,
    ConversationStatus,
    Identity,
    Lead,
    MergeSuggestion,
    Message,
)


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
