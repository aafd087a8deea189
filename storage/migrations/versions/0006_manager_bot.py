"""The managers' bot: one-time link codes; the bot channel and time of a manager's link.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

import storage.types

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _at(name: str, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, storage.types.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "manager_telegram_codes",
        sa.Column("manager_id", BIG_ID, nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        _at("expires_at"),
        _at("created_at"),
        sa.ForeignKeyConstraint(
            ["manager_id"],
            ["managers.id"],
            name=op.f("fk_manager_telegram_codes_manager_id_managers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("manager_id", name=op.f("pk_manager_telegram_codes")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_manager_telegram_codes_code_hash")),
    )

    with op.batch_alter_table("managers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("telegram_channel_id", BIG_ID, nullable=True))
        batch_op.add_column(_at("telegram_linked_at", nullable=True))
        batch_op.create_unique_constraint(
            batch_op.f("uq_managers_telegram_channel_id_telegram_chat_id"),
            ["telegram_channel_id", "telegram_chat_id"],
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_managers_telegram_channel_id_channels"),
            "channels",
            ["telegram_channel_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table("managers", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_managers_telegram_channel_id_channels"), type_="foreignkey"
        )
        batch_op.drop_constraint(
            batch_op.f("uq_managers_telegram_channel_id_telegram_chat_id"), type_="unique"
        )
        batch_op.drop_column("telegram_linked_at")
        batch_op.drop_column("telegram_channel_id")

    op.drop_table("manager_telegram_codes")
