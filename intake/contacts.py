"""Recognising the person behind an inbound message across channels."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from intake.identities import IdentityValue
from intake.ingest_repository import IntakeRepository
from storage.events import ContactMergeSuggested
from storage.models import Contact, Identity, MergeSuggestion
from storage.outbox import emit


@dataclass(frozen=True, slots=True)
class Resolution:
    contact: Contact
    created: bool
    merge_suggested_with: tuple[int, ...] = ()


async def resolve_contact(
    session: AsyncSession,
    identities: Sequence[IdentityValue],
    *,
    name: str | None = None,
    language: str | None = None,
) -> Resolution:
    """The contact these identities belong to, created if none is known.

    Identities already known under different contacts are never merged silently:
    the message goes to the oldest contact, the new identities are attached to it,
    and a merge suggestion is recorded for a manager to decide.
    """
    repo = IntakeRepository(session)
    known = await repo.find_identities(identities)
    contact_ids = sorted({identity.contact_id for identity in known})
    if not contact_ids:
        contact = Contact(name=name, language=language, attributes={})
        session.add(contact)
        session.add_all(
            Identity(contact=contact, kind=value.kind, value=value.value) for value in identities
        )
        await session.flush()
        return Resolution(contact, created=True)

    contacts = await repo.contacts_oldest_first(contact_ids)
    contact = contacts[0]
    known_values = {(identity.kind, identity.value) for identity in known}
    session.add_all(
        Identity(contact_id=contact.id, kind=value.kind, value=value.value)
        for value in identities
        if (value.kind, value.value) not in known_values
    )
    if name and not contact.name:
        contact.name = name
    if language and not contact.language:
        contact.language = language
    others = tuple(other.id for other in contacts[1:])
    if others:
        await _suggest_merges(repo, contact.id, others, identities, known)
    await session.flush()
    return Resolution(contact, created=False, merge_suggested_with=others)


async def _suggest_merges(
    repo: IntakeRepository,
    contact_id: int,
    others: Sequence[int],
    identities: Sequence[IdentityValue],
    known: Sequence[Identity],
) -> None:
    session = repo.session
    existing = await repo.merge_suggestions_between(contact_id, others)
    by_contact: dict[int, list[str]] = {}
    for identity in known:
        by_contact.setdefault(identity.contact_id, []).append(f"{identity.kind}:{identity.value}")
    for other in others:
        if other in existing:
            continue
        reason = (
            "one message named identities of both contacts: "
            + ", ".join(f"{v.kind}:{v.value}" for v in identities)
            + f"; contact {other} has "
            + ", ".join(by_contact.get(other, []))
        )
        session.add(MergeSuggestion(contact_id=contact_id, other_contact_id=other, reason=reason))
        emit(session, ContactMergeSuggested(contact_id=contact_id, other_contact_id=other))
