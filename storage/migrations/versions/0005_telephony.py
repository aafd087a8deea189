"""Telephony: calls, callback tasks, blocklist; managers' extension and phone.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import storage.types

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
OPEN_ONLY = sa.text("status = 'open'")


def _id() -> sa.Column[Any]:
    return sa.Column("id", BIG_ID, autoincrement=True, nullable=False)


def _at(name: str, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, storage.types.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "blocked_numbers",
        sa.Column("number", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("created_by_id", BIG_ID, nullable=True),
        _id(),
        _at("created_at"),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["managers.id"],
            name=op.f("fk_blocked_numbers_created_by_id_managers"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_blocked_numbers")),
        sa.UniqueConstraint("number", name=op.f("uq_blocked_numbers_number")),
    )
    op.create_table(
        "calls",
        sa.Column("channel_id", BIG_ID, nullable=False),
        sa.Column("provider_call_id", sa.String(length=255), nullable=False),
        sa.Column("direction", sa.String(length=10), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("from_number", sa.String(length=64), nullable=False),
        sa.Column("to_number", sa.String(length=64), nullable=False),
        sa.Column("client_number", sa.String(length=32), nullable=True),
        sa.Column("contact_id", BIG_ID, nullable=True),
        sa.Column("conversation_id", BIG_ID, nullable=True),
        sa.Column("message_id", BIG_ID, nullable=True),
        sa.Column("manager_id", BIG_ID, nullable=True),
        sa.Column("agent", sa.String(length=200), nullable=True),
        sa.Column("queue", sa.String(length=200), nullable=True),
        _at("started_at"),
        _at("answered_at", nullable=True),
        _at("ended_at", nullable=True),
        sa.Column("wait_seconds", sa.Integer(), nullable=True),
        sa.Column("talk_seconds", sa.Integer(), nullable=True),
        sa.Column("end_reason", sa.String(length=32), nullable=True),
        sa.Column("forwarded", sa.Boolean(), nullable=False),
        sa.Column("recording_url", sa.Text(), nullable=True),
        sa.Column("recording_ref", sa.String(length=255), nullable=True),
        sa.Column("details", JSON, nullable=False),
        _id(),
        _at("updated_at"),
        _at("created_at"),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["channels.id"],
            name=op.f("fk_calls_channel_id_channels"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_calls_contact_id_contacts"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_calls_conversation_id_conversations"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["manager_id"],
            ["managers.id"],
            name=op.f("fk_calls_manager_id_managers"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_calls_message_id_messages"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calls")),
        sa.UniqueConstraint(
            "channel_id", "provider_call_id", name=op.f("uq_calls_channel_id_provider_call_id")
        ),
    )
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.create_index("ix_calls_client_number_id", ["client_number", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_calls_contact_id"), ["contact_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_calls_conversation_id"), ["conversation_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_calls_manager_id"), ["manager_id"], unique=False)
        batch_op.create_index("ix_calls_state_id", ["state", "id"], unique=False)

    op.create_table(
        "tasks",
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("title", sa.String(length=500), nullable=False),
        sa.Column("assignee_id", BIG_ID, nullable=True),
        sa.Column("contact_id", BIG_ID, nullable=True),
        sa.Column("conversation_id", BIG_ID, nullable=True),
        sa.Column("call_id", BIG_ID, nullable=True),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.Column("count", sa.Integer(), nullable=False),
        _at("due_at"),
        _at("overdue_at", nullable=True),
        _at("closed_at", nullable=True),
        sa.Column("closed_by_call_id", BIG_ID, nullable=True),
        sa.Column("closed_by_manager_id", BIG_ID, nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        _id(),
        _at("updated_at"),
        _at("created_at"),
        sa.ForeignKeyConstraint(
            ["assignee_id"],
            ["managers.id"],
            name=op.f("fk_tasks_assignee_id_managers"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["call_id"], ["calls.id"], name=op.f("fk_tasks_call_id_calls"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["closed_by_call_id"],
            ["calls.id"],
            name=op.f("fk_tasks_closed_by_call_id_calls"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["closed_by_manager_id"],
            ["managers.id"],
            name=op.f("fk_tasks_closed_by_manager_id_managers"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_tasks_contact_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_tasks_conversation_id_conversations"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tasks")),
    )
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tasks_assignee_id"), ["assignee_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_tasks_contact_id"), ["contact_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_tasks_conversation_id"), ["conversation_id"], unique=False
        )
        batch_op.create_index("ix_tasks_status_due_at", ["status", "due_at"], unique=False)
        batch_op.create_index(
            "uq_tasks_open_callback",
            ["kind", "phone"],
            unique=True,
            sqlite_where=OPEN_ONLY,
            postgresql_where=OPEN_ONLY,
        )

    with op.batch_alter_table("managers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("extension", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("phone", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("managers", schema=None) as batch_op:
        batch_op.drop_column("phone")
        batch_op.drop_column("extension")

    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_tasks_open_callback", sqlite_where=OPEN_ONLY, postgresql_where=OPEN_ONLY
        )
        batch_op.drop_index("ix_tasks_status_due_at")
        batch_op.drop_index(batch_op.f("ix_tasks_conversation_id"))
        batch_op.drop_index(batch_op.f("ix_tasks_contact_id"))
        batch_op.drop_index(batch_op.f("ix_tasks_assignee_id"))
    op.drop_table("tasks")

    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_index("ix_calls_state_id")
        batch_op.drop_index(batch_op.f("ix_calls_manager_id"))
        batch_op.drop_index(batch_op.f("ix_calls_conversation_id"))
        batch_op.drop_index(batch_op.f("ix_calls_contact_id"))
        batch_op.drop_index("ix_calls_client_number_id")
    op.drop_table("calls")
    op.drop_table("blocked_numbers")
