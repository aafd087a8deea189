"""Telephony: the call journal, tasks (callbacks after missed calls), the blocklist."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base, CreatedMixin, IdMixin, TimestampMixin
from storage.types import BigId, JSONDict, UTCDateTime


class CallDirection(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class CallState(StrEnum):
    RINGING = "ringing"
    ANSWERED = "answered"  # talking now
    MISSED = "missed"  # ended without an answer
    COMPLETED = "completed"  # answered, then ended
    REJECTED = "rejected"  # a blocked number


class Call(IdMixin, TimestampMixin, Base):
    """One phone call as the provider reported it; one row per provider call id."""

    __tablename__ = "calls"
    __table_args__ = (
        UniqueConstraint("channel_id", "provider_call_id"),
        Index("ix_calls_client_number_id", "client_number", "id"),
        Index("ix_calls_state_id", "state", "id"),
    )

    channel_id: Mapped[int] = mapped_column(BigId, ForeignKey("channels.id", ondelete="CASCADE"))
    provider_call_id: Mapped[str] = mapped_column(String(255))
    direction: Mapped[str] = mapped_column(String(10))
    state: Mapped[str] = mapped_column(String(20), default=CallState.RINGING)
    # As the provider sent them (a number, an extension, "anonymous").
    from_number: Mapped[str] = mapped_column(String(64), default="")
    to_number: Mapped[str] = mapped_column(String(64), default="")
    # The outside party in E.164 (the caller of an inbound call), when it has a number.
    client_number: Mapped[str | None] = mapped_column(String(32))
    contact_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("contacts.id", ondelete="SET NULL"), index=True
    )
    conversation_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("conversations.id", ondelete="SET NULL"), index=True
    )
    message_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("messages.id", ondelete="SET NULL")
    )
    # The manager who answered (inbound) or called (outbound), and how the PBX named them.
    manager_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("managers.id", ondelete="SET NULL"), index=True
    )
    agent: Mapped[str | None] = mapped_column(String(200))
    queue: Mapped[str | None] = mapped_column(String(200))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    wait_seconds: Mapped[int | None] = mapped_column(Integer)
    talk_seconds: Mapped[int | None] = mapped_column(Integer)
    # normal, busy, cancel, no_answer, congestion, not_found, failed, forwarded, blocked
    end_reason: Mapped[str | None] = mapped_column(String(32))
    forwarded: Mapped[bool] = mapped_column(Boolean, default=False)
    # A link to the provider's recording (never fetched by the hub), or the provider's id of it.
    recording_url: Mapped[str | None] = mapped_column(Text)
    recording_ref: Mapped[str | None] = mapped_column(String(255))
    details: Mapped[dict[str, Any]] = mapped_column(JSONDict, default=dict)


class TaskKind(StrEnum):
    CALLBACK = "callback"


class TaskStatus(StrEnum):
    OPEN = "open"
    DONE = "done"
    CANCELLED = "cancelled"


class Task(IdMixin, TimestampMixin, Base):
    """Something a manager must do by a time (call a client back after a missed call)."""

    __tablename__ = "tasks"
    __table_args__ = (
        Index("ix_tasks_status_due_at", "status", "due_at"),
        # One open callback per number: more missed calls add to it.
        Index(
            "uq_tasks_open_callback",
            "kind",
            "phone",
            unique=True,
            sqlite_where=text("status = 'open'"),
            postgresql_where=text("status = 'open'"),
        ),
    )

    kind: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default=TaskStatus.OPEN)
    title: Mapped[str] = mapped_column(String(500), default="")
    assignee_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("managers.id", ondelete="SET NULL"), index=True
    )
    contact_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    conversation_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("conversations.id", ondelete="SET NULL"), index=True
    )
    call_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("calls.id", ondelete="SET NULL"))
    phone: Mapped[str | None] = mapped_column(String(32))
    # Missed calls this callback answers for (a repeated call adds to the open task).
    count: Mapped[int] = mapped_column(Integer, default=1)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    overdue_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_by_call_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("calls.id", ondelete="SET NULL")
    )
    closed_by_manager_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("managers.id", ondelete="SET NULL")
    )
    note: Mapped[str] = mapped_column(Text, default="")


class BlockedNumber(IdMixin, CreatedMixin, Base):
    """A number whose calls are rejected (where the provider can) and never become leads."""

    __tablename__ = "blocked_numbers"

    # E.164 when it is a phone number, otherwise as the provider sends it ("anonymous").
    number: Mapped[str] = mapped_column(String(64), unique=True)
    reason: Mapped[str] = mapped_column(String(200), default="")
    created_by_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("managers.id", ondelete="SET NULL")
    )
