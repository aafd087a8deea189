"""Claims (complaints, «претензии») filed by clients, their investigation steps and numbers."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base, CreatedMixin, IdMixin, TimestampMixin
from storage.types import BigId, UTCDateTime


class ClaimStatus(StrEnum):
    REGISTERED = "registered"
    IN_REVIEW = "in_review"
    INVESTIGATING = "investigating"
    RESOLVED = "resolved"
    CLOSED = "closed"
    REJECTED = "rejected"


class Claim(IdMixin, TimestampMixin, Base):
    """A complaint: a human number (CLM-2026-000042), its lifecycle and the client's rating."""

    __tablename__ = "claims"
    __table_args__ = (
        # Idempotency of filing: the same (channel, external id) files one claim.
        UniqueConstraint("channel_id", "external_id"),
        CheckConstraint("rating IS NULL OR (rating >= 1 AND rating <= 5)", name="rating_range"),
        Index("ix_claims_status_id", "status", "id"),
        Index("ix_claims_created_at", "created_at"),
    )

    number: Mapped[str] = mapped_column(String(32), unique=True)
    year: Mapped[int] = mapped_column(Integer)
    sequence: Mapped[int] = mapped_column(Integer)
    channel_id: Mapped[int] = mapped_column(BigId, ForeignKey("channels.id"), index=True)
    external_id: Mapped[str | None] = mapped_column(String(255))
    contact_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    conversation_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("conversations.id", ondelete="SET NULL"), index=True
    )
    lead_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("leads.id", ondelete="SET NULL"))
    # The message that filed it: its attachments are the claim's.
    message_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("messages.id", ondelete="SET NULL")
    )
    status: Mapped[str] = mapped_column(String(20), default=ClaimStatus.REGISTERED)
    reason: Mapped[str] = mapped_column(String(40))
    order_ref: Mapped[str | None] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text)
    phone: Mapped[str | None] = mapped_column(String(32))
    email: Mapped[str | None] = mapped_column(String(320))
    language: Mapped[str] = mapped_column(String(8), default="ru")
    manager_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("managers.id", ondelete="SET NULL"), index=True
    )
    resolution: Mapped[str | None] = mapped_column(Text)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    status_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    rating: Mapped[int | None] = mapped_column(Integer)
    rating_comment: Mapped[str | None] = mapped_column(Text)
    rated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ClaimStep(IdMixin, CreatedMixin, Base):
    """One entry of a claim's history: an investigation step or a status change."""

    __tablename__ = "claim_steps"
    __table_args__ = (Index("ix_claim_steps_claim_id_id", "claim_id", "id"),)

    claim_id: Mapped[int] = mapped_column(BigId, ForeignKey("claims.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))  # step, status
    author_manager_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("managers.id", ondelete="SET NULL")
    )
    text: Mapped[str] = mapped_column(Text, default="")
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str | None] = mapped_column(String(20))
    # An investigation step of the plan is done when ticked off (who, when); None: to do.
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    done_by_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("managers.id", ondelete="SET NULL")
    )


class ClaimSequence(Base):
    """The last claim number given out in a year (numbers restart every year)."""

    __tablename__ = "claim_sequences"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_value: Mapped[int] = mapped_column(Integer, default=0)
