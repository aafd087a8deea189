"""The outbox: events written in the same transaction as the change that caused them."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base, CreatedMixin, IdMixin
from storage.types import JSONDict, UTCDateTime, utcnow


class OutboxStatus(StrEnum):
    PENDING = "pending"
    DONE = "done"
    PARKED = "parked"


class OutboxEvent(IdMixin, CreatedMixin, Base):
    __tablename__ = "outbox_events"
    __table_args__ = (Index("ix_outbox_events_status_due_at", "status", "due_at"),)

    topic: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONDict, default=dict)
    status: Mapped[str] = mapped_column(String(20), default=OutboxStatus.PENDING)
    # When the event may be handled: now for plain events, later for timers.
    due_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # A claim is a lease: a worker that dies lets the event come due again.
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
