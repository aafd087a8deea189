"""The lead journal: leads, contacts and conversations as managers browse and change them.

Lists are newest first with opaque cursors (keyset pagination on the id, so a
walk never repeats or skips a row while new ones arrive). Services here flush,
never commit: the boundary owns the transaction.
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import io
import re
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from intake.accounts import list_managers
from intake.identities import normalize_email, normalize_phone
from intake.inbox_repository import InboxRepository
from intake.journal_repository import (
    ContactCriteria,
    ConversationFilters,
    ConversationRow,
    JournalRepository,
    LeadFilters,
    LeadRow,
)
from intake.visibility import Viewer
from storage.errors import InvalidInput, NotFound
from storage.events import LeadStatusChanged
from storage.models import (
    Channel,
    ChannelKind,
    Contact,
    ConversationStatus,
    Lead,
    LeadStatus,
    MergeSuggestion,
    Message,
)
from storage.outbox import emit
from storage.types import utcnow

__all__ = [
    "Actor",
    "ContactDetail",
    "ConversationDetail",
    "ConversationFilters",
    "ConversationRow",
    "JournalChoices",
    "LeadDetail",
    "LeadFilters",
    "LeadRow",
    "Page",
    "change_lead_status",
    "check_lead_filters",
    "get_contact",
    "get_conversation",
    "get_lead",
    "iter_leads_csv",
    "journal_choices",
    "lead_of_conversation",
    "list_conversations",
    "list_leads",
    "list_messages",
    "search_contacts",
    "visible_lead",
]

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_TEXT_LENGTH = 200
CSV_PAGE_SIZE = 500
CSV_COLUMNS = (
    "id",
    "created_at",
    "status",
    "source",
    "channel",
    "title",
    "contact_name",
    "email",
    "phone",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
    "referrer",
    "assignee",
)
ATTRIBUTION_KEYS = CSV_COLUMNS[9:15]
# Spreadsheets run a cell starting with these as a formula (OWASP "CSV injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_ID_TEXT = re.compile(r"[0-9]{1,18}")
_TIME_CURSOR = re.compile(r"([0-9]{1,20}):([0-9]{1,18})")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class Actor:
    """Who made a change: a manager (session or own token) or an operator's token."""

    manager_id: int | None = None
    token_id: int | None = None

    def as_payload(self) -> dict[str, int | None]:
        return {"manager_id": self.manager_id, "token_id": self.token_id}


@dataclass(frozen=True, slots=True)
class LeadDetail:
    row: LeadRow
    contact: Contact
    channel: Channel


@dataclass(frozen=True, slots=True)
class ContactDetail:
    contact: Contact
    conversations: list[ConversationRow]
    merge_suggestions: Sequence[MergeSuggestion]


@dataclass(frozen=True, slots=True)
class ConversationDetail:
    row: ConversationRow
    contact: Contact


# Cursors


def encode_cursor(kind: str, last_id: int) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{last_id}".encode()).decode("ascii").rstrip("=")


def decode_cursor(kind: str, cursor: str) -> int:
    """The id a cursor of `kind` points after; InvalidInput(invalid_cursor) otherwise."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        raw = base64.urlsafe_b64decode(padded.encode("ascii")).decode("ascii")
    except (ValueError, UnicodeError) as exc:
        raise InvalidInput("the cursor is not one this API gave", code="invalid_cursor") from exc
    prefix, _, value = raw.partition(":")
    if prefix != kind or not _ID_TEXT.fullmatch(value):
        raise InvalidInput("the cursor is not one this API gave", code="invalid_cursor")
    return int(value)


def _check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be within 1..{MAX_LIMIT}", code="invalid_limit")
    return limit


def encode_time_cursor(at: datetime, last_id: int) -> str:
    """A keyset cursor on (a time, an id): a page ordered by a time, then by id."""
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    raw = f"{int(at.timestamp() * 1_000_000)}:{last_id}"
    return base64.urlsafe_b64encode(raw.encode()).decode("ascii").rstrip("=")


def decode_time_cursor(cursor: str) -> tuple[datetime, int]:
    """The (time, id) a cursor of encode_time_cursor points after; InvalidInput otherwise."""
    try:
        raw = base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode("ascii"))
        match = _TIME_CURSOR.fullmatch(raw.decode("ascii"))
    except (ValueError, UnicodeError):
        match = None
    if match is None:
        raise InvalidInput("the cursor is not one this page gave", code="invalid_cursor")
    micros, last_id = int(match.group(1)), int(match.group(2))
    return datetime.fromtimestamp(micros / 1_000_000, UTC), last_id


def page_of(kind: str, rows: list[T], limit: int, last_id: Callable[[T], int]) -> Page[T]:
    """A page of `limit` rows out of `rows` (read with one row more than `limit`), with
    the cursor of the next page when there is one."""
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, encode_cursor(kind, last_id(rows[-1])) if more else None)


def _check_statuses(
    statuses: Sequence[str], allowed: type[LeadStatus] | type[ConversationStatus]
) -> None:
    known = {member.value for member in allowed}
    unknown = [status for status in statuses if status not in known]
    if unknown:
        raise InvalidInput(
            f"unknown status {', '.join(unknown)}; one of: {', '.join(sorted(known))}",
            code="invalid_status",
        )


def _check_text(text: str | None) -> str | None:
    if text is None or not text.strip():
        return None
    text = text.strip()
    if len(text) > MAX_TEXT_LENGTH:
        raise InvalidInput(f"search text longer than {MAX_TEXT_LENGTH}", code="invalid_text")
    return text


# Leads


def check_lead_filters(filters: LeadFilters) -> LeadFilters:
    """The filters validated and tidied; InvalidInput names the first bad one."""
    _check_statuses(filters.statuses, LeadStatus)
    if filters.source is not None and filters.source not in {k.value for k in ChannelKind}:
        raise InvalidInput(
            f"unknown source {filters.source!r}; one of: {', '.join(k.value for k in ChannelKind)}",
            code="invalid_source",
        )
    for name in ("created_from", "created_to"):
        value = getattr(filters, name)
        if value is not None and value.tzinfo is None:
            raise InvalidInput(f"{name} needs a time zone", code="invalid_date")
    return dataclasses.replace(
        filters,
        statuses=tuple(dict.fromkeys(filters.statuses)),
        channel=(filters.channel.strip() or None) if filters.channel else None,
        text=_check_text(filters.text),
    )


async def list_leads(
    session: AsyncSession,
    filters: LeadFilters,
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
    viewer: Viewer | None = None,
) -> Page[LeadRow]:
    """One page of the journal, newest first; `next_cursor` is None on the last page.

    With a `viewer`, only the leads of conversations they may see (`intake.visibility`).
    """
    limit = _check_limit(limit)
    before = decode_cursor("lead", cursor) if cursor else None
    rows = await JournalRepository(session).list_leads(
        check_lead_filters(filters), before_id=before, limit=limit + 1, viewer=viewer
    )
    return page_of("lead", rows, limit, lambda row: row.lead.id)


async def visible_lead(session: AsyncSession, viewer: Viewer, lead_id: int) -> LeadRow:
    """A lead as the journal shows it, if `viewer` may see its conversation; else NotFound
    (the same answer as for an unknown lead, so ids of hidden leads are not confirmed)."""
    row = await JournalRepository(session).get_lead_row(lead_id, viewer)
    if row is None:
        raise NotFound(f"lead {lead_id} not found")
    return row


async def lead_of_conversation(
    session: AsyncSession, viewer: Viewer, conversation_id: int
) -> LeadRow | None:
    """The lead a conversation opened, if any and if `viewer` may see the conversation."""
    lead_id = await JournalRepository(session).lead_id_of_conversation(conversation_id)
    if lead_id is None:
        return None
    return await JournalRepository(session).get_lead_row(lead_id, viewer)


@dataclass(frozen=True, slots=True)
class JournalChoices:
    """What the journal's filters offer: the active channels (id, kind, title) and every
    manager (id, name), active or not, since old leads keep their former managers."""

    channels: list[tuple[int, str, str]]
    managers: list[tuple[int, str]]


async def journal_choices(session: AsyncSession) -> JournalChoices:
    return JournalChoices(
        await InboxRepository(session).channels(),
        [(manager.id, manager.name) for manager in await list_managers(session)],
    )


async def get_lead(session: AsyncSession, lead_id: int) -> LeadDetail:
    """A lead with its contact (and identities) and channel; NotFound if unknown."""
    repo = JournalRepository(session)
    row = await repo.get_lead_row(lead_id)
    if row is None:
        raise NotFound(f"lead {lead_id} not found")
    contact = await repo.get_contact(row.lead.contact_id)
    channel = await repo.get_channel(row.lead.channel_id)
    assert contact is not None and channel is not None  # foreign keys
    return LeadDetail(row, contact, channel)


async def change_lead_status(
    session: AsyncSession, lead_id: int, status: str, actor: Actor
) -> Lead:
    """Move a lead to `status`, emitting `lead.status_changed`; a no-op when unchanged.

    InvalidInput for an unknown status, NotFound for an unknown lead.
    """
    _check_statuses([status], LeadStatus)
    lead = await JournalRepository(session).lead_for_update(lead_id)
    if lead is None:
        raise NotFound(f"lead {lead_id} not found")
    previous = lead.status
    if previous == status:
        return lead
    lead.status = status
    lead.status_changed_at = utcnow()
    emit(
        session,
        LeadStatusChanged(lead_id=lead.id, from_=previous, to=status, actor=actor.as_payload()),
    )
    await session.flush()
    return lead


def _csv_cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _csv_row(row: LeadRow) -> list[Any]:
    lead = row.lead
    attribution = lead.attribution or {}
    cells: list[Any] = [
        lead.id,
        lead.created_at.astimezone(UTC).isoformat(),
        lead.status,
        lead.source,
        row.channel_key,
        lead.title,
        row.contact_name,
        row.email,
        row.phone,
        *(attribution.get(key) for key in ATTRIBUTION_KEYS),
        row.assignee_name,
    ]
    return cells


async def iter_leads_csv(
    sessions: Callable[[], AbstractAsyncContextManager[AsyncSession]],
    filters: LeadFilters,
    *,
    page_size: int = CSV_PAGE_SIZE,
    viewer: Viewer | None = None,
    header: Sequence[str] = CSV_COLUMNS,
    cells: Callable[[LeadRow], Sequence[Any]] = _csv_row,
    delimiter: str = ",",
) -> AsyncIterator[str]:
    """The filtered journal as CSV text chunks: a UTF-8 BOM and header, then one chunk a page.

    Each page is read in its own short session from `sessions` (e.g. `db.read`),
    so a slow download holds no connection. Leads created after the export
    started are not included. The BOM lets Excel recognise UTF-8 (Cyrillic).
    `header` and `cells` choose the columns (the API's by default), `viewer` the
    leads (all by default); every cell a spreadsheet would run as a formula gets
    a leading apostrophe.
    """
    filters = check_lead_filters(filters)
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow([_csv_cell(title) for title in header])
    yield "\ufeff" + buffer.getvalue()
    before: int | None = None
    while True:
        buffer.seek(0)
        buffer.truncate()
        async with sessions() as session:
            rows = await JournalRepository(session).list_leads(
                filters, before_id=before, limit=page_size, viewer=viewer
            )
        writer.writerows([_csv_cell(cell) for cell in cells(row)] for row in rows)
        if rows:
            yield buffer.getvalue()
        if len(rows) < page_size:
            return
        before = rows[-1].lead.id


# Contacts


async def search_contacts(
    session: AsyncSession,
    *,
    q: str | None = None,
    phone: str | None = None,
    email: str | None = None,
    name: str | None = None,
    default_region: str = "RU",
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> Page[Contact]:
    """Contacts matching every given term, newest first, identities loaded.

    `phone` and `email` are normalised first ("8 (912) 345-67-89" finds +79123456789);
    what does not normalise is matched as a fragment (digits of a phone, part of an
    address). `q` searches names, companies and identity values; `name` names only.
    """
    limit = _check_limit(limit)
    before = decode_cursor("contact", cursor) if cursor else None
    criteria = ContactCriteria(
        text=_check_text(q),
        name=_check_text(name),
        **_phone_terms(phone, default_region),
        **_email_terms(email),
    )
    if criteria.text is not None:
        with suppress(InvalidInput):
            criteria = dataclasses.replace(
                criteria, text_phone=normalize_phone(criteria.text, default_region)
            )
    contacts = await JournalRepository(session).search_contacts(
        criteria, before_id=before, limit=limit + 1
    )
    return page_of("contact", list(contacts), limit, lambda contact: contact.id)


def _phone_terms(phone: str | None, default_region: str) -> dict[str, str | None]:
    if phone is None or not phone.strip():
        return {}
    try:
        return {"phone": normalize_phone(phone, default_region)}
    except InvalidInput:
        digits = re.sub(r"\D", "", phone)
        if len(digits) < 3:
            raise
        return {"phone_digits": digits}


def _email_terms(email: str | None) -> dict[str, str | None]:
    if email is None or not email.strip():
        return {}
    try:
        return {"email": normalize_email(email)}
    except InvalidInput:
        return {"email_fragment": _check_text(email)}


async def get_contact(session: AsyncSession, contact_id: int) -> ContactDetail:
    """A contact with identities, every conversation across channels and open merge suggestions."""
    repo = JournalRepository(session)
    contact = await repo.get_contact(contact_id)
    if contact is None:
        raise NotFound(f"contact {contact_id} not found")
    return ContactDetail(
        contact=contact,
        conversations=await repo.contact_conversations(contact_id),
        merge_suggestions=await repo.open_merge_suggestions(contact_id),
    )


# Conversations


async def list_conversations(
    session: AsyncSession,
    filters: ConversationFilters,
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> Page[ConversationRow]:
    """One page of conversations, newest first."""
    limit = _check_limit(limit)
    _check_statuses(filters.statuses, ConversationStatus)
    before = decode_cursor("conversation", cursor) if cursor else None
    rows = await JournalRepository(session).list_conversations(
        filters, before_id=before, limit=limit + 1
    )
    return page_of("conversation", rows, limit, lambda row: row.conversation.id)


async def get_conversation(session: AsyncSession, conversation_id: int) -> ConversationDetail:
    repo = JournalRepository(session)
    row = await repo.get_conversation_row(conversation_id)
    if row is None:
        raise NotFound(f"conversation {conversation_id} not found")
    contact = await repo.get_contact(row.conversation.contact_id)
    assert contact is not None  # foreign key
    return ConversationDetail(row, contact)


async def list_messages(
    session: AsyncSession,
    conversation_id: int,
    cursor: str | None = None,
    limit: int = MAX_LIMIT,
) -> Page[Message]:
    """A conversation's messages oldest first, with attachment metadata; NotFound if unknown."""
    limit = _check_limit(limit)
    after = decode_cursor("message", cursor) if cursor else None
    repo = JournalRepository(session)
    if not await repo.conversation_exists(conversation_id):
        raise NotFound(f"conversation {conversation_id} not found")
    messages = await repo.messages(conversation_id, after_id=after, limit=limit + 1)
    return page_of("message", list(messages), limit, lambda message: message.id)
