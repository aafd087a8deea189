"""Conversation states: a conversation may be snoozed until a time (status `snoozed`).

`conversations.snoozed_until` holds the time it comes back; the wake-up itself is an outbox
timer. Added with a plain ADD COLUMN (no table rebuild on SQLite, whose search triggers on
`conversations` must stay).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.types

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "conversations",
        sa.Column("snoozed_until", storage.types.UTCDateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("conversations", "snoozed_until")
