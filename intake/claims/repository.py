"""The queries claims need: numbers per year, lookups, filtered lists, history."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, func, or_, select, true
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from intake.visibility import Viewer, visible_to
from storage.models import (
    Attachment,
    Claim,
    ClaimSequence,
    ClaimStep,
    Contact,
    Conversation,
    Manager,
)
from storage.repositories import attachments_of


def claims_visible_to(viewer: Viewer | None) -> ColumnElement[bool]:
    """The claims `viewer` may see: those of the conversations they see (intake.visibility)
    and those they are responsible for; everything without a viewer or for an admin."""
    if viewer is None or viewer.is_admin:
        return true()
    conversations = select(Conversation.id).where(visible_to(viewer))
    if viewer.manager_id is None:
        return Claim.conversation_id.in_(conversations)
    return or_(Claim.manager_id == viewer.manager_id, Claim.conversation_id.in_(conversations))


@dataclass(frozen=True, slots=True)
class ClaimFilters:
    statuses: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()
    manager_id: int | None = None
    unassigned: bool = False
    contact_id: int | None = None
    channel_id: int | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None


class ClaimRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def next_sequence(self, year: int) -> int:
        """The next number of `year`, safe under concurrency.

        One upsert: PostgreSQL holds the year's row lock until the transaction ends, so
        concurrent filers queue; SQLite has one writer at a time anyway.
        """
        dialect = self.session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = (
            insert(ClaimSequence)
            .values(year=year, last_value=1)
            .on_conflict_do_update(
                index_elements=[ClaimSequence.year],
                set_={"last_value": ClaimSequence.last_value + 1},
            )
            .returning(ClaimSequence.last_value)
        )
        return int((await self.session.execute(statement)).scalar_one())

    async def by_external_id(self, channel_id: int, external_id: str) -> Claim | None:
        result = await self.session.scalars(
            select(Claim).where(Claim.channel_id == channel_id, Claim.external_id == external_id)
        )
        return result.first()

    async def get(self, claim_id: int) -> Claim | None:
        return await self.session.get(Claim, claim_id)

    async def by_number(self, number: str) -> Claim | None:
        return (await self.session.scalars(select(Claim).where(Claim.number == number))).first()

    async def for_update(self, claim_id: int) -> Claim | None:
        query = select(Claim).where(Claim.id == claim_id)
        if self.session.get_bind().dialect.name != "sqlite":
            query = query.with_for_update()
        return (await self.session.scalars(query)).first()

    async def visible(self, claim: Claim, viewer: Viewer | None) -> bool:
        if viewer is None or viewer.is_admin:
            return True
        query = select(Claim.id).where(Claim.id == claim.id, claims_visible_to(viewer))
        return (await self.session.scalar(query)) is not None

    async def list(
        self,
        filters: ClaimFilters,
        *,
        after_id: int | None,
        limit: int,
        viewer: Viewer | None = None,
    ) -> list[Claim]:
        query = select(Claim).order_by(Claim.id.desc()).limit(limit)
        if viewer is not None and not viewer.is_admin:
            query = query.where(claims_visible_to(viewer))
        if after_id is not None:
            query = query.where(Claim.id < after_id)
        if filters.statuses:
            query = query.where(Claim.status.in_(filters.statuses))
        if filters.reasons:
            query = query.where(Claim.reason.in_(filters.reasons))
        if filters.unassigned:
            query = query.where(Claim.manager_id.is_(None))
        elif filters.manager_id is not None:
            query = query.where(Claim.manager_id == filters.manager_id)
        if filters.contact_id is not None:
            query = query.where(Claim.contact_id == filters.contact_id)
        if filters.channel_id is not None:
            query = query.where(Claim.channel_id == filters.channel_id)
        if filters.created_from is not None:
            query = query.where(Claim.created_at >= filters.created_from)
        if filters.created_to is not None:
            query = query.where(Claim.created_at < filters.created_to)
        return list((await self.session.scalars(query)).all())

    async def count_by_status(
        self, viewer: Viewer | None, manager_id: int | None
    ) -> dict[str, int]:
        """How many claims of each status `viewer` sees (only `manager_id`'s, if given)."""
        query = select(Claim.status, func.count()).group_by(Claim.status)
        if viewer is not None and not viewer.is_admin:
            query = query.where(claims_visible_to(viewer))
        if manager_id is not None:
            query = query.where(Claim.manager_id == manager_id)
        return {row[0]: row[1] for row in await self.session.execute(query)}

    async def of_contact(self, contact_id: int, limit: int) -> Sequence[Claim]:
        query = (
            select(Claim)
            .where(Claim.contact_id == contact_id)
            .order_by(Claim.id.desc())
            .limit(limit)
        )
        return (await self.session.scalars(query)).all()

    async def steps(self, claim_id: int) -> Sequence[ClaimStep]:
        query = select(ClaimStep).where(ClaimStep.claim_id == claim_id).order_by(ClaimStep.id)
        return (await self.session.scalars(query)).all()

    async def attachments(self, message_id: int | None) -> Sequence[Attachment]:
        return [] if message_id is None else await attachments_of(self.session, message_id)

    async def contact(self, contact_id: int) -> Contact | None:
        return await self.session.get(Contact, contact_id)

    async def contacts(self, contact_ids: Collection[int]) -> dict[int, Contact]:
        if not contact_ids:
            return {}
        rows = await self.session.scalars(select(Contact).where(Contact.id.in_(contact_ids)))
        return {contact.id: contact for contact in rows}

    async def manager_names(self, manager_ids: Collection[int]) -> dict[int, str]:
        if not manager_ids:
            return {}
        query = select(Manager.id, Manager.name).where(Manager.id.in_(manager_ids))
        return {row.id: row.name for row in await self.session.execute(query)}

    async def step_for_update(self, claim_id: int, step_id: int) -> ClaimStep | None:
        query = select(ClaimStep).where(ClaimStep.id == step_id, ClaimStep.claim_id == claim_id)
        if self.session.get_bind().dialect.name != "sqlite":
            query = query.with_for_update()
        return (await self.session.scalars(query)).first()

    async def manager_exists(self, manager_id: int) -> bool:
        return await self.session.get(Manager, manager_id) is not None
