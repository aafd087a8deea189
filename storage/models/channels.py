"""Channels: configured entry points (mailboxes, bots, web forms, phone lines)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Boolean, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base, IdMixin, TimestampMixin
from storage.types import BigId, JSONDict, UTCDateTime


class ChannelKind(StrEnum):
    EMAIL = "email"
    TELEGRAM = "telegram"
    WEBFORM = "webform"
    TELEPHONY = "telephony"


class Channel(IdMixin, TimestampMixin, Base):
    __tablename__ = "channels"

    key: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(20), index=True)
    title: Mapped[str] = mapped_column(String(200))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    config: Mapped[dict[str, Any]] = mapped_column(JSONDict, default=dict)
    # Secrets encrypted with the hub's secret key (passwords, bot tokens).
    secrets: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="ok")
    last_error: Mapped[str | None] = mapped_column(Text)
    last_activity_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Where routing sends this channel's conversations when no rule says otherwise.
    default_queue_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("queues.id", ondelete="SET NULL")
    )
