"""Request and response bodies of the managers' REST API (`/api/v1`).

Timestamps are ISO 8601 in UTC ("2026-11-28T10:00:00.123456Z").
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from intake.journal import (
    ContactDetail,
    ConversationDetail,
    ConversationRow,
    LeadDetail,
    LeadRow,
)
from storage.models import Contact, Message


class Schema(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# Accounts


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(max_length=320, examples=["anna@example.ru"])
    password: str = Field(max_length=1024)


class PasswordChangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current_password: str = Field(max_length=1024)
    new_password: str = Field(min_length=8, max_length=1024)


class ManagerOut(Schema):
    id: int
    email: str
    name: str
    role: str
    is_active: bool
    language: str
    timezone: str
    telegram_linked: bool = Field(
        description="The manager linked their Telegram to the managers' bot"
    )


class MeOut(BaseModel):
    """Who the caller is: a manager, or an operator's token (`manager` is null)."""

    role: str
    manager: ManagerOut | None
    token_id: int | None


# Shared pieces


class IdentityOut(Schema):
    id: int
    kind: str
    value: str
    unreachable_at: datetime | None


class ChannelOut(Schema):
    id: int
    key: str
    kind: str
    title: str


class ContactOut(Schema):
    id: int
    name: str | None
    company: str | None
    language: str | None
    owner_id: int | None
    notes: str | None
    created_at: datetime
    identities: list[IdentityOut]

    @classmethod
    def of(cls, contact: Contact) -> ContactOut:
        return cls.model_validate(contact)


class Attribution(BaseModel):
    """Where the request came from: the landing page's UTM tags, click ids, page and referrer."""

    utm_source: str | None = None
    utm_medium: str | None = None
    utm_campaign: str | None = None
    utm_term: str | None = None
    utm_content: str | None = None
    yclid: str | None = None
    gclid: str | None = None
    page_url: str | None = None
    referrer: str | None = None

    @classmethod
    def of(cls, values: dict[str, Any] | None) -> Attribution:
        values = values or {}
        return cls(
            **{
                name: str(values[name])
                for name in cls.model_fields
                if values.get(name) not in (None, "")
            }
        )


# Leads


class LeadOut(BaseModel):
    """One row of the lead journal."""

    id: int
    kind: str
    status: str
    source: str
    title: str
    summary: str
    channel_id: int
    channel_key: str
    contact_id: int
    contact_name: str | None
    email: str | None
    phone: str | None
    conversation_id: int
    assignee_id: int | None
    assignee_name: str | None
    attribution: Attribution
    form_fields: dict[str, Any]
    consent: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime
    status_changed_at: datetime | None

    @classmethod
    def of(cls, row: LeadRow) -> LeadOut:
        lead = row.lead
        return cls(
            id=lead.id,
            kind=lead.kind,
            status=lead.status,
            source=lead.source,
            title=lead.title,
            summary=lead.summary,
            channel_id=lead.channel_id,
            channel_key=row.channel_key,
            contact_id=lead.contact_id,
            contact_name=row.contact_name,
            email=row.email,
            phone=row.phone,
            conversation_id=lead.conversation_id,
            assignee_id=lead.assignee_id,
            assignee_name=row.assignee_name,
            attribution=Attribution.of(lead.attribution),
            form_fields=dict(lead.form_fields or {}),
            consent=lead.consent,
            created_at=lead.created_at,
            updated_at=lead.updated_at,
            status_changed_at=lead.status_changed_at,
        )


class LeadPage(BaseModel):
    items: list[LeadOut]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end"
    )


class LeadDetailOut(LeadOut):
    contact: ContactOut
    channel: ChannelOut

    @classmethod
    def of_detail(cls, detail: LeadDetail) -> LeadDetailOut:
        return cls(
            **dict(LeadOut.of(detail.row)),
            contact=ContactOut.of(detail.contact),
            channel=ChannelOut.model_validate(detail.channel),
        )


class LeadStatusIn(BaseModel):
    """The changeable part of a lead (only its status, for now)."""

    model_config = ConfigDict(extra="forbid")

    status: str = Field(
        max_length=20,
        description="new, in_work, qualified, converted, rejected or spam",
        examples=["in_work"],
    )


# Contacts


class ContactPage(BaseModel):
    items: list[ContactOut]
    next_cursor: str | None


class ContactConversationOut(BaseModel):
    id: int
    channel_id: int
    channel_key: str
    channel_kind: str
    status: str
    subject: str | None
    last_message_at: datetime | None
    lead_id: int | None


class MergeSuggestionOut(Schema):
    id: int
    contact_id: int
    other_contact_id: int
    reason: str
    status: str
    created_at: datetime


class ContactChangeIn(BaseModel):
    """Fields left out stay as they are; an empty string clears a field."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=1000, description="Up to 200 characters")
    company: str | None = Field(default=None, max_length=1000, description="Up to 200 characters")
    notes: str | None = Field(
        default=None, max_length=20_000, description="Up to 5000 characters; newlines kept"
    )


class ContactDetailOut(ContactOut):
    conversations: list[ContactConversationOut]
    merge_suggestions: list[MergeSuggestionOut]

    @classmethod
    def of_detail(cls, detail: ContactDetail) -> ContactDetailOut:
        return cls(
            **dict(ContactOut.of(detail.contact)),
            conversations=[
                ContactConversationOut(
                    id=row.conversation.id,
                    channel_id=row.conversation.channel_id,
                    channel_key=row.channel_key,
                    channel_kind=row.channel_kind,
                    status=row.conversation.status,
                    subject=row.conversation.subject,
                    last_message_at=row.conversation.last_message_at,
                    lead_id=row.lead_id,
                )
                for row in detail.conversations
            ],
            merge_suggestions=[
                MergeSuggestionOut.model_validate(s) for s in detail.merge_suggestions
            ],
        )


# Conversations and messages


class ConversationOut(BaseModel):
    id: int
    channel_id: int
    channel_key: str
    channel_kind: str
    contact_id: int
    contact_name: str | None
    status: str
    subject: str | None
    assignee_id: int | None
    lead_id: int | None
    created_at: datetime
    last_message_at: datetime | None
    first_response_at: datetime | None
    closed_at: datetime | None

    @classmethod
    def of(cls, row: ConversationRow) -> ConversationOut:
        conversation = row.conversation
        return cls(
            id=conversation.id,
            channel_id=conversation.channel_id,
            channel_key=row.channel_key,
            channel_kind=row.channel_kind,
            contact_id=conversation.contact_id,
            contact_name=row.contact_name,
            status=conversation.status,
            subject=conversation.subject,
            assignee_id=conversation.assignee_id,
            lead_id=row.lead_id,
            created_at=conversation.created_at,
            last_message_at=conversation.last_message_at,
            first_response_at=conversation.first_response_at,
            closed_at=conversation.closed_at,
        )


class ConversationPage(BaseModel):
    items: list[ConversationOut]
    next_cursor: str | None


class ConversationDetailOut(ConversationOut):
    contact: ContactOut

    @classmethod
    def of_detail(cls, detail: ConversationDetail) -> ConversationDetailOut:
        return cls(**dict(ConversationOut.of(detail.row)), contact=ContactOut.of(detail.contact))


class AttachmentOut(Schema):
    id: int
    filename: str
    content_type: str
    size: int
    sha256: str
    inline: bool


class SkippedAttachmentOut(BaseModel):
    filename: str
    reason: str = Field(examples=["signature (application/pgp-signature), not kept"])


class MessageOut(Schema):
    id: int
    direction: str
    # Outbound: queued, sending, sent or failed; `error` says why the last attempt failed.
    status: str
    error: str | None = None
    author_manager_id: int | None
    text: str
    html: str | None
    created_at: datetime
    sent_at: datetime | None
    attachments: list[AttachmentOut]
    # Parts of an email not stored: files over the size limit, signatures.
    skipped_attachments: list[SkippedAttachmentOut] = []

    @classmethod
    def of(cls, message: Message) -> MessageOut:
        out = cls.model_validate(message)
        email = message.meta.get("email") if isinstance(message.meta, dict) else None
        if isinstance(email, dict) and email.get("skipped_attachments"):
            out.skipped_attachments = [
                SkippedAttachmentOut.model_validate(item) for item in email["skipped_attachments"]
            ]
        return out


class MessagePage(BaseModel):
    items: list[MessageOut]
    next_cursor: str | None
