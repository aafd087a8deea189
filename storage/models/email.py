"""The email channel's own records: Message-IDs for threading, mailbox checkpoints,
the quarantine of messages that could not be taken in."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base, CreatedMixin, IdMixin, TimestampMixin
from storage.types import BigId, UTCDateTime


class EmailMessageId(IdMixin, CreatedMixin, Base):
    """Every Message-ID the hub has seen or sent in a mailbox, for In-Reply-To/References."""

    __tablename__ = "email_message_ids"
    __table_args__ = (UniqueConstraint("channel_id", "message_id_header"),)

    channel_id: Mapped[int] = mapped_column(BigId, ForeignKey("channels.id", ondelete="CASCADE"))
    # Without angle brackets; a longer one is stored as its sha256 (see channels.email).
    message_id_header: Mapped[str] = mapped_column(String(255))
    conversation_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    message_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    outbound: Mapped[bool] = mapped_column(default=False)


class MailboxState(TimestampMixin, Base):
    """The IMAP checkpoint of a mailbox: what UID was taken last under which UIDVALIDITY."""

    __tablename__ = "email_mailbox_state"

    channel_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("channels.id", ondelete="CASCADE"), primary_key=True
    )
    folder: Mapped[str] = mapped_column(String(255), default="INBOX")
    uidvalidity: Mapped[int | None] = mapped_column(BigId)
    last_uid: Mapped[int] = mapped_column(BigId, default=0)
    last_fetch_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # One poller per mailbox across processes: who polls it, and until when.
    poller: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Messages fetched again and dropped as repeats of a Message-ID taken before.
    duplicates: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class QuarantineStatus:
    OPEN = "open"
    RELEASED = "released"  # retried and taken in
    DISCARDED = "discarded"


class QuarantinedEmail(IdMixin, TimestampMixin, Base):
    """A message the hub could not take in: kept with its raw bytes and the reason."""

    __tablename__ = "email_quarantine"
    __table_args__ = (
        UniqueConstraint("channel_id", "raw_sha256"),
        Index("ix_email_quarantine_status_id", "status", "id"),
    )

    channel_id: Mapped[int] = mapped_column(BigId, ForeignKey("channels.id", ondelete="CASCADE"))
    uid: Mapped[int | None] = mapped_column(BigId)
    uidvalidity: Mapped[int | None] = mapped_column(BigId)
    reason: Mapped[str] = mapped_column(Text)
    # The raw message, gzip-compressed in the blob store.
    raw_sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    subject: Mapped[str | None] = mapped_column(String(500))
    sender: Mapped[str | None] = mapped_column(String(320))
    status: Mapped[str] = mapped_column(String(20), default=QuarantineStatus.OPEN)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    message_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("messages.id", ondelete="SET NULL")
    )
