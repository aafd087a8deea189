"""The investigation plan of a claim: a step is ticked off as done (when, by whom).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.types

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("claim_steps", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("done_at", storage.types.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("done_by_id", BIG_ID, nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_claim_steps_done_by_id_managers"),
            "managers",
            ["done_by_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table("claim_steps", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_claim_steps_done_by_id_managers"), type_="foreignkey"
        )
        batch_op.drop_column("done_by_id")
        batch_op.drop_column("done_at")
