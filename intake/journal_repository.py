"""The lead journal's queries: leads, contacts, conversations and messages as managers see them.

Case-insensitive text search has to work for Cyrillic on both backends.
PostgreSQL's ILIKE folds case by the database's LC_CTYPE (Unicode-aware for
C.UTF-8 and the usual locales, ASCII-only for plain "C"); SQLite's LIKE and
lower() fold ASCII only. Rather than keep a folded copy of every searchable
column, the needle is searched in the spellings people actually write
(as typed, lower, UPPER, Capitalized, Title Case): "иванов" finds "Иванов" and
"ИВАНОВ" everywhere, though not "иВаНоВ" on SQLite.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from intake.visibility import Viewer, visible_to
from storage.models import (
    Channel,
    Contact,
    Conversation,
    Identity,
    IdentityKind,
    Lead,
    Manager,
    MergeSuggestion,
    Message,
)

_ID_TEXT = re.compile(r"[0-9]{1,18}")


@dataclass(frozen=True, slots=True)
class LeadFilters:
    """Which leads to show; every field narrows the journal, None/empty means any.

    `created_from` is inclusive and `created_to` exclusive (aware datetimes).
    `channel` is a channel key or id; `source` a channel kind.
    """

    channel: str | None = None
    statuses: tuple[str, ...] = ()
    source: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    assignee_id: int | None = None
    unassigned: bool = False
    text: str | None = None


@dataclass(frozen=True, slots=True)
class ConversationFilters:
    statuses: tuple[str, ...] = ()
    channel: str | None = None
    contact_id: int | None = None
    assignee_id: int | None = None
    unassigned: bool = False


@dataclass(frozen=True, slots=True)
class ContactCriteria:
    """Normalised contact search terms (built by `intake.journal.search_contacts`)."""

    text: str | None = None
    text_phone: str | None = None
    phone: str | None = None
    phone_digits: str | None = None
    email: str | None = None
    email_fragment: str | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class LeadRow:
    """A lead with what the journal shows next to it."""

    lead: Lead
    contact_name: str | None
    channel_key: str
    channel_kind: str
    assignee_name: str | None
    email: str | None = None
    phone: str | None = None


@dataclass(frozen=True, slots=True)
class ConversationRow:
    conversation: Conversation
    channel_key: str
    channel_kind: str
    contact_name: str | None
    lead_id: int | None


@dataclass(slots=True)
class PrimaryIdentities:
    email: str | None = None
    phone: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def spellings(needle: str) -> list[str]:
    """The case variants of `needle` searched for (see the module's docstring)."""
    variants = [
        needle,
        needle.lower(),
        needle.upper(),
        needle.capitalize(),
        needle.title(),
        needle.casefold(),
    ]
    return list(dict.fromkeys(variants))


def contains_any(column: Any, needle: str) -> ColumnElement[bool]:
    """`column` contains `needle` case-insensitively (as far as the backend allows)."""
    return or_(*(column.ilike(f"%{_escape_like(v)}%", escape="\\") for v in spellings(needle)))


def _channel_condition(value: str, id_column: Any) -> ColumnElement[bool]:
    condition: ColumnElement[bool] = Channel.key == value
    if _ID_TEXT.fullmatch(value):
        condition = or_(condition, id_column == int(value))
    return condition


def _lead_row(row: Any) -> LeadRow:
    # Outer-joined columns (the assignee) are None when there is no match.
    lead, contact_name, channel_key, channel_kind, assignee_name = row
    return LeadRow(
        lead=lead,
        contact_name=contact_name,
        channel_key=channel_key,
        channel_kind=channel_kind,
        assignee_name=assignee_name,
    )


def _conversation_row(row: Any) -> ConversationRow:
    conversation, channel_key, channel_kind, contact_name, lead_id = row
    return ConversationRow(
        conversation=conversation,
        channel_key=channel_key,
        channel_kind=channel_kind,
        contact_name=contact_name,
        lead_id=lead_id,
    )


class JournalRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # Leads

    def _lead_query(self) -> Select[Lead, str | None, str, str, str]:
        return (
            select(Lead, Contact.name, Channel.key, Channel.kind, Manager.name)
            .join(Contact, Contact.id == Lead.contact_id)
            .join(Channel, Channel.id == Lead.channel_id)
            .outerjoin(Manager, Manager.id == Lead.assignee_id)
        )

    def _visible_leads(
        self, query: Select[Lead, str | None, str, str, str], viewer: Viewer | None
    ) -> Select[Lead, str | None, str, str, str]:
        """Only the leads whose conversation `viewer` may see (all of them for None)."""
        if viewer is None or viewer.is_admin:
            return query
        return query.join(Conversation, Conversation.id == Lead.conversation_id).where(
            visible_to(viewer)
        )

    async def list_leads(
        self,
        filters: LeadFilters,
        *,
        before_id: int | None,
        limit: int,
        viewer: Viewer | None = None,
    ) -> list[LeadRow]:
        """Leads matching `filters` (and seen by `viewer`, when given), id descending,
        with id < before_id."""
        query = self._visible_leads(self._lead_query(), viewer)
        conditions: list[ColumnElement[bool]] = []
        if filters.channel:
            conditions.append(_channel_condition(filters.channel, Lead.channel_id))
        if filters.statuses:
            conditions.append(Lead.status.in_(filters.statuses))
        if filters.source:
            conditions.append(Lead.source == filters.source)
        if filters.created_from is not None:
            conditions.append(Lead.created_at >= filters.created_from)
        if filters.created_to is not None:
            conditions.append(Lead.created_at < filters.created_to)
        if filters.unassigned:
            conditions.append(Lead.assignee_id.is_(None))
        elif filters.assignee_id is not None:
            conditions.append(Lead.assignee_id == filters.assignee_id)
        if filters.text:
            identity_match = exists().where(
                Identity.contact_id == Lead.contact_id, contains_any(Identity.value, filters.text)
            )
            conditions.append(
                or_(
                    contains_any(Lead.title, filters.text),
                    contains_any(Lead.summary, filters.text),
                    contains_any(Contact.name, filters.text),
                    identity_match,
                )
            )
        if before_id is not None:
            conditions.append(Lead.id < before_id)
        query = query.where(*conditions).order_by(Lead.id.desc()).limit(limit)
        rows = (await self.session.execute(query)).all()
        return await self._with_identities([_lead_row(row) for row in rows])

    async def get_lead_row(self, lead_id: int, viewer: Viewer | None = None) -> LeadRow | None:
        query = self._visible_leads(self._lead_query(), viewer).where(Lead.id == lead_id)
        row = (await self.session.execute(query)).first()
        if row is None:
            return None
        return (await self._with_identities([_lead_row(row)]))[0]

    async def lead_id_of_conversation(self, conversation_id: int) -> int | None:
        result = await self.session.scalar(
            select(Lead.id).where(Lead.conversation_id == conversation_id)
        )
        return result

    async def lead_for_update(self, lead_id: int) -> Lead | None:
        # SQLite drops FOR UPDATE; its writers are serialised by BEGIN IMMEDIATE anyway.
        result = await self.session.scalars(
            select(Lead).where(Lead.id == lead_id).with_for_update()
        )
        return result.first()

    async def _with_identities(self, rows: list[LeadRow]) -> list[LeadRow]:
        primary = await self.primary_identities({row.lead.contact_id for row in rows})
        return [
            LeadRow(
                lead=row.lead,
                contact_name=row.contact_name,
                channel_key=row.channel_key,
                channel_kind=row.channel_kind,
                assignee_name=row.assignee_name,
                email=primary.get(row.lead.contact_id, PrimaryIdentities()).email,
                phone=primary.get(row.lead.contact_id, PrimaryIdentities()).phone,
            )
            for row in rows
        ]

    async def primary_identities(self, contact_ids: set[int]) -> dict[int, PrimaryIdentities]:
        """Each contact's first reachable email and phone (the oldest when none is reachable)."""
        if not contact_ids:
            return {}
        result = await self.session.execute(
            select(Identity.contact_id, Identity.kind, Identity.value)
            .where(
                Identity.contact_id.in_(contact_ids),
                Identity.kind.in_([IdentityKind.EMAIL, IdentityKind.PHONE]),
            )
            .order_by(Identity.unreachable_at.is_not(None), Identity.id)
        )
        primary: dict[int, PrimaryIdentities] = {}
        for contact_id, kind, value in result.all():
            entry = primary.setdefault(contact_id, PrimaryIdentities())
            if kind == IdentityKind.EMAIL and entry.email is None:
                entry.email = value
            elif kind == IdentityKind.PHONE and entry.phone is None:
                entry.phone = value
        return primary

    # Contacts

    async def get_contact(self, contact_id: int) -> Contact | None:
        result = await self.session.scalars(
            select(Contact)
            .where(Contact.id == contact_id)
            .options(selectinload(Contact.identities))
        )
        return result.first()

    async def get_channel(self, channel_id: int) -> Channel | None:
        return await self.session.get(Channel, channel_id)

    async def search_contacts(
        self, criteria: ContactCriteria, *, before_id: int | None, limit: int
    ) -> Sequence[Contact]:
        """Contacts matching every given criterion, id descending, with identities loaded."""

        def has_identity(*conditions: ColumnElement[bool]) -> ColumnElement[bool]:
            return exists().where(Identity.contact_id == Contact.id, *conditions)

        conditions: list[ColumnElement[bool]] = []
        if criteria.phone is not None:
            conditions.append(
                has_identity(Identity.kind == IdentityKind.PHONE, Identity.value == criteria.phone)
            )
        elif criteria.phone_digits is not None:
            conditions.append(
                has_identity(
                    Identity.kind == IdentityKind.PHONE,
                    Identity.value.contains(criteria.phone_digits, autoescape=True),
                )
            )
        if criteria.email is not None:
            conditions.append(
                has_identity(Identity.kind == IdentityKind.EMAIL, Identity.value == criteria.email)
            )
        elif criteria.email_fragment is not None:
            conditions.append(
                has_identity(
                    Identity.kind == IdentityKind.EMAIL,
                    contains_any(Identity.value, criteria.email_fragment),
                )
            )
        if criteria.name is not None:
            conditions.append(contains_any(Contact.name, criteria.name))
        if criteria.text is not None:
            alternatives = [
                contains_any(Contact.name, criteria.text),
                contains_any(Contact.company, criteria.text),
                has_identity(contains_any(Identity.value, criteria.text)),
            ]
            if criteria.text_phone is not None:
                alternatives.append(
                    has_identity(
                        Identity.kind == IdentityKind.PHONE, Identity.value == criteria.text_phone
                    )
                )
            conditions.append(or_(*alternatives))
        if before_id is not None:
            conditions.append(Contact.id < before_id)
        query = (
            select(Contact)
            .where(*conditions)
            .options(selectinload(Contact.identities))
            .order_by(Contact.id.desc())
            .limit(limit)
        )
        return (await self.session.scalars(query)).all()

    async def open_merge_suggestions(self, contact_id: int) -> Sequence[MergeSuggestion]:
        result = await self.session.scalars(
            select(MergeSuggestion)
            .where(
                or_(
                    MergeSuggestion.contact_id == contact_id,
                    MergeSuggestion.other_contact_id == contact_id,
                ),
                MergeSuggestion.status == "open",
            )
            .order_by(MergeSuggestion.id)
        )
        return result.all()

    # Conversations and messages

    def _conversation_query(self) -> Select[Conversation, str, str, str | None, int]:
        return (
            select(Conversation, Channel.key, Channel.kind, Contact.name, Lead.id)
            .join(Channel, Channel.id == Conversation.channel_id)
            .join(Contact, Contact.id == Conversation.contact_id)
            .outerjoin(Lead, Lead.conversation_id == Conversation.id)
        )

    async def contact_conversations(self, contact_id: int) -> list[ConversationRow]:
        """All of a contact's conversations in every channel, latest activity first."""
        query = (
            self._conversation_query()
            .where(Conversation.contact_id == contact_id)
            .order_by(Conversation.last_message_at.desc().nulls_last(), Conversation.id.desc())
        )
        return [_conversation_row(row) for row in (await self.session.execute(query)).all()]

    async def list_conversations(
        self, filters: ConversationFilters, *, before_id: int | None, limit: int
    ) -> list[ConversationRow]:
        conditions: list[ColumnElement[bool]] = []
        if filters.statuses:
            conditions.append(Conversation.status.in_(filters.statuses))
        if filters.channel:
            conditions.append(_channel_condition(filters.channel, Conversation.channel_id))
        if filters.contact_id is not None:
            conditions.append(Conversation.contact_id == filters.contact_id)
        if filters.unassigned:
            conditions.append(Conversation.assignee_id.is_(None))
        elif filters.assignee_id is not None:
            conditions.append(Conversation.assignee_id == filters.assignee_id)
        if before_id is not None:
            conditions.append(Conversation.id < before_id)
        query = (
            self._conversation_query()
            .where(*conditions)
            .order_by(Conversation.id.desc())
            .limit(limit)
        )
        return [_conversation_row(row) for row in (await self.session.execute(query)).all()]

    async def get_conversation_row(self, conversation_id: int) -> ConversationRow | None:
        query = self._conversation_query().where(Conversation.id == conversation_id)
        row = (await self.session.execute(query)).first()
        return _conversation_row(row) if row is not None else None

    async def conversation_rows(self, conversation_ids: Sequence[int]) -> list[ConversationRow]:
        """The rows of these conversations, in the order of `conversation_ids`."""
        if not conversation_ids:
            return []
        query = self._conversation_query().where(Conversation.id.in_(conversation_ids))
        found = {
            row.conversation.id: row
            for row in (_conversation_row(r) for r in (await self.session.execute(query)).all())
        }
        return [found[i] for i in conversation_ids if i in found]

    async def conversation_exists(self, conversation_id: int) -> bool:
        result = await self.session.scalar(
            select(Conversation.id).where(Conversation.id == conversation_id)
        )
        return result is not None

    async def messages(
        self, conversation_id: int, *, after_id: int | None, limit: int
    ) -> Sequence[Message]:
        """A conversation's messages oldest first, with their attachments loaded."""
        query = (
            select(Message)
            .where(Message.conversation_id == conversation_id)
            .options(selectinload(Message.attachments))
            .order_by(Message.id)
            .limit(limit)
        )
        if after_id is not None:
            query = query.where(Message.id > after_id)
        return (await self.session.scalars(query)).all()
