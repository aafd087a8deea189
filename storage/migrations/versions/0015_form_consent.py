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

import copy
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from pydantic import ValidationError

from channels.webform.schemas import FormConfig
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


# The built-in form as hubs got it out of the box until this revision, frozen here: what
# later versions ship may differ, and this revision must keep meaning the same.
SHIPPED: dict[str, Any] = {
    "title": {"ru": "Напишите нам", "en": "Contact us"},
    "intro": {
        "ru": "Оставьте сообщение, и менеджер свяжется с вами.",
        "en": "Leave a message and a manager will get back to you.",
    },
    "thanks": {
        "ru": "Спасибо! Ваша заявка принята, мы скоро свяжемся с вами.",
        "en": "Thank you! We have received your request and will be in touch soon.",
    },
    "fields": [
        {
            "name": "name",
            "type": "text",
            "label": {"ru": "Имя", "en": "Name"},
            "required": False,
            "max_length": 200,
            "options": [],
        },
        {
            "name": "email",
            "type": "email",
            "label": {"ru": "Электронная почта", "en": "Email"},
            "required": False,
            "max_length": 320,
            "options": [],
        },
        {
            "name": "phone",
            "type": "tel",
            "label": {"ru": "Телефон", "en": "Phone"},
            "required": False,
            "max_length": 50,
            "options": [],
        },
        {
            "name": "message",
            "type": "textarea",
            "label": {"ru": "Сообщение", "en": "Message"},
            "required": True,
            "max_length": 10000,
            "options": [],
        },
    ],
    "require_contact": "email_or_phone",
    "allowed_origins": [],
    "language": "ru",
    "min_fill_seconds": 2.0,
    "max_files": 5,
    "max_file_bytes": 10485760,
    "accept_files": True,
    "consent": {
        "required": False,
        "policy_url": None,
        "version": "1",
        "text": {
            "ru": "Я даю согласие на обработку моих персональных данных в соответствии с",
            "en": "I consent to the processing of my personal data under the",
        },
        "link_text": {"ru": "политикой обработки персональных данных", "en": "privacy policy"},
    },
    "greeting": {
        "enabled": False,
        "working_hours": None,
        "ru": {"in_hours": None, "out_of_hours": None},
        "en": {"in_hours": None, "out_of_hours": None},
    },
}


def shipped(consent: bool) -> dict[str, Any]:
    """The built-in form as shipped at this revision, with or without the consent."""
    config = copy.deepcopy(SHIPPED)
    config["consent"]["required"] = consent
    return config


def unedited(stored: Any, consent: bool) -> bool:
    """Whether a stored form is the shipped one (as the hub reads it: with the defaults of
    keys it was written without; keys a later version added are not compared)."""
    read = as_read(stored)
    expected = shipped(consent)
    return read is not None and {key: read.get(key) for key in expected} == expected


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
    if found is None or not unedited(found.config, before):
        return  # no built-in form, or one its administrator changed
    bind.execute(sa.update(channels).where(channels.c.id == found.id).values(config=shipped(after)))


def upgrade() -> None:
    _switch(before=False, after=True)


def downgrade() -> None:
    _switch(before=True, after=False)
