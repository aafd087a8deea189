"""The statements of the contact panel: a contact's conversations (as a viewer sees them),
its leads, claims and calls (a count and the latest few), and what a merge would move."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, exists, func, literal, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from intake.merge_repository import contact_references
from intake.visibility import Viewer, visible_to
from storage.models import Call, Channel, Claim, Contact, Conversation, Lead, Manager


@dataclass(frozen=True, slots=True)
class ContactConversation:
    conversation: Conversation
    channel_kind: str
    channel_title: str


@dataclass(frozen=True, slots=True)
class Latest:
    """How many rows there are, and the newest few of them."""

    count: int
    items: list[Any]


class ContactCardRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def contact(self, contact_id: int) -> Contact | None:
        found = await self.session.scalars(
            select(Contact)
            .where(Contact.id == contact_id)
            .options(selectinload(Contact.identities))
        )
        return found.first()

    async def contacts(self, contact_ids: Sequence[int]) -> dict[int, Contact]:
        if not contact_ids:
            return {}
        found = await self.session.scalars(
            select(Contact)
            .where(Contact.id.in_(contact_ids))
            .options(selectinload(Contact.identities))
        )
        return {contact.id: contact for contact in found}

    async def contact_for_update(self, contact_id: int) -> Contact | None:
        found = await self.session.scalars(
            select(Contact).where(Contact.id == contact_id).with_for_update()
        )
        return found.first()

    async def sees_contact(self, viewer: Viewer, contact_id: int) -> bool:
        """Whether the viewer may see at least one of the contact's conversations."""
        query = select(exists().where(Conversation.contact_id == contact_id, visible_to(viewer)))
        return bool(await self.session.scalar(query))

    async def manager_names(self, manager_ids: set[int]) -> dict[int, str]:
        if not manager_ids:
            return {}
        rows = await self.session.execute(
            select(Manager.id, Manager.name).where(Manager.id.in_(manager_ids))
        )
        return {manager_id: name for manager_id, name in rows.all()}

    async def conversations(
        self, viewer: Viewer, contact_id: int
    ) -> tuple[list[ContactConversation], int]:
        """The contact's conversations the viewer may see, latest activity first, and how
        many others there are."""
        query = (
            select(Conversation, Channel.kind, Channel.title, visible_to(viewer).label("seen"))
            .join(Channel, Channel.id == Conversation.channel_id)
            .where(Conversation.contact_id == contact_id)
            .order_by(Conversation.last_message_at.desc().nulls_last(), Conversation.id.desc())
        )
        shown: list[ContactConversation] = []
        hidden = 0
        for conversation, kind, title, seen in (await self.session.execute(query)).all():
            if seen:
                shown.append(ContactConversation(conversation, kind, title))
            else:
                hidden += 1
        return shown, hidden

    async def _latest(
        self, model: Any, condition: ColumnElement[bool], order: Any, limit: int
    ) -> Latest:
        count = await self.session.scalar(select(func.count()).select_from(model).where(condition))
        items = await self.session.scalars(
            select(model).where(condition).order_by(order.desc(), model.id.desc()).limit(limit)
        )
        return Latest(int(count or 0), list(items))

    async def leads(self, contact_id: int, limit: int) -> Latest:
        return await self._latest(Lead, Lead.contact_id == contact_id, Lead.created_at, limit)

    async def claims(self, contact_id: int, limit: int) -> Latest:
        return await self._latest(Claim, Claim.contact_id == contact_id, Claim.created_at, limit)

    async def calls(self, contact_id: int, limit: int) -> Latest:
        return await self._latest(Call, Call.contact_id == contact_id, Call.started_at, limit)

    async def reference_counts(self, contact_id: int) -> dict[str, int]:
        """Per table, how many rows point at the contact (what a merge of it would move),
        in one statement."""
        counts = [
            select(literal(table.name).label("name"), func.count().label("rows"))
            .select_from(table)
            .where(column == contact_id)
            for table, column in contact_references()
        ]
        rows = await self.session.execute(union_all(*counts))
        found: dict[str, int] = {}
        for name, count in rows.all():
            if count:
                found[name] = found.get(name, 0) + int(count)
        return found
