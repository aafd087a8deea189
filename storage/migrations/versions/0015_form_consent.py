"""The built-in web form of an existing hub asks for the consent to process personal data.

New hubs' form `default` asks for it (152-FZ). A hub made before has the same form without
the box; when its administrator never changed it (its configuration is still exactly the
one shipped), it gets the box as a new hub's has. A form the administrator edited is theirs
and stays as they left it: turning the consent on there is their decision. Downgrading
takes the box off again only where this migration would have put it.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from pydantic import ValidationError

from channels.webform.schemas import FormConfig, default_form_config
from storage.types import JSONDict

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

channels = sa.table(
    "channels",
    sa.column("id", sa.BigInteger()),
    sa.column("key", sa.String()),
    sa.column("kind", sa.String()),
    sa.column("config", JSONDict),
)


def shipped(consent: bool) -> dict[str, Any]:
    """The built-in form as a hub gets it out of the box, with or without the consent."""
    config = default_form_config()
    config.consent.required = consent
    return config.model_dump(mode="json")


def as_read(stored: Any) -> dict[str, Any] | None:
    """A stored form configuration with the defaults of keys it was written without (as the
    hub reads it); None for one the hub could not read, which this leaves alone."""
    try:
        return FormConfig.model_validate(stored).model_dump(mode="json")
    except ValidationError:
        return None


def _switch(before: bool, after: bool) -> None:
    bind = op.get_bind()
    found = bind.execute(
        sa.select(channels.c.id, channels.c.config).where(
            channels.c.key == "default", channels.c.kind == "webform"
        )
    ).first()
    if found is None or as_read(found.config) != shipped(before):
        return  # no built-in form, or one its administrator changed
    bind.execute(sa.update(channels).where(channels.c.id == found.id).values(config=shipped(after)))


def upgrade() -> None:
    _switch(before=False, after=True)


def downgrade() -> None:
    _switch(before=True, after=False)
