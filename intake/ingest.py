"""intake.ingest(): every channel's input enters the hub through here, the same way."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from intake.contacts import resolve_contact
from intake.identities import IdentityValue, normalize
from intake.ingest_repository import IntakeRepository
from intake.schemas import AttachmentIn, InboundMessage, IngestResult
from storage.events import ConversationOpened, LeadCreated, MessageReceived
from storage.models import (
    Attachment,
    Conversation,
    ConversationStatus,
    Lead,
    LeadStatus,
    Message,
    MessageDirection,
    MessageStatus,
)
from storage.outbox import emit
from storage.types import utcnow

SUMMARY_LENGTH = 500
# Column sizes (storage.models): longer input is hashed (keys) or clipped (labels).
KEY_LENGTH = 255
NAME_LENGTH = 200
LANGUAGE_LENGTH = 8


@dataclass(frozen=True, slots=True)
class IntakeConfig:
    default_region: str = "RU"


def _title(message: InboundMessage) -> str:
    if message.subject:
        return message.subject.strip()[:500]
    first_line = next((line.strip() for line in message.text.splitlines() if line.strip()), "")
    return first_line[:120]


async def ingest(
    session: AsyncSession, message: InboundMessage, config: IntakeConfig = IntakeConfig()
) -> IngestResult:
    """Store one inbound message with its contact, conversation and lead; never commits.

    Idempotent on (channel, external id): a message seen before returns the first
    result with `duplicate=True`. A concurrent duplicate surfaces as an
    IntegrityError at flush; the boundary retries and then finds the first one.
    Raises InvalidInput for identities that cannot be normalised.
    """
    repo = IntakeRepository(session)
    external_id = fit_key(message.external_id)
    seen = await repo.find_message(message.channel_id, external_id)
    if seen is not None:
        contact_id, lead_id = await repo.conversation_contact_and_lead(seen.conversation_id)
        return IngestResult(seen.id, seen.conversation_id, contact_id, lead_id, duplicate=True)

    identities = _normalized(message, config)
    resolution = await resolve_contact(
        session,
        identities,
        name=_clip(message.contact_name, NAME_LENGTH),
        language=_language(message.contact_language),
    )
    contact = resolution.contact
    now = message.received_at or utcnow()

    thread_key = fit_key(message.thread_key or f"message:{external_id}")
    conversation = None
    if message.thread_key is not None:
        conversation = await repo.find_open_conversation(message.channel_id, thread_key)
    opened = conversation is None
    if conversation is None:
        conversation = Conversation(
            channel_id=message.channel_id,
            contact_id=contact.id,
            thread_key=thread_key,
            # Nobody is to answer machine mail: its conversation is kept, closed.
            status=ConversationStatus.CLOSED if message.automatic else ConversationStatus.OPEN,
            closed_at=now if message.automatic else None,
            subject=(message.subject or None) and message.subject[:500],
        )
        session.add(conversation)
    conversation.last_message_at = now
    if not message.automatic:
        conversation.last_inbound_at = now

    existing_lead = None
    if not opened:
        existing_lead = await repo.lead_of_conversation(conversation.id)

    stored = Message(
        channel_id=message.channel_id,
        external_id=external_id,
        direction=MessageDirection.INBOUND,
        status=MessageStatus.RECEIVED,
        text=message.text,
        html=message.html,
        meta=message.meta,
    )
    await session.flush()
    stored.conversation_id = conversation.id
    session.add(stored)
    lead = None
    if opened and message.opens_lead and not message.automatic:
        lead = Lead(
            kind=message.lead_kind,
            contact_id=contact.id,
            conversation_id=conversation.id,
            channel_id=message.channel_id,
            source=message.channel_kind,
            status=LeadStatus.NEW,
            title=_title(message),
            summary=message.text[:SUMMARY_LENGTH],
            attribution=message.attribution,
            form_fields=message.form_fields,
            consent=message.consent,
            status_changed_at=now,
        )
        session.add(lead)
    await session.flush()
    if message.attachments:
        session.add_all(attachment_rows(stored.id, message.attachments))

    ids = {
        "conversation_id": conversation.id,
        "contact_id": contact.id,
        "channel_id": message.channel_id,
    }
    if opened and not message.automatic:
        emit(session, ConversationOpened(**ids))
    emit(
        session,
        MessageReceived(
            **ids, message_id=stored.id, continues=not opened, automatic=message.automatic
        ),
    )
    if lead is not None:
        emit(session, LeadCreated(**ids, lead_id=lead.id, source=lead.source))
    await session.flush()
    return IngestResult(
        message_id=stored.id,
        conversation_id=conversation.id,
        contact_id=contact.id,
        lead_id=lead.id if lead is not None else existing_lead,
        conversation_opened=opened,
    )


def attachment_rows(message_id: int, files: Iterable[AttachmentIn]) -> list[Attachment]:
    """Attachment rows for files already in the blob store, fitted to their columns."""
    return [
        Attachment(
            message_id=message_id,
            filename=_filename(a.filename),
            content_type=a.content_type[:127],
            size=a.size,
            sha256=a.sha256,
            content_id=_clip(a.content_id, KEY_LENGTH),
            inline=a.inline,
        )
        for a in files
    ]


def fit_key(value: str) -> str:
    """A key that fits its column: a longer one (a long Message-ID) becomes its hash."""
    if len(value) <= KEY_LENGTH:
        return value
    return "sha256:" + hashlib.sha256(value.encode("utf-8")).hexdigest()


def _clip(value: str | None, length: int) -> str | None:
    return value[:length] if value is not None else None


def _language(tag: str | None) -> str | None:
    """An IETF tag that fits the column; a long one keeps its primary language."""
    if not tag or len(tag) <= LANGUAGE_LENGTH:
        return tag
    return tag.split("-")[0][:LANGUAGE_LENGTH] or None


def _filename(name: str) -> str:
    """The name clipped to the column, keeping its extension."""
    if len(name) <= KEY_LENGTH:
        return name
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem or len(extension) > 16:
        return name[:KEY_LENGTH]
    return stem[: KEY_LENGTH - len(extension) - 1] + "." + extension


def _normalized(message: InboundMessage, config: IntakeConfig) -> list[IdentityValue]:
    values: dict[tuple[str, str], IdentityValue] = {}
    for identity in message.identities:
        value = normalize(identity.kind, identity.value, config.default_region)
        values[(value.kind, value.value)] = value
    # One order everywhere, so concurrent transactions take row locks in the same order.
    return [values[key] for key in sorted(values)]
