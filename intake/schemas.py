"""What channel adapters hand to intake, and what intake answers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from storage.errors import Conflict
from storage.models import IdentityKind


@dataclass(frozen=True, slots=True)
class IdentityIn:
    """An identity as the channel saw it; intake normalises it."""

    kind: IdentityKind
    value: str


@dataclass(frozen=True, slots=True)
class AttachmentIn:
    """A file already put into blob storage by the adapter."""

    filename: str
    content_type: str
    size: int
    sha256: str
    content_id: str | None = None
    inline: bool = False


@dataclass(slots=True)
class InboundMessage:
    """One item of input from the outside world, in the hub's words."""

    channel_id: int
    channel_kind: str
    # Idempotency: the same (channel, external_id) is stored once, whatever the retries.
    external_id: str
    identities: list[IdentityIn]
    text: str = ""
    html: str | None = None
    subject: str | None = None
    contact_name: str | None = None
    contact_language: str | None = None
    # Messages with the same thread key continue one open conversation; None opens a new one.
    thread_key: str | None = None
    attachments: list[AttachmentIn] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    attribution: dict[str, Any] = field(default_factory=dict)
    form_fields: dict[str, Any] = field(default_factory=dict)
    received_at: datetime | None = None
    # Auto-replies and the like are stored but open no lead.
    opens_lead: bool = True
    # Mail written by a machine (auto-reply, bounce, list mail): stored, but it opens no
    # lead, is not routed, and asks for no answer. A conversation it opens starts closed.
    automatic: bool = False
    lead_kind: str = "request"
    # The consent to process personal data given with a form (time, text version, IP).
    consent: dict[str, Any] | None = None
    # The Telegram update that carried the message, when a bot dialogue may have
    # consumed that update (bots.work records those): such a message is not stored.
    unless_update_handled: int | None = None


@dataclass(frozen=True, slots=True)
class IngestResult:
    """Where the message went. `lead_id` is the lead of its conversation (opened by this
    message when `conversation_opened`), None if the conversation has none."""

    message_id: int
    conversation_id: int
    contact_id: int
    lead_id: int | None
    duplicate: bool = False
    conversation_opened: bool = False


class UpdateHandled(Conflict):
    """The message's Telegram update was handled by a bot dialogue: nothing was stored."""

    code = "update_handled"
