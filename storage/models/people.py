"""Managers, API tokens, contacts and their identities."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from storage.models.base import Base, CreatedMixin, IdMixin, TimestampMixin
from storage.types import BigId, JSONDict, UTCDateTime


class ManagerRole(StrEnum):
    ADMIN = "admin"
    MANAGER = "manager"


class Manager(IdMixin, TimestampMixin, Base):
    __tablename__ = "managers"
    # One Telegram chat is linked to one manager per bot.
    __table_args__ = (UniqueConstraint("telegram_channel_id", "telegram_chat_id"),)

    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20), default=ManagerRole.MANAGER)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    language: Mapped[str] = mapped_column(String(8), default="ru")
    timezone: Mapped[str] = mapped_column(String(64), default="Europe/Moscow")
    # Routing: presence lapses to offline when heartbeats stop (presence_expires_at).
    presence: Mapped[str] = mapped_column(String(10), default="offline")
    presence_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    capacity: Mapped[int] = mapped_column(Integer, default=10)
    languages: Mapped[list[str]] = mapped_column(JSONDict, default=list)
    # routing.calendar.WorkingHours as JSON; None means no limits.
    working_hours: Mapped[dict[str, Any] | None] = mapped_column(JSONDict)
    last_assigned_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The managers' bot: the private chat (its id is the user's) a manager linked with a
    # one-time code, and the bot channel it is with; notifications go there.
    telegram_chat_id: Mapped[str | None] = mapped_column(String(32))
    # use_alter: channels -> queues -> managers -> channels is a cycle for table sorting.
    telegram_channel_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("channels.id", ondelete="SET NULL", use_alter=True)
    )
    telegram_linked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Telephony: how the PBX names the manager (an extension or SIP login) and their phone.
    extension: Mapped[str | None] = mapped_column(String(64))
    phone: Mapped[str | None] = mapped_column(String(32))
    notify_by_email: Mapped[bool] = mapped_column(Boolean, default=True)

    @property
    def telegram_linked(self) -> bool:
        return self.telegram_chat_id is not None and self.telegram_channel_id is not None


class ApiToken(IdMixin, CreatedMixin, Base):
    __tablename__ = "api_tokens"

    name: Mapped[str] = mapped_column(String(200))
    # sha256 of the token; the token itself is shown once and never stored.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    # A manager's tokens go with the manager: never left behind as operator tokens.
    manager_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("managers.id", ondelete="CASCADE")
    )
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ManagerSession(IdMixin, CreatedMixin, Base):
    """A signed-in browser: the cookie holds a random token, only its sha256 is kept.

    Revoked on logout, "sign out everywhere", a password change and deactivation.
    """

    __tablename__ = "manager_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    manager_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("managers.id", ondelete="CASCADE"), index=True
    )
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    user_agent: Mapped[str | None] = mapped_column(String(300))
    ip: Mapped[str | None] = mapped_column(String(64))


class IdentityKind(StrEnum):
    EMAIL = "email"
    PHONE = "phone"
    TELEGRAM = "telegram"
    WEB = "web"


class Contact(IdMixin, TimestampMixin, Base):
    __tablename__ = "contacts"

    name: Mapped[str | None] = mapped_column(String(200))
    company: Mapped[str | None] = mapped_column(String(200))
    language: Mapped[str | None] = mapped_column(String(8))
    owner_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("managers.id", ondelete="SET NULL"), index=True
    )
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONDict, default=dict)
    # What managers wrote down about the contact (the contact panel's notes).
    notes: Mapped[str | None] = mapped_column(Text)

    identities: Mapped[list[Identity]] = relationship(
        back_populates="contact", lazy="raise", order_by="Identity.id"
    )


class Identity(IdMixin, CreatedMixin, Base):
    """One way to reach a contact; (kind, value) is unique across all contacts."""

    __tablename__ = "identities"
    __table_args__ = (UniqueConstraint("kind", "value"),)

    contact_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(20))
    value: Mapped[str] = mapped_column(String(320))
    # Set when the channel reports the identity cannot be reached (bounced, bot blocked).
    unreachable_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    contact: Mapped[Contact] = relationship(back_populates="identities", lazy="raise")


class MergeSuggestion(IdMixin, CreatedMixin, Base):
    """Two contacts that one inbound message tied together; a manager decides."""

    __tablename__ = "merge_suggestions"
    __table_args__ = (UniqueConstraint("contact_id", "other_contact_id"),)

    contact_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    other_contact_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="open")
    message_id: Mapped[int | None] = mapped_column(BigId)


Index("ix_identities_value", Identity.value)
