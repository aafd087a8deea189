"""ingest_batch(): many inbound messages in one transaction, set at a time.

Under load the boundary hands intake whole batches (see channels.base). A
message that names at most one known contact and is the batch's only message in
its thread — a web-form submission, a first call, the next message of a Telegram
chat or an email thread — takes the bulk path: a handful of statements for the
whole batch instead of a dozen per message (intake.rows, the same builder
`ingest()` stores with). Every other message (a thread two messages of the batch
share, identities of two contacts to reconcile), and every message sharing an
identity or a known contact with one of those, goes through `ingest()` in the same
transaction, in input order. The results are the ones `ingest()` would give,
message by message, in order.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from intake.identities import IdentityValue
from intake.ingest import IntakeConfig, ingest, normalized
from intake.ingest_repository import BulkIntakeRepository
from intake.rows import NAME_LENGTH, Placed, clip, fit_key, language_of, store_placed
from intake.schemas import InboundMessage, IngestResult, UpdateHandled
from storage.errors import HubError
from storage.models import Contact, Identity
from storage.telegram_repository import TelegramRepository
from storage.types import utcnow

Outcome = IngestResult | HubError


@dataclass(eq=False)
class _NewContact:
    name: str | None
    language: str | None
    id: int = 0


@dataclass
class _Planned:
    index: int
    message: InboundMessage
    external_id: str
    identities: list[IdentityValue]
    contact: int | _NewContact = 0
    new_identities: list[IdentityValue] = field(default_factory=list)
    # The open conversation it continues (0: it opens one).
    conversation_id: int = 0
    # Where it went, once stored in bulk.
    placed: Placed | None = None

    @property
    def contact_id(self) -> int:
        return self.contact.id if isinstance(self.contact, _NewContact) else self.contact


async def ingest_batch(
    session: AsyncSession, messages: Sequence[InboundMessage], config: IntakeConfig
) -> list[Outcome]:
    """Store each message as `ingest()` would, in the caller's transaction; never commits.

    A message whose identities cannot be normalised gets its HubError in its place
    of the result list; the others are stored.
    """
    outcomes: list[Outcome | None] = [None] * len(messages)
    repo = BulkIntakeRepository(session)

    # ingest()'s order: a message whose update a dialogue handled is dropped; one seen
    # before is a duplicate, whatever its identities.
    handled = await TelegramRepository(session).handled_updates(
        {
            (message.channel_id, message.unless_update_handled)
            for message in messages
            if message.unless_update_handled is not None
        }
    )
    keys = [(message.channel_id, fit_key(message.external_id)) for message in messages]
    seen = await repo.seen_messages(set(keys))

    firsts: list[_Planned] = []
    first_of: dict[tuple[int, str], _Planned] = {}
    repeats: list[tuple[int, _Planned]] = []
    for index, (message, key) in enumerate(zip(messages, keys, strict=True)):
        if (message.channel_id, message.unless_update_handled) in handled:
            outcomes[index] = UpdateHandled()
            continue
        if key in seen:
            message_id, conversation_id, contact_id, lead_id = seen[key]
            outcomes[index] = IngestResult(
                message_id, conversation_id, contact_id, lead_id, duplicate=True
            )
            continue
        if key in first_of:
            repeats.append((index, first_of[key]))
            continue
        try:
            identities = normalized(message, config)
        except HubError as exc:
            outcomes[index] = exc  # nothing stored: a later message with this id is new
            continue
        planned = _Planned(index, message, key[1], identities)
        first_of[key] = planned
        firsts.append(planned)

    owners = await repo.identity_owners(
        {(v.kind.value, v.value) for p in firsts for v in p.identities}
    )
    # A thread's open conversation is continued, one with none is opened by its message,
    # as ingest() does; a thread two messages of the batch share goes the careful way.
    threads = Counter(_thread(p.message) for p in firsts if p.message.thread_key is not None)
    open_threads = await repo.open_threads(set(threads))

    # ingest() resolves each message against what the ones before it stored, so
    # messages sharing an identity or a known contact depend on their order. If one
    # of them needs the careful path, all of them take it, in input order; the
    # rest of the batch touches none of their contacts and can be stored first.
    parent: dict[Hashable, Hashable] = {}

    def root(node: Hashable) -> Hashable:
        parent.setdefault(node, node)
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for planned in firsts:
        for value in planned.identities:
            ident = (value.kind.value, value.value)
            linked: list[Hashable] = [("identity", *ident)]
            if ident in owners:
                linked.append(("contact", owners[ident]))
            for node in linked:
                parent[root(node)] = root(("message", planned.index))

    careful: set[Hashable] = set()
    planned_bulk: list[_Planned] = []
    # Identities claimed within this batch: by a known contact or by a new one.
    claimed: dict[tuple[str, str], int | _NewContact] = {}
    for planned in firsts:
        thread = _thread(planned.message) if planned.message.thread_key is not None else None
        if thread is not None and threads[thread] > 1:
            careful.add(root(("message", planned.index)))  # the first may open it
            continue
        refs: list[int | _NewContact] = []
        for value in planned.identities:
            ident = (value.kind.value, value.value)
            ref = claimed.get(ident, owners.get(ident))
            if ref is not None and not any(ref is r or ref == r for r in refs):
                refs.append(ref)
        if len(refs) > 1:
            careful.add(root(("message", planned.index)))  # two contacts to reconcile
            continue
        name = clip(planned.message.contact_name, NAME_LENGTH)
        language = language_of(planned.message.contact_language)
        contact: int | _NewContact = refs[0] if refs else _NewContact(name, language)
        if isinstance(contact, _NewContact):
            # A contact an earlier message of the batch creates: filled as ingest() would.
            if name and not contact.name:
                contact.name = name
            if language and not contact.language:
                contact.language = language
        planned.contact = contact
        if thread is not None:
            planned.conversation_id = open_threads.get(thread, 0)
        for value in planned.identities:
            ident = (value.kind.value, value.value)
            if ident not in owners and ident not in claimed:
                claimed[ident] = contact
                planned.new_identities.append(value)
        planned_bulk.append(planned)
    bulk = [p for p in planned_bulk if root(("message", p.index)) not in careful]
    single = [p for p in firsts if root(("message", p.index)) in careful]

    if bulk:
        await _store_bulk(repo, bulk)
    for planned in bulk:
        assert planned.placed is not None
        outcomes[planned.index] = planned.placed.result()
    for index, first in repeats:
        if first.placed is not None and first.placed.opened:
            outcomes[index] = first.placed.result(duplicate=True)
        else:
            # ingest() answers a duplicate from its conversation (whose contact may not
            # be the one the first message named), as it would here.
            single.append(_Planned(index, messages[index], first.external_id, []))
    single.sort(key=lambda p: p.index)
    for planned in single:
        outcomes[planned.index] = await ingest(session, planned.message, config)
    done = [outcome for outcome in outcomes if outcome is not None]
    assert len(done) == len(messages), "every message gets an outcome"
    return done


def _thread(message: InboundMessage) -> tuple[int, str]:
    return (message.channel_id, fit_key(message.thread_key or ""))


async def _store_bulk(repo: BulkIntakeRepository, bulk: list[_Planned]) -> None:
    """New contacts and identities set at a time, then the messages as ingest() stores
    them (intake.rows)."""
    now = utcnow()
    new_contacts = list(
        {id(p.contact): p.contact for p in bulk if isinstance(p.contact, _NewContact)}.values()
    )
    ids = await repo.insert_returning_ids(
        Contact,
        [
            {
                "name": c.name,
                "language": c.language,
                "company": None,
                "owner_id": None,
                "attributes": {},
                "created_at": now,
                "updated_at": now,
            }
            for c in new_contacts
        ],
    )
    for contact, contact_id in zip(new_contacts, ids, strict=True):
        contact.id = contact_id
    await repo.fill_missing_contact_details(
        [
            {
                "id": p.contact,
                "name": clip(p.message.contact_name, NAME_LENGTH),
                "language": language_of(p.message.contact_language),
            }
            for p in bulk
            if isinstance(p.contact, int)
        ]
    )
    await repo.insert_rows(
        Identity,
        sorted(
            (
                {
                    "contact_id": p.contact_id,
                    "kind": v.kind.value,
                    "value": v.value,
                    "unreachable_at": None,
                    "created_at": now,
                }
                for p in bulk
                for v in p.new_identities
            ),
            # The same order as ingest(): concurrent transactions lock rows alike.
            key=lambda row: (row["kind"], row["value"]),
        ),
    )
    for p in bulk:
        p.placed = Placed(p.message, p.external_id, p.contact_id, p.conversation_id)
    await store_placed(repo, [p.placed for p in bulk if p.placed is not None], now)
