"""intake.ingest(): every channel's input enters the hub through here, the same way."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from intake.contacts import resolve_contact
from intake.identities import IdentityValue, normalize
from intake.repository import IntakeRepository
from intake.schemas import InboundMessage, IngestResult
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
    seen = await repo.find_message(message.channel_id, message.external_id)
    if seen is not None:
        contact_id, lead_id = await repo.conversation_contact_and_lead(seen.conversation_id)
        return IngestResult(seen.id, seen.conversation_id, contact_id, lead_id, duplicate=True)

    identities = _normalized(message, config)
    resolution = await resolve_contact(
        session, identities, name=message.contact_name, language=message.contact_language
    )
    contact = resolution.contact
    now = message.received_at or utcnow()

    conversation = None
    if message.thread_key is not None:
        conversation = await repo.find_open_conversation(message.channel_id, message.thread_key)
    opened = conversation is None
    if conversation is None:
        conversation = Conversation(
            channel_id=message.channel_id,
            contact_id=contact.id,
            thread_key=message.thread_key or f"message:{message.external_id}",
            status=ConversationStatus.OPEN,
            subject=(message.subject or None) and message.subject[:500],
        )
        session.add(conversation)
    conversation.last_message_at = now

    stored = Message(
        channel_id=message.channel_id,
        external_id=message.external_id,
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
    if opened and message.opens_lead:
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
            status_changed_at=now,
        )
        session.add(lead)
    await session.flush()
    if message.attachments:
        session.add_all(
            Attachment(
                message_id=stored.id,
                filename=a.filename,
                content_type=a.content_type,
                size=a.size,
                sha256=a.sha256,
                content_id=a.content_id,
                inline=a.inline,
            )
            for a in message.attachments
        )

    ids = {
        "conversation_id": conversation.id,
        "contact_id": contact.id,
        "channel_id": message.channel_id,
    }
    if opened:
        emit(session, "conversation.opened", ids)
    emit(session, "message.received", {**ids, "message_id": stored.id})
    if lead is not None:
        emit(session, "lead.created", {**ids, "lead_id": lead.id, "source": lead.source})
    await session.flush()
    return IngestResult(
        message_id=stored.id,
        conversation_id=conversation.id,
        contact_id=contact.id,
        lead_id=lead.id if lead is not None else None,
        conversation_opened=opened,
    )


def _normalized(message: InboundMessage, config: IntakeConfig) -> list[IdentityValue]:
    values: dict[tuple[str, str], IdentityValue] = {}
    for identity in message.identities:
        value = normalize(identity.kind, identity.value, config.default_region)
        values[(value.kind, value.value)] = value
    return list(values.values())
