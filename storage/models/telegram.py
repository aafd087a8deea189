"""Telegram bot channels' own state: handled updates, FSM records, the long-polling offset;
managers' one-time codes for linking the managers' bot."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base, CreatedMixin, TimestampMixin
from storage.types import BigId, JSONDict, UTCDateTime


class TelegramUpdate(CreatedMixin, Base):
    """An update the bot has handled: the same update_id delivered again is skipped.

    Updates that only carry a client's message need no row: the message's external id
    (`tg:{chat_id}:{message_id}`) makes its ingest idempotent already, and the bot's
    dialogues check it (bots.work) so neither kind of proof is missed.
    """

    __tablename__ = "telegram_updates"
    __table_args__ = (Index("ix_telegram_updates_created_at", "created_at"),)

    channel_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("channels.id", ondelete="CASCADE"), primary_key=True
    )
    update_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)


class TelegramFsmRecord(TimestampMixin, Base):
    """One aiogram FSM key's state and data (the embedded storage; Redis replaces it)."""

    __tablename__ = "telegram_fsm"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    state: Mapped[str | None] = mapped_column(String(255))
    data: Mapped[dict[str, Any]] = mapped_column(JSONDict, default=dict)


class TelegramBotState(TimestampMixin, Base):
    """Per bot channel: the getUpdates offset and the lease of the one process polling it."""

    __tablename__ = "telegram_bots"

    channel_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("channels.id", ondelete="CASCADE"), primary_key=True
    )
    update_offset: Mapped[int] = mapped_column(BigInteger, default=0)
    poller: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    webhook_url: Mapped[str | None] = mapped_column(Text)


class ManagerTelegramCode(CreatedMixin, Base):
    """A one-time code a manager sends the managers' bot to link their Telegram chat.

    Only its sha256 is stored; a manager has at most one (a new code replaces it), and
    it is deleted when used.
    """

    __tablename__ = "manager_telegram_codes"

    manager_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("managers.id", ondelete="CASCADE"), primary_key=True
    )
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
