"""Email: Message-IDs for threading, mailbox checkpoints, the quarantine; outbound delivery
state on messages.

Existing messages get a server default for the new NOT NULL column.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 13:09:08.971208
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.types

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "email_mailbox_state",
        sa.Column(
            "channel_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("folder", sa.String(length=255), nullable=False),
        sa.Column(
            "uidvalidity", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("last_uid", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("last_fetch_at", storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("poller", sa.String(length=64), nullable=True),
        sa.Column("lease_until", storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["channels.id"],
            name=op.f("fk_email_mailbox_state_channel_id_channels"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("channel_id", name=op.f("pk_email_mailbox_state")),
    )
    op.create_table(
        "email_message_ids",
        sa.Column(
            "channel_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("message_id_header", sa.String(length=255), nullable=False),
        sa.Column(
            "conversation_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "message_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("outbound", sa.Boolean(), nullable=False),
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("created_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["channels.id"],
            name=op.f("fk_email_message_ids_channel_id_channels"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_email_message_ids_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_email_message_ids_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_message_ids")),
        sa.UniqueConstraint(
            "channel_id",
            "message_id_header",
            name=op.f("uq_email_message_ids_channel_id_message_id_header"),
        ),
    )
    with op.batch_alter_table("email_message_ids", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_email_message_ids_conversation_id"), ["conversation_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_email_message_ids_message_id"), ["message_id"], unique=False
        )

    op.create_table(
        "email_quarantine",
        sa.Column(
            "channel_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("uid", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column(
            "uidvalidity", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("raw_sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("subject", sa.String(length=500), nullable=True),
        sa.Column("sender", sa.String(length=320), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column(
            "message_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("updated_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["channels.id"],
            name=op.f("fk_email_quarantine_channel_id_channels"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_email_quarantine_message_id_messages"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_quarantine")),
        sa.UniqueConstraint(
            "channel_id", "raw_sha256", name=op.f("uq_email_quarantine_channel_id_raw_sha256")
        ),
    )
    with op.batch_alter_table("email_quarantine", schema=None) as batch_op:
        batch_op.create_index("ix_email_quarantine_status_id", ["status", "id"], unique=False)

    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("delivery_attempts", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("deliver_after", storage.types.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.create_index(
            "ix_messages_delivery",
            ["status", "deliver_after"],
            unique=False,
            sqlite_where=sa.text("status IN ('queued', 'sending')"),
            postgresql_where=sa.text("status IN ('queued', 'sending')"),
        )


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_messages_delivery",
            sqlite_where=sa.text("status IN ('queued', 'sending')"),
            postgresql_where=sa.text("status IN ('queued', 'sending')"),
        )
        batch_op.drop_column("deliver_after")
        batch_op.drop_column("delivery_attempts")

    with op.batch_alter_table("email_quarantine", schema=None) as batch_op:
        batch_op.drop_index("ix_email_quarantine_status_id")

    op.drop_table("email_quarantine")
    with op.batch_alter_table("email_message_ids", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_email_message_ids_message_id"))
        batch_op.drop_index(batch_op.f("ix_email_message_ids_conversation_id"))

    op.drop_table("email_message_ids")
    op.drop_table("email_mailbox_state")
