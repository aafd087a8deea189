"""The statements of a contact merge: every row that points at the absorbed contact moves."""

from __future__ import annotations

from sqlalchemy import Column, Table, and_, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Base, Contact, ContactMerge, Identity, MergeSuggestion


def contact_references() -> list[tuple[Table, Column[int]]]:
    """Every (table, column) with a foreign key to contacts.id, but the merge suggestions
    (the merge settles those itself), found in the models so a new table is never missed."""
    found = []
    for table in Base.metadata.sorted_tables:
        if table.name in ("merge_suggestions", "contact_merges"):
            continue
        for key in table.foreign_keys:
            if key.column.table.name == "contacts" and key.column.name == "id":
                found.append((table, key.parent))
    return found


class MergeRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def contacts_for_update(self, *contact_ids: int) -> dict[int, Contact]:
        rows = await self.session.scalars(
            select(Contact).where(Contact.id.in_(contact_ids)).with_for_update()
        )
        return {contact.id: contact for contact in rows}

    async def merges_into(self, contact_id: int) -> list[ContactMerge]:
        rows = await self.session.scalars(
            select(ContactMerge)
            .where(ContactMerge.into_contact_id == contact_id)
            .order_by(ContactMerge.id.desc())
        )
        return list(rows)

    async def delete_contact(self, contact: Contact) -> None:
        """Delete the absorbed contact by statement (its rows have moved, nothing cascades)."""
        await self.session.execute(delete(Contact).where(Contact.id == contact.id))
        self.session.expunge(contact)

    async def identities(self, contact_id: int) -> list[Identity]:
        rows = await self.session.scalars(
            select(Identity).where(Identity.contact_id == contact_id).order_by(Identity.id)
        )
        return list(rows)

    async def move(
        self, table: Table, column: Column[int], from_id: int, into_id: int
    ) -> list[int]:
        """Point `table`'s rows from one contact to the other; the ids of the rows moved."""
        primary = next(iter(table.primary_key.columns))
        result = await self.session.execute(
            update(table).where(column == from_id).values({column.name: into_id}).returning(primary)
        )
        return sorted(row[0] for row in result.all())

    async def settle_suggestions(self, from_id: int, into_id: int) -> list[int]:
        """The suggestions to merge these two are settled (deleted; the merge's record keeps
        their ids); the absorbed contact's other suggestions move to the contact it joined,
        unless that pair is suggested already."""
        pair = or_(
            and_(
                MergeSuggestion.contact_id == from_id, MergeSuggestion.other_contact_id == into_id
            ),
            and_(
                MergeSuggestion.contact_id == into_id, MergeSuggestion.other_contact_id == from_id
            ),
        )
        result = await self.session.execute(
            delete(MergeSuggestion).where(pair).returning(MergeSuggestion.id)
        )
        settled = sorted(row[0] for row in result.all())
        involved = await self.session.scalars(
            select(MergeSuggestion).where(
                or_(
                    MergeSuggestion.contact_id.in_((from_id, into_id)),
                    MergeSuggestion.other_contact_id.in_((from_id, into_id)),
                )
            )
        )
        suggestions = list(involved)
        kept = {
            frozenset((s.contact_id, s.other_contact_id))
            for s in suggestions
            if from_id not in (s.contact_id, s.other_contact_id)
        }
        for suggestion in suggestions:
            if from_id not in (suggestion.contact_id, suggestion.other_contact_id):
                continue
            contact_id = into_id if suggestion.contact_id == from_id else suggestion.contact_id
            other_id = (
                into_id if suggestion.other_contact_id == from_id else suggestion.other_contact_id
            )
            if frozenset((contact_id, other_id)) in kept:
                await self.session.delete(suggestion)
            else:
                suggestion.contact_id, suggestion.other_contact_id = contact_id, other_id
                kept.add(frozenset((contact_id, other_id)))
        await self.session.flush()
        return settled
