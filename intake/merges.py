"""Merging two contacts that are one person: everything of the absorbed contact moves.

Identities, conversations, leads, claims, calls and tasks (every table with a foreign key to
contacts, found in the models) move to the contact kept, in one transaction; the kept
contact's blanks (name, company, language, owner) are filled from the absorbed one and its
notes follow the kept contact's; the suggestions to merge the two are settled and the
absorbed contact's other suggestions move along. A `ContactMerge` row records who merged,
when, the absorbed contact as it was and the ids of every row that moved; a `contact.merged`
event tells the workers and open pages.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from intake.journal import Actor
from intake.merge_repository import MergeRepository, contact_references
from storage.errors import InvalidInput, NotFound
from storage.events import ContactMerged
from storage.models import ContactMerge
from storage.outbox import emit


async def merge_contacts(
    session: AsyncSession, into_id: int, from_id: int, actor: Actor, now: datetime
) -> ContactMerge:
    """Merge contact `from_id` into `into_id`; NotFound if either is gone (merged already)."""
    if into_id == from_id:
        raise InvalidInput("a contact cannot be merged into itself", code="same_contact")
    repo = MergeRepository(session)
    contacts = await repo.contacts_for_update(into_id, from_id)
    for contact_id in (into_id, from_id):
        if contact_id not in contacts:
            raise NotFound(f"no contact {contact_id}")
    into, absorbed = contacts[into_id], contacts[from_id]
    snapshot = {
        "name": absorbed.name,
        "company": absorbed.company,
        "language": absorbed.language,
        "owner_id": absorbed.owner_id,
        "attributes": absorbed.attributes,
        "notes": absorbed.notes,
        "identities": [
            {"kind": identity.kind, "value": identity.value}
            for identity in await repo.identities(from_id)
        ],
    }
    moved: dict[str, list[int]] = {}
    for table, column in contact_references():
        ids = await repo.move(table, column, from_id, into_id)
        if ids:
            moved[table.name] = ids
    settled = await repo.settle_suggestions(from_id, into_id)
    if settled:
        moved["merge_suggestions_settled"] = settled
    into.name = into.name or absorbed.name
    into.company = into.company or absorbed.company
    into.language = into.language or absorbed.language
    into.owner_id = into.owner_id or absorbed.owner_id
    # Both contacts' notes are kept, the kept contact's first.
    into.notes = "\n\n".join(note for note in (into.notes, absorbed.notes) if note) or None
    into.attributes = {**(absorbed.attributes or {}), **(into.attributes or {})}
    record = ContactMerge(
        into_contact_id=into_id,
        from_contact_id=from_id,
        manager_id=actor.manager_id,
        token_id=actor.token_id,
        absorbed=snapshot,
        moved=moved,
        created_at=now,
    )
    session.add(record)
    await session.flush()
    await repo.delete_contact(absorbed)
    emit(
        session,
        ContactMerged(
            contact_id=into_id,
            merged_contact_id=from_id,
            merge_id=record.id,
            conversation_ids=tuple(moved.get("conversations", [])),
            manager_id=actor.manager_id,
            token_id=actor.token_id,
        ),
    )
    return record


async def contact_merges(session: AsyncSession, contact_id: int) -> list[ContactMerge]:
    """The merges into a contact, newest first."""
    return await MergeRepository(session).merges_into(contact_id)
