"""The contact panel: who the client is, everything the hub holds about them, the merges
suggested and done, and the managers' edits of name, company and notes.

A manager sees a contact when they may see one of its conversations (an administrator sees
every contact); the panel lists only the conversations the manager may open, and says how
many others there are. Edits and merges are the same services the REST API calls.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from intake.contact_card_repository import ContactCardRepository, ContactConversation, Latest
from intake.journal_repository import JournalRepository
from intake.merge_repository import MergeRepository
from intake.visibility import Viewer
from storage.errors import InvalidInput, NotFound
from storage.events import ContactChanged
from storage.models import Contact, ContactMerge, Identity, MergeSuggestion
from storage.outbox import emit

LATEST = 3
NAME_LIMIT = 200
COMPANY_LIMIT = 200
NOTES_LIMIT = 5000
# Control characters but tab and newlines: never part of a name or a note.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class SuggestedMerge:
    """An open suggestion to merge `other` into the contact, with what the merge would move."""

    suggestion: MergeSuggestion
    other: Contact
    moves: dict[str, int]


@dataclass(frozen=True, slots=True)
class MergeDone:
    """A merge into the contact, with the name of the manager who did it."""

    merge: ContactMerge
    manager_name: str | None

    @property
    def moved_counts(self) -> dict[str, int]:
        return {
            table: len(ids)
            for table, ids in self.merge.moved.items()
            if table != "merge_suggestions_settled" and ids
        }


@dataclass(frozen=True, slots=True)
class ContactCard:
    contact: Contact
    identities: list[Identity]
    owner_name: str | None
    conversations: list[ContactConversation]
    hidden_conversations: int
    leads: Latest
    claims: Latest
    calls: Latest
    suggestions: list[SuggestedMerge] = field(default_factory=list)
    merges: list[MergeDone] = field(default_factory=list)


async def visible_contact(session: AsyncSession, viewer: Viewer, contact_id: int) -> Contact:
    """The contact if `viewer` may see it: an administrator any; a manager one with a
    conversation they may see, or one they own. NotFound otherwise (the REST API's GET and
    PATCH of a contact and the workspace's contact panel decide by this one rule)."""
    repo = ContactCardRepository(session)
    contact = await repo.contact(contact_id)
    if contact is None:
        raise NotFound(f"no contact {contact_id}")
    if viewer.is_admin:
        return contact
    owns = viewer.manager_id is not None and contact.owner_id == viewer.manager_id
    if not (owns or await repo.sees_contact(viewer, contact_id)):
        raise NotFound(f"no contact {contact_id}")
    return contact


async def contact_card(session: AsyncSession, viewer: Viewer, contact_id: int) -> ContactCard:
    """Everything the panel shows about a contact the viewer may see; NotFound otherwise."""
    repo = ContactCardRepository(session)
    contact = await visible_contact(session, viewer, contact_id)
    conversations, hidden = await repo.conversations(viewer, contact_id)
    open_suggestions = await JournalRepository(session).open_merge_suggestions(contact_id)
    other_ids = [
        s.other_contact_id if s.contact_id == contact_id else s.contact_id for s in open_suggestions
    ]
    others = await repo.contacts(other_ids)
    suggestions = [
        SuggestedMerge(s, others[other_id], await repo.reference_counts(other_id))
        for s, other_id in zip(open_suggestions, other_ids, strict=True)
        if other_id in others
    ]
    merges = await MergeRepository(session).merges_into(contact_id)
    names = await repo.manager_names(
        {m.manager_id for m in merges if m.manager_id is not None}
        | ({contact.owner_id} if contact.owner_id is not None else set())
    )
    return ContactCard(
        contact=contact,
        identities=list(contact.identities),
        owner_name=names.get(contact.owner_id) if contact.owner_id is not None else None,
        conversations=conversations,
        hidden_conversations=hidden,
        leads=await repo.leads(contact_id, LATEST),
        claims=await repo.claims(contact_id, LATEST),
        calls=await repo.calls(contact_id, LATEST),
        suggestions=suggestions,
        merges=[
            MergeDone(m, names.get(m.manager_id) if m.manager_id is not None else None)
            for m in merges
        ],
    )


@dataclass(frozen=True, slots=True)
class ContactChanges:
    """What a manager changes of a contact; None leaves a field as it is, "" clears it."""

    name: str | None = None
    company: str | None = None
    notes: str | None = None


def _checked(value: str | None, field_name: str, limit: int, *, multiline: bool) -> str | None:
    if value is None:
        return None
    text = value.strip() if multiline else " ".join(value.split())
    code = f"invalid_{field_name}"
    if _CONTROL.search(text):
        raise InvalidInput(f"{field_name} contains control characters", code=code)
    if len(text) > limit:
        raise InvalidInput(f"{field_name} is longer than {limit} characters", code=code)
    return text


def check_changes(changes: ContactChanges) -> ContactChanges:
    """The changes tidied (spaces trimmed); InvalidInput(invalid_name, invalid_company,
    invalid_notes) for text too long or with control characters."""
    return ContactChanges(
        name=_checked(changes.name, "name", NAME_LIMIT, multiline=False),
        company=_checked(changes.company, "company", COMPANY_LIMIT, multiline=False),
        notes=_checked(changes.notes, "notes", NOTES_LIMIT, multiline=True),
    )


async def update_contact(
    session: AsyncSession, contact_id: int, changes: ContactChanges
) -> Contact:
    """Change a contact's name, company and notes (`contact.changed` tells open panels);
    NotFound if there is no such contact. Never commits."""
    checked = check_changes(changes)
    contact = await ContactCardRepository(session).contact_for_update(contact_id)
    if contact is None:
        raise NotFound(f"no contact {contact_id}")
    if checked.name is not None:
        contact.name = checked.name or None
    if checked.company is not None:
        contact.company = checked.company or None
    if checked.notes is not None:
        contact.notes = checked.notes or None
    emit(session, ContactChanged(contact_id=contact_id))
    await session.flush()
    return contact
