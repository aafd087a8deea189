"""The rows and events of ingesting messages: one builder for `ingest()` and `ingest_batch()`.

Both paths decide, each its own way, which contact a message belongs to and whether
it continues an open conversation; from there on they store it alike through
`store_placed`: the new conversations, the messages, the leads and the attachments
as a few set-at-a-time Core statements of prepared values (no ORM objects), then
the outbox events of `ingest_events`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from intake.ingest_repository import BulkIntakeRepository
from intake.schemas import AttachmentIn, InboundMessage, IngestResult
from storage.events import ConversationOpened, Event, LeadCreated, MessageReceived
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
from storage.outbox import emit_many

SUMMARY_LENGTH = 500
# Column sizes (storage.models): longer input is hashed (keys) or clipped (labels).
KEY_LENGTH = 255
NAME_LENGTH = 200
LANGUAGE_LENGTH = 8
SUBJECT_LENGTH = 500


@dataclass(slots=True)
class Placed:
    """One message on its way into storage: its contact is known, and so is its open
    conversation if it continues one (`conversation_id`; 0: it opens one). The ids it
    gets are filled in by `store_placed`."""

    message: InboundMessage
    external_id: str
    contact_id: int
    conversation_id: int = 0
    opened: bool = False
    message_id: int = 0
    lead_id: int | None = None

    def result(self, *, duplicate: bool = False) -> IngestResult:
        return IngestResult(
            self.message_id,
            self.conversation_id,
            self.contact_id,
            self.lead_id,
            duplicate=duplicate,
            conversation_opened=self.opened and not duplicate,
        )


async def store_placed(repo: BulkIntakeRepository, placed: Sequence[Placed], now: datetime) -> None:
    """Store the messages with their new conversations, leads, attachments and events.

    `now` stamps the rows; a message's own time (`received_at`) stamps its conversation
    (opened or continued) and lead. A lead is opened with a conversation a person (not
    a machine) opens; a continued conversation's lead is the message's.
    """
    opening = [p for p in placed if not p.conversation_id]
    continuing = [p for p in placed if p.conversation_id]
    if continuing:
        await repo.touch_conversations(
            [
                {
                    "cid": p.conversation_id,
                    "at": p.message.received_at or now,
                    # Machine mail asks for no answer: it is no inbound to answer.
                    "inbound": not p.message.automatic,
                }
                for p in continuing
            ]
        )
        leads = await repo.leads_of({p.conversation_id for p in continuing})
        for p in continuing:
            p.lead_id = leads.get(p.conversation_id)
    conversation_ids = await repo.insert_returning_ids(
        Conversation, [_conversation_values(p, now) for p in opening]
    )
    for p, conversation_id in zip(opening, conversation_ids, strict=True):
        p.conversation_id, p.opened = conversation_id, True
    message_ids = await repo.insert_returning_ids(
        Message, [_message_values(p, now) for p in placed]
    )
    for p, message_id in zip(placed, message_ids, strict=True):
        p.message_id = message_id
    leading = [p for p in opening if p.message.opens_lead and not p.message.automatic]
    lead_ids = await repo.insert_returning_ids(Lead, [_lead_values(p, now) for p in leading])
    for p, lead_id in zip(leading, lead_ids, strict=True):
        p.lead_id = lead_id
    await repo.insert_rows(
        Attachment,
        [
            values
            for p in placed
            if p.message.attachments
            for values in attachment_values(p.message_id, p.message.attachments, now)
        ],
    )
    await emit_many(repo.session, [event for p in placed for event in ingest_events(p)])


def ingest_events(p: Placed) -> list[Event]:
    """The outbox events of a stored message: its conversation opened (unless a
    machine wrote it), the message received, its lead created."""
    refs: dict[str, Any] = {
        "conversation_id": p.conversation_id,
        "contact_id": p.contact_id,
        "channel_id": p.message.channel_id,
    }
    events: list[Event] = []
    if p.opened and not p.message.automatic:
        events.append(ConversationOpened(**refs))
    events.append(
        MessageReceived(
            **refs,
            message_id=p.message_id,
            continues=not p.opened,
            automatic=p.message.automatic,
        )
    )
    if p.opened and p.lead_id is not None:
        events.append(LeadCreated(**refs, lead_id=p.lead_id, source=p.message.channel_kind))
    return events


def _conversation_values(p: Placed, now: datetime) -> dict[str, Any]:
    message = p.message
    at = message.received_at or now
    return {
        "channel_id": message.channel_id,
        "contact_id": p.contact_id,
        "thread_key": thread_key_of(message, p.external_id),
        # Nobody is to answer machine mail: its conversation is kept, closed.
        "status": (
            ConversationStatus.CLOSED if message.automatic else ConversationStatus.OPEN
        ).value,
        "subject": (message.subject or None) and message.subject[:SUBJECT_LENGTH],
        "assignee_id": None,
        "last_message_at": at,
        "last_inbound_at": None if message.automatic else at,
        "first_response_at": None,
        "closed_at": at if message.automatic else None,
        "created_at": now,
        "updated_at": now,
    }


def _message_values(p: Placed, now: datetime) -> dict[str, Any]:
    message = p.message
    return {
        "conversation_id": p.conversation_id,
        "channel_id": message.channel_id,
        "external_id": p.external_id,
        "direction": MessageDirection.INBOUND.value,
        "status": MessageStatus.RECEIVED.value,
        "author_manager_id": None,
        "text": message.text,
        "html": message.html,
        "meta": message.meta,
        "sent_at": None,
        "error": None,
        "created_at": now,
    }


def _lead_values(p: Placed, now: datetime) -> dict[str, Any]:
    message = p.message
    return {
        "kind": message.lead_kind,
        "contact_id": p.contact_id,
        "conversation_id": p.conversation_id,
        "channel_id": message.channel_id,
        "source": message.channel_kind,
        "status": LeadStatus.NEW.value,
        "assignee_id": None,
        "title": title_of(message),
        "summary": message.text[:SUMMARY_LENGTH],
        "attribution": message.attribution,
        "form_fields": message.form_fields,
        "consent": message.consent,
        "status_changed_at": message.received_at or now,
        "created_at": now,
        "updated_at": now,
    }


def attachment_values(
    message_id: int, files: Iterable[AttachmentIn], now: datetime
) -> list[dict[str, Any]]:
    """Attachment rows' values for files already in the blob store, fitted to their columns."""
    return [
        {
            "message_id": message_id,
            "filename": _filename(a.filename),
            "content_type": a.content_type[:127],
            "size": a.size,
            "sha256": a.sha256,
            "content_id": clip(a.content_id, KEY_LENGTH),
            "inline": a.inline,
            "created_at": now,
        }
        for a in files
    ]


def thread_key_of(message: InboundMessage, external_id: str) -> str:
    """The conversation's key: the message's thread, else the message alone."""
    return fit_key(message.thread_key or f"message:{external_id}")


def title_of(message: InboundMessage) -> str:
    """A lead's title: the subject, else the text's first line."""
    if message.subject:
        return message.subject.strip()[:SUBJECT_LENGTH]
    first_line = next((line.strip() for line in message.text.splitlines() if line.strip()), "")
    return first_line[:120]


def fit_key(value: str) -> str:
    """A key that fits its column: a longer one (a long Message-ID) becomes its hash."""
    if len(value) <= KEY_LENGTH:
        return value
    return "sha256:" + hashlib.sha256(value.encode("utf-8")).hexdigest()


def clip(value: str | None, length: int) -> str | None:
    return value[:length] if value is not None else None


def language_of(tag: str | None) -> str | None:
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
