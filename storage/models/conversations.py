"""Conversations, their messages and attachments, and the lead journal."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from storage.models.base import Base, CreatedMixin, IdMixin, TimestampMixin
from storage.types import BigId, JSONDict, UTCDateTime


class ConversationStatus(StrEnum):
    OPEN = "open"
    PENDING = "pending"  # waiting for the client
    SNOOZED = "snoozed"  # out of the open views until `snoozed_until` or the client writes
    CLOSED = "closed"


class Conversation(IdMixin, TimestampMixin, Base):
    """A thread with one contact in one channel; the unit that is routed and answered."""

    __tablename__ = "conversations"
    __table_args__ = (
        # One open conversation per thread of a channel; closed ones may repeat the key.
        Index(
            "uq_conversations_open_thread",
            "channel_id",
            "thread_key",
            unique=True,
            sqlite_where=text("status != 'closed'"),
            postgresql_where=text("status != 'closed'"),
        ),
        Index("ix_conversations_contact_id_last", "contact_id", "last_message_at"),
    )

    channel_id: Mapped[int] = mapped_column(BigId, ForeignKey("channels.id"), index=True)
    contact_id: Mapped[int] = mapped_column(BigId, ForeignKey("contacts.id", ondelete="CASCADE"))
    thread_key: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(20), default=ConversationStatus.OPEN)
    subject: Mapped[str | None] = mapped_column(String(500))
    assignee_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("managers.id", ondelete="SET NULL"), index=True
    )
    last_message_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    first_response_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Routing
    routing_state: Mapped[str] = mapped_column(String(20), default="new", index=True)
    queue_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("queues.id", ondelete="SET NULL"), index=True
    )
    priority: Mapped[str] = mapped_column(String(10), default="normal")
    tags: Mapped[list[str]] = mapped_column(JSONDict, default=list)
    waiting_reason: Mapped[str | None] = mapped_column(Text)
    assigned_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_inbound_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_outbound_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    first_response_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    next_response_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    snoozed_until: Mapped[datetime | None] = mapped_column(UTCDateTime())


class MessageDirection(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"
    NOTE = "note"
    EVENT = "event"


class MessageStatus(StrEnum):
    RECEIVED = "received"
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


class Message(IdMixin, CreatedMixin, Base):
    __tablename__ = "messages"
    __table_args__ = (
        # Idempotency: an external id is seen once per channel.
        UniqueConstraint("channel_id", "external_id"),
        Index("ix_messages_conversation_id_id", "conversation_id", "id"),
        # The delivery queue: only outbound messages still to send (or being sent).
        Index(
            "ix_messages_delivery",
            "status",
            "deliver_after",
            sqlite_where=text("status IN ('queued', 'sending')"),
            postgresql_where=text("status IN ('queued', 'sending')"),
        ),
    )

    conversation_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("conversations.id", ondelete="CASCADE")
    )
    channel_id: Mapped[int] = mapped_column(BigId, ForeignKey("channels.id"))
    external_id: Mapped[str | None] = mapped_column(String(255))
    direction: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default=MessageStatus.RECEIVED)
    author_manager_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("managers.id", ondelete="SET NULL")
    )
    text: Mapped[str] = mapped_column(Text, default="")
    html: Mapped[str | None] = mapped_column(Text)
    meta: Mapped[dict[str, Any]] = mapped_column(JSONDict, default=dict)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    error: Mapped[str | None] = mapped_column(Text)
    # Outbound delivery: attempts so far, and when the next one may run (a lease while sending).
    delivery_attempts: Mapped[int] = mapped_column(Integer, default=0)
    deliver_after: Mapped[datetime | None] = mapped_column(UTCDateTime())

    attachments: Mapped[list[Attachment]] = relationship(lazy="raise", order_by="Attachment.id")


class Attachment(IdMixin, CreatedMixin, Base):
    __tablename__ = "attachments"

    message_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(127))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    content_id: Mapped[str | None] = mapped_column(String(255))
    inline: Mapped[bool] = mapped_column(default=False)


class LeadStatus(StrEnum):
    NEW = "new"
    IN_WORK = "in_work"
    QUALIFIED = "qualified"
    CONVERTED = "converted"
    REJECTED = "rejected"
    SPAM = "spam"


class Lead(IdMixin, TimestampMixin, Base):
    """A journal entry for one request: where it came from and how far it got."""

    __tablename__ = "leads"
    __table_args__ = (Index("ix_leads_status_id", "status", "id"),)

    kind: Mapped[str] = mapped_column(String(20), default="request")
    contact_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    conversation_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("conversations.id", ondelete="CASCADE"), unique=True
    )
    channel_id: Mapped[int] = mapped_column(BigId, ForeignKey("channels.id"), index=True)
    source: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default=LeadStatus.NEW)
    assignee_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("managers.id", ondelete="SET NULL"), index=True
    )
    title: Mapped[str] = mapped_column(String(500), default="")
    summary: Mapped[str] = mapped_column(Text, default="")
    attribution: Mapped[dict[str, Any]] = mapped_column(JSONDict, default=dict)
    form_fields: Mapped[dict[str, Any]] = mapped_column(JSONDict, default=dict)
    # The consent to process personal data given with the request (time, version, IP).
    consent: Mapped[dict[str, Any] | None] = mapped_column(JSONDict)
    status_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


Index("ix_leads_created_at", Lead.created_at)
