"""What the managers' workspace keeps: canned replies, read positions, contact merges."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base, CreatedMixin, IdMixin, TimestampMixin
from storage.types import BigId, JSONDict, UTCDateTime


class CannedReply(IdMixin, TimestampMixin, Base):
    """A prepared answer a manager inserts by typing `/` and its shortcut.

    Shared replies (no owner) are the team's and kept by administrators; a manager's own
    replies are theirs. The body may name `{client_name}`, `{request_number}` and
    `{manager_name}`, filled in for the conversation it is inserted into.
    """

    __tablename__ = "canned_replies"
    __table_args__ = (
        UniqueConstraint("owner_id", "shortcut"),
        # Shared replies have no owner, and NULLs never collide in a unique constraint.
        Index(
            "uq_canned_replies_shared_shortcut",
            "shortcut",
            unique=True,
            sqlite_where=text("owner_id IS NULL"),
            postgresql_where=text("owner_id IS NULL"),
        ),
    )

    owner_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("managers.id", ondelete="CASCADE"), index=True
    )
    shortcut: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)


class ConversationRead(Base):
    """How far a manager has read a conversation: its messages after this one are unread."""

    __tablename__ = "conversation_reads"

    manager_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("managers.id", ondelete="CASCADE"), primary_key=True
    )
    conversation_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    last_read_message_id: Mapped[int] = mapped_column(BigId)
    read_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ContactMerge(IdMixin, CreatedMixin, Base):
    """One contact merged into another: who did it, when, and what moved.

    The absorbed contact is deleted; its name, company and identities are kept here with the
    ids of every row that moved, so the merge can be read back and, by hand, undone.
    """

    __tablename__ = "contact_merges"

    into_contact_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("contacts.id", ondelete="SET NULL"), index=True
    )
    from_contact_id: Mapped[int] = mapped_column(BigId)
    manager_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("managers.id", ondelete="SET NULL")
    )
    token_id: Mapped[int | None] = mapped_column(BigId)
    absorbed: Mapped[dict[str, Any]] = mapped_column(JSONDict, default=dict)
    moved: Mapped[dict[str, Any]] = mapped_column(JSONDict, default=dict)
