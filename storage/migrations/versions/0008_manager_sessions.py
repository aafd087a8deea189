"""Server-side sessions of the managers' web sign-in, revocable one by one or all at once.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

import storage.types

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _at(name: str, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, storage.types.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "manager_sessions",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("manager_id", BIG_ID, nullable=False),
        _at("expires_at"),
        _at("last_seen_at"),
        _at("revoked_at", nullable=True),
        sa.Column("user_agent", sa.String(length=300), nullable=True),
        sa.Column("ip", sa.String(length=64), nullable=True),
        _at("created_at"),
        sa.ForeignKeyConstraint(
            ["manager_id"],
            ["managers.id"],
            name=op.f("fk_manager_sessions_manager_id_managers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_manager_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_manager_sessions_token_hash")),
    )
    with op.batch_alter_table("manager_sessions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_manager_sessions_manager_id"), ["manager_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("manager_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_manager_sessions_manager_id"))
    op.drop_table("manager_sessions")
