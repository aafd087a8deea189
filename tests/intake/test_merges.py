"""Contact merges on both backends: everything moves, the merge is recorded, twice is refused."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from intake.journal import Actor
from intake.merges import merge_contacts
from storage.db import Database
from storage.errors import InvalidInput, NotFound
from storage.models import (
    Contact,
    ContactMerge,
    Conversation,
    Identity,
    Lead,
    MergeSuggestion,
    OutboxEvent,
)
from storage.types import utcnow
from tests.factories import create_channel, create_manager, ingest_message


class TestMerge:
    async def test_everything_moves_and_the_merge_is_recorded(self, db: Database) -> None:
        anna = await create_manager(db)
        mail = await create_channel(db, kind="email")
        form = await create_channel(db)
        kept = await ingest_message(db, mail, email="petr@example.ru", name=None)
        absorbed = await ingest_message(db, form, phone="+79123456789", name="Пётр Иванов")
        # One message naming both: the hub suggests merging them.
        both = await ingest_message(
            db, form, email="petr@example.ru", phone="+79123456789", thread_key="both"
        )
        async with db.read() as session:
            suggested = await session.scalar(select(func.count()).select_from(MergeSuggestion))
        assert suggested == 1
        assert both.contact_id in (kept.contact_id, absorbed.contact_id)

        async with db.transaction() as session:
            record = await merge_contacts(
                session, kept.contact_id, absorbed.contact_id, Actor(manager_id=anna.id), utcnow()
            )

        async with db.read() as session:
            contact = await session.get(Contact, kept.contact_id)
            gone = await session.get(Contact, absorbed.contact_id)
            identities = set(
                await session.scalars(
                    select(Identity.value).where(Identity.contact_id == kept.contact_id)
                )
            )
            conversations = set(
                await session.scalars(
                    select(Conversation.id).where(Conversation.contact_id == kept.contact_id)
                )
            )
            leads = await session.scalar(
                select(func.count()).select_from(Lead).where(Lead.contact_id == kept.contact_id)
            )
            suggestions = await session.scalar(select(func.count()).select_from(MergeSuggestion))
            saved = await session.get(ContactMerge, record.id)
            events = list(
                await session.scalars(
                    select(OutboxEvent.payload).where(OutboxEvent.topic == "contact.merged")
                )
            )
        assert contact is not None and gone is None
        assert contact.name == "Пётр Иванов"  # the blank filled from the absorbed contact
        assert identities == {"petr@example.ru", "+79123456789"}
        assert conversations >= {kept.conversation_id, absorbed.conversation_id}
        assert leads == len(conversations)
        assert suggestions == 0
        assert saved is not None and saved.manager_id == anna.id
        assert saved.absorbed["identities"] == [{"kind": "phone", "value": "+79123456789"}]
        assert absorbed.conversation_id in saved.moved["conversations"]
        assert saved.moved["merge_suggestions_settled"]
        assert events and events[0]["contact_id"] == kept.contact_id

    async def test_a_merge_twice_or_into_itself_is_refused(self, db: Database) -> None:
        channel = await create_channel(db)
        first = await ingest_message(db, channel, email="a@example.ru")
        second = await ingest_message(db, channel, email="b@example.ru")
        async with db.transaction() as session:
            await merge_contacts(session, first.contact_id, second.contact_id, Actor(), utcnow())
        async with db.transaction() as session:
            with pytest.raises(NotFound):
                await merge_contacts(
                    session, first.contact_id, second.contact_id, Actor(), utcnow()
                )
            with pytest.raises(InvalidInput):
                await merge_contacts(session, first.contact_id, first.contact_id, Actor(), utcnow())
