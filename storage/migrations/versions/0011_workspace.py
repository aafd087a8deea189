"""The managers' workspace: canned replies, each manager's read position per conversation,
and the record of contact merges.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import storage.types

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _at(name: str, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, storage.types.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "canned_replies",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("owner_id", BIG_ID, nullable=True),
        sa.Column("shortcut", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        _at("created_at"),
        _at("updated_at"),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["managers.id"],
            name=op.f("fk_canned_replies_owner_id_managers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_canned_replies")),
        sa.UniqueConstraint(
            "owner_id", "shortcut", name=op.f("uq_canned_replies_owner_id_shortcut")
        ),
    )
    with op.batch_alter_table("canned_replies", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_canned_replies_owner_id"), ["owner_id"], unique=False)
        batch_op.create_index(
            "uq_canned_replies_shared_shortcut",
            ["shortcut"],
            unique=True,
            sqlite_where=sa.text("owner_id IS NULL"),
            postgresql_where=sa.text("owner_id IS NULL"),
        )
    op.create_table(
        "conversation_reads",
        sa.Column("manager_id", BIG_ID, nullable=False),
        sa.Column("conversation_id", BIG_ID, nullable=False),
        sa.Column("last_read_message_id", BIG_ID, nullable=False),
        _at("read_at"),
        sa.ForeignKeyConstraint(
            ["manager_id"],
            ["managers.id"],
            name=op.f("fk_conversation_reads_manager_id_managers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_conversation_reads_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "manager_id", "conversation_id", name=op.f("pk_conversation_reads")
        ),
    )
    with op.batch_alter_table("conversation_reads", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_conversation_reads_conversation_id"), ["conversation_id"], unique=False
        )

    op.create_table(
        "contact_merges",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("into_contact_id", BIG_ID, nullable=True),
        sa.Column("from_contact_id", BIG_ID, nullable=False),
        sa.Column("manager_id", BIG_ID, nullable=True),
        sa.Column("token_id", BIG_ID, nullable=True),
        sa.Column("absorbed", JSON, nullable=False),
        sa.Column("moved", JSON, nullable=False),
        _at("created_at"),
        sa.ForeignKeyConstraint(
            ["into_contact_id"],
            ["contacts.id"],
            name=op.f("fk_contact_merges_into_contact_id_contacts"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["manager_id"],
            ["managers.id"],
            name=op.f("fk_contact_merges_manager_id_managers"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_merges")),
    )
    with op.batch_alter_table("contact_merges", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_contact_merges_into_contact_id"), ["into_contact_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("contact_merges", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contact_merges_into_contact_id"))
    op.drop_table("contact_merges")
    with op.batch_alter_table("conversation_reads", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_conversation_reads_conversation_id"))
    op.drop_table("conversation_reads")
    with op.batch_alter_table("canned_replies", schema=None) as batch_op:
        batch_op.drop_index("uq_canned_replies_shared_shortcut")
        batch_op.drop_index(batch_op.f("ix_canned_replies_owner_id"))
    op.drop_table("canned_replies")
