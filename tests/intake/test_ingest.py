"""intake.ingest() on SQLite and PostgreSQL: contacts, conversations, leads, events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from channels.base import HubContext, IngestBatcher, ingest_committed
from channels.telegram.bots import BotRegistry
from channels.telephony.config import SetupCache
from channels.telephony.journal import CallBatcher, CallJournal
from channels.webform.service import FormCache
from intake.ingest import IntakeConfig, ingest
from intake.schemas import AttachmentIn, IdentityIn, InboundMessage, IngestResult
from routing.engine import RoutingEngine
from storage.blobs import LocalBlobStore
from storage.bus import InProcessBus
from storage.db import Database
from storage.errors import InvalidInput
from storage.models import (
    Attachment,
    Channel,
    Contact,
    Conversation,
    ConversationStatus,
    Identity,
    IdentityKind,
    Lead,
    LeadStatus,
    MergeSuggestion,
    Message,
    MessageDirection,
    OutboxEvent,
)
from tests.factories import create_channel, ingest_message

SHA = "ab" * 32


@pytest.fixture
async def channel(db: Database) -> Channel:
    return await create_channel(db, key="shop", kind="webform")


@pytest.fixture
async def context(db: Database, tmp_path: Path) -> AsyncIterator[HubContext]:
    """A hub context that ingests each message in its own transaction."""
    bus = InProcessBus()
    secret = "s" * 32
    yield HubContext(
        db=db,
        blobs=LocalBlobStore(tmp_path / "blobs"),
        bus=bus,
        secret=secret,
        bots=BotRegistry(db, secret),
        forms=FormCache(),
        phone_lines=SetupCache(secret),
        calls=CallBatcher(CallJournal(db, IntakeConfig(), RoutingEngine())),
    )
    await bus.close()


@pytest.fixture(params=["alone", "batched"])
async def any_context(
    request: pytest.FixtureRequest, context: HubContext
) -> AsyncIterator[HubContext]:
    """Both ways the hub commits ingests: alone, or grouped as build_context sets it up."""
    if request.param == "alone":
        yield context
        return
    batcher = IngestBatcher(context.db, context.intake, committers=1 if context.db.is_sqlite else 4)
    context.batcher = batcher
    yield context
    await batcher.close()


def inbound(channel: Channel, external_id: str, *identities: tuple[str, str], **fields: Any):
    return InboundMessage(
        channel_id=channel.id,
        channel_kind=channel.kind,
        external_id=external_id,
        identities=[IdentityIn(IdentityKind(kind), value) for kind, value in identities],
        **fields,
    )


async def count(db: Database, model: type[Any], *where: Any) -> int:
    async with db.read() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)))


async def rows(db: Database, model: type[Any], *where: Any) -> list[Any]:
    async with db.read() as session:
        return list((await session.scalars(select(model).where(*where).order_by(model.id))).all())


async def events(db: Database) -> list[tuple[str, dict[str, Any]]]:
    return [(e.topic, e.payload) for e in await rows(db, OutboxEvent)]


class TestNewMessage:
    async def test_stores_contact_identities_conversation_message_and_lead(
        self, db: Database, channel: Channel
    ) -> None:
        result = await ingest_message(
            db,
            channel,
            external_id="form-1",
            text="\n  Нужна доставка в Казань  \nСколько стоит?",
            email="Ivan.Petrov@Example.RU",
            phone="8 (912) 345-67-89",
            name="Иван Петров",
            attribution={"utm_source": "yandex", "utm_campaign": "spring"},
            form_fields={"city": "Казань", "volume": 12},
        )

        assert result.duplicate is False
        assert result.conversation_opened is True
        assert result.lead_id is not None
        (contact,) = await rows(db, Contact)
        assert (contact.id, contact.name) == (result.contact_id, "Иван Петров")
        identities = await rows(db, Identity)
        assert {(i.kind, i.value, i.contact_id) for i in identities} == {
            ("email", "ivan.petrov@example.ru", contact.id),
            ("phone", "+79123456789", contact.id),
        }
        (conversation,) = await rows(db, Conversation)
        assert conversation.id == result.conversation_id
        assert conversation.contact_id == contact.id
        assert conversation.channel_id == channel.id
        assert conversation.status == ConversationStatus.OPEN
        assert conversation.last_message_at is not None
        (message,) = await rows(db, Message)
        assert message.id == result.message_id
        assert message.conversation_id == conversation.id
        assert message.external_id == "form-1"
        assert message.direction == MessageDirection.INBOUND
        assert message.text == "\n  Нужна доставка в Казань  \nСколько стоит?"
        (lead,) = await rows(db, Lead)
        assert lead.id == result.lead_id
        assert (lead.contact_id, lead.conversation_id, lead.channel_id) == (
            contact.id,
            conversation.id,
            channel.id,
        )
        assert lead.source == "webform"
        assert lead.status == LeadStatus.NEW
        assert lead.title == "Нужна доставка в Казань"
        assert lead.summary.startswith("\n  Нужна доставка")
        assert lead.attribution == {"utm_source": "yandex", "utm_campaign": "spring"}
        assert lead.form_fields == {"city": "Казань", "volume": 12}

    async def test_subject_is_the_lead_title(self, db: Database, channel: Channel) -> None:
        result = await ingest_message(
            db, channel, subject="  Счёт на оплату  ", text="Пришлите счёт", email="a@example.ru"
        )

        (lead,) = await rows(db, Lead)
        assert lead.id == result.lead_id
        assert lead.title == "Счёт на оплату"

    async def test_writes_events_with_the_stored_ids(self, db: Database, channel: Channel) -> None:
        result = await ingest_message(db, channel, email="a@example.ru")

        ids = {
            "conversation_id": result.conversation_id,
            "contact_id": result.contact_id,
            "channel_id": channel.id,
        }
        assert await events(db) == [
            ("conversation.opened", ids),
            ("message.received", {**ids, "message_id": result.message_id, "continues": False}),
            ("lead.created", {**ids, "lead_id": result.lead_id, "source": "webform"}),
        ]

    async def test_auto_reply_opens_no_lead(self, db: Database, channel: Channel) -> None:
        result = await ingest_message(db, channel, email="a@example.ru", opens_lead=False)

        assert result.lead_id is None
        assert await count(db, Lead) == 0
        assert [topic for topic, _ in await events(db)] == [
            "conversation.opened",
            "message.received",
        ]

    async def test_attachments_are_stored(self, db: Database, channel: Channel) -> None:
        result = await ingest_message(
            db,
            channel,
            email="a@example.ru",
            attachments=[
                AttachmentIn("заказ.pdf", "application/pdf", 2048, SHA),
                AttachmentIn("logo.png", "image/png", 10, "cd" * 32, "logo@x", inline=True),
            ],
        )

        stored = await rows(db, Attachment)
        assert [
            (a.message_id, a.filename, a.content_type, a.size, a.sha256, a.content_id, a.inline)
            for a in stored
        ] == [
            (result.message_id, "заказ.pdf", "application/pdf", 2048, SHA, None, False),
            (result.message_id, "logo.png", "image/png", 10, "cd" * 32, "logo@x", True),
        ]

    async def test_invalid_phone_stores_nothing(self, db: Database, channel: Channel) -> None:
        with pytest.raises(InvalidInput) as info:
            await ingest_message(db, channel, email="a@example.ru", phone="12345")

        assert info.value.code == "invalid_phone"
        for model in (Contact, Identity, Conversation, Message, Lead, OutboxEvent):
            assert await count(db, model) == 0, model.__name__

    async def test_failure_after_writes_rolls_everything_back(
        self, db: Database, channel: Channel
    ) -> None:
        # received_at must be aware: the failure comes at flush, after rows were added.
        with pytest.raises(Exception, match="naive datetime"):
            await ingest_message(
                db, channel, email="a@example.ru", received_at=datetime(2026, 1, 1, 12, 0)
            )

        for model in (Contact, Identity, Conversation, Message, Lead, OutboxEvent):
            assert await count(db, model) == 0, model.__name__

    async def test_long_names_are_clipped_to_their_columns(
        self, db: Database, channel: Channel
    ) -> None:
        # An email's display name or a file's name may be longer than the columns.
        result = await ingest_message(
            db,
            channel,
            email="a@example.ru",
            name="Очень " * 60,
            attachments=[AttachmentIn("д" * 300 + ".pdf", "application/pdf", 1, SHA)],
        )

        (contact,) = await rows(db, Contact)
        assert contact.id == result.contact_id
        assert contact.name == ("Очень " * 60)[:200]
        (attachment,) = await rows(db, Attachment)
        assert attachment.filename == "д" * 251 + ".pdf"

    async def test_long_language_tag_keeps_its_language(
        self, db: Database, channel: Channel, context: HubContext
    ) -> None:
        message = inbound(channel, "m-1", ("telegram", "42"), contact_language="zh-hant-tw")

        await ingest_committed(context, message)

        (contact,) = await rows(db, Contact)
        assert contact.language == "zh"

    async def test_long_external_id_is_stored_and_deduplicated(
        self, db: Database, channel: Channel
    ) -> None:
        # RFC 5322 does not bound a Message-ID; the column does.
        message_id = "<" + "x" * 300 + "@mail.example.ru>"
        first = await ingest_message(db, channel, email="a@example.ru", external_id=message_id)
        again = await ingest_message(db, channel, email="a@example.ru", external_id=message_id)

        assert again.duplicate is True
        assert again.message_id == first.message_id
        (message,) = await rows(db, Message)
        assert message.external_id is not None and len(message.external_id) <= 255
        (conversation,) = await rows(db, Conversation)
        assert len(conversation.thread_key) <= 255

    async def test_external_id_just_under_the_limit_opens_a_conversation(
        self, db: Database, channel: Channel
    ) -> None:
        # "message:" + a 255-character id is longer than the thread key column.
        external_id = "m" * 255
        result = await ingest_message(db, channel, email="a@example.ru", external_id=external_id)

        (message,) = await rows(db, Message)
        assert (message.id, message.external_id) == (result.message_id, external_id)

    async def test_long_thread_key_continues_its_conversation(
        self, db: Database, channel: Channel
    ) -> None:
        thread = "<" + "r" * 400 + "@mail.example.ru>"
        first = await ingest_message(db, channel, email="a@example.ru", thread_key=thread)
        second = await ingest_message(db, channel, email="a@example.ru", thread_key=thread)

        assert second.conversation_id == first.conversation_id
        assert second.conversation_opened is False


class TestDuplicate:
    async def test_same_external_id_returns_the_first_result(
        self, db: Database, channel: Channel
    ) -> None:
        first = await ingest_message(db, channel, external_id="m-1", email="a@example.ru")
        again = await ingest_message(db, channel, external_id="m-1", email="a@example.ru")

        assert again.duplicate is True
        assert (again.message_id, again.conversation_id, again.contact_id, again.lead_id) == (
            first.message_id,
            first.conversation_id,
            first.contact_id,
            first.lead_id,
        )
        for model in (Contact, Conversation, Message, Lead):
            assert await count(db, model) == 1, model.__name__
        assert len(await events(db)) == 3

    async def test_same_external_id_in_another_channel_is_a_new_message(
        self, db: Database, channel: Channel
    ) -> None:
        other = await create_channel(db, key="other", kind="webform")
        first = await ingest_message(db, channel, external_id="m-1", email="a@example.ru")
        second = await ingest_message(db, other, external_id="m-1", email="a@example.ru")

        assert second.duplicate is False
        assert second.message_id != first.message_id
        assert second.contact_id == first.contact_id

    async def test_a_reply_and_its_duplicate_name_the_conversations_lead(
        self, db: Database, channel: Channel
    ) -> None:
        first = await ingest_message(
            db, channel, external_id="m-1", email="a@example.ru", thread_key="t"
        )
        reply = await ingest_message(
            db, channel, external_id="m-2", email="a@example.ru", thread_key="t"
        )
        again = await ingest_message(
            db, channel, external_id="m-2", email="a@example.ru", thread_key="t"
        )

        assert first.lead_id is not None
        assert reply.lead_id == first.lead_id
        assert reply.conversation_opened is False
        assert again.duplicate is True
        assert (again.message_id, again.lead_id) == (reply.message_id, first.lead_id)


class TestConcurrentIngest:
    async def test_same_message_twenty_times_is_stored_once(
        self, db: Database, channel: Channel, any_context: HubContext
    ) -> None:
        message = inbound(
            channel, "race-1", ("email", "new@example.ru"), ("phone", "+79123456789"), text="Hi"
        )

        results = await asyncio.gather(*(ingest_committed(any_context, message) for _ in range(20)))

        assert sum(not r.duplicate for r in results) == 1
        assert (
            len({(r.message_id, r.conversation_id, r.contact_id, r.lead_id) for r in results}) == 1
        )
        for model in (Contact, Conversation, Message, Lead):
            assert await count(db, model) == 1, model.__name__
        assert await count(db, Identity) == 2
        assert await count(db, OutboxEvent) == 3

    async def test_different_messages_from_one_new_email_make_one_contact(
        self, db: Database, channel: Channel, any_context: HubContext
    ) -> None:
        messages = [
            inbound(channel, f"burst-{n}", ("email", "New.Client@example.ru"), text=f"#{n}")
            for n in range(10)
        ]

        results = await asyncio.gather(*(ingest_committed(any_context, m) for m in messages))

        assert len({r.contact_id for r in results}) == 1
        assert await count(db, Contact) == 1
        assert await count(db, Identity) == 1
        assert await count(db, Message) == 10
        assert await count(db, Lead) == 10

    async def test_identities_in_any_order_make_one_contact(
        self, db: Database, channel: Channel, any_context: HubContext
    ) -> None:
        # Two transactions inserting the same identities in opposite orders must not deadlock.
        email, phone = ("email", "pair@example.ru"), ("phone", "+79123456789")
        messages = [
            inbound(channel, f"pair-{n}", *((email, phone) if n % 2 else (phone, email)))
            for n in range(10)
        ]

        results = await asyncio.gather(*(ingest_committed(any_context, m) for m in messages))

        assert len({r.contact_id for r in results}) == 1
        assert await count(db, Contact) == 1
        assert await count(db, Identity) == 2

    async def test_same_thread_opens_one_conversation(
        self, db: Database, channel: Channel, any_context: HubContext
    ) -> None:
        messages = [
            inbound(channel, f"t-{n}", ("email", "a@example.ru"), thread_key="chat-1")
            for n in range(8)
        ]

        results = await asyncio.gather(*(ingest_committed(any_context, m) for m in messages))

        assert len({r.conversation_id for r in results}) == 1
        assert sum(r.conversation_opened for r in results) == 1
        assert await count(db, Conversation) == 1
        assert await count(db, Lead) == 1
        assert await count(db, Message) == 8


class TestThread:
    async def test_open_conversation_continues_without_a_new_lead(
        self, db: Database, channel: Channel
    ) -> None:
        first = await ingest_message(db, channel, email="a@example.ru", thread_key="chat:42")
        second = await ingest_message(db, channel, email="a@example.ru", thread_key="chat:42")

        assert second.conversation_id == first.conversation_id
        assert second.conversation_opened is False
        assert second.lead_id == first.lead_id
        assert await count(db, Conversation) == 1
        assert await count(db, Lead) == 1
        messages = await rows(db, Message)
        assert [m.conversation_id for m in messages] == [first.conversation_id] * 2
        assert [topic for topic, _ in await events(db)][3:] == ["message.received"]
        # A continuation says so: routing starts the next-response clock on it.
        assert (await events(db))[3][1]["continues"] is True

    async def test_closed_conversation_is_not_reopened(
        self, db: Database, channel: Channel
    ) -> None:
        first = await ingest_message(db, channel, email="a@example.ru", thread_key="chat:42")
        async with db.transaction() as session:
            await session.execute(
                update(Conversation)
                .where(Conversation.id == first.conversation_id)
                .values(status=ConversationStatus.CLOSED)
            )

        second = await ingest_message(db, channel, email="a@example.ru", thread_key="chat:42")

        assert second.conversation_id != first.conversation_id
        assert second.conversation_opened is True
        assert second.lead_id is not None and second.lead_id != first.lead_id
        conversations = await rows(db, Conversation)
        assert [(c.thread_key, c.status) for c in conversations] == [
            ("chat:42", "closed"),
            ("chat:42", "open"),
        ]

    async def test_same_thread_key_in_another_channel_is_another_conversation(
        self, db: Database, channel: Channel
    ) -> None:
        other = await create_channel(db, key="bot", kind="telegram")
        first = await ingest_message(db, channel, email="a@example.ru", thread_key="42")
        second = await ingest_message(db, other, email="a@example.ru", thread_key="42")

        assert second.conversation_id != first.conversation_id
        assert second.lead_id is not None


class TestKnownContact:
    async def test_new_identity_is_attached_to_the_known_contact(
        self, db: Database, channel: Channel
    ) -> None:
        first = await ingest_message(db, channel, email="a@example.ru")
        second = await ingest_message(db, channel, email="A@Example.ru", telegram=777)

        assert second.contact_id == first.contact_id
        assert await count(db, Contact) == 1
        assert {(i.kind, i.value) for i in await rows(db, Identity)} == {
            ("email", "a@example.ru"),
            ("telegram", "777"),
        }

    async def test_name_fills_only_an_empty_one(self, db: Database, channel: Channel) -> None:
        await ingest_message(db, channel, email="a@example.ru")
        await ingest_message(db, channel, email="a@example.ru", name="Ирина")
        await ingest_message(db, channel, email="a@example.ru", name="Другое имя")

        (contact,) = await rows(db, Contact)
        assert contact.name == "Ирина"


class TestTwoContacts:
    async def _two_contacts(self, db: Database, channel: Channel) -> tuple[int, int]:
        older = await ingest_message(db, channel, email="ivan@example.ru", name="Иван")
        newer = await ingest_message(db, channel, phone="+79123456789", name="Иван П.")
        return older.contact_id, newer.contact_id

    async def test_message_goes_to_the_oldest_and_a_merge_is_suggested(
        self, db: Database, channel: Channel
    ) -> None:
        older, newer = await self._two_contacts(db, channel)

        result = await ingest_message(
            db, channel, email="ivan@example.ru", phone="89123456789", telegram=555
        )

        assert result.contact_id == older
        assert {c.id for c in await rows(db, Contact)} == {older, newer}
        assert {(i.kind, i.value, i.contact_id) for i in await rows(db, Identity)} == {
            ("email", "ivan@example.ru", older),
            ("phone", "+79123456789", newer),
            ("telegram", "555", older),
        }
        (suggestion,) = await rows(db, MergeSuggestion)
        assert (suggestion.contact_id, suggestion.other_contact_id) == (older, newer)
        assert suggestion.status == "open"
        assert "phone:+79123456789" in suggestion.reason
        assert ("contact.merge_suggested", {"contact_id": older, "other_contact_id": newer}) in (
            await events(db)
        )
        leads = await rows(db, Lead, Lead.id == result.lead_id)
        assert [lead.contact_id for lead in leads] == [older]

    async def test_repeat_does_not_duplicate_the_suggestion(
        self, db: Database, channel: Channel
    ) -> None:
        await self._two_contacts(db, channel)
        await ingest_message(db, channel, email="ivan@example.ru", phone="89123456789")

        await ingest_message(db, channel, email="ivan@example.ru", phone="+7 912 345 67 89")

        assert await count(db, MergeSuggestion) == 1
        topics = [topic for topic, _ in await events(db)]
        assert topics.count("contact.merge_suggested") == 1


class TestIngestInCallerTransaction:
    async def test_caller_rollback_drops_message_and_events(
        self, db: Database, channel: Channel
    ) -> None:
        class Abort(Exception):
            pass

        session: AsyncSession
        with pytest.raises(Abort):
            async with db.transaction() as session:
                result = await ingest(
                    session, inbound(channel, "m-1", ("email", "a@example.ru")), IntakeConfig()
                )
                assert isinstance(result, IngestResult)
                raise Abort

        for model in (Contact, Identity, Conversation, Message, Lead, OutboxEvent):
            assert await count(db, model) == 0, model.__name__

    async def test_region_comes_from_the_config(self, db: Database, channel: Channel) -> None:
        async with db.transaction() as session:
            await ingest(
                session,
                inbound(channel, "m-1", ("phone", "020 7946 0958")),
                IntakeConfig(default_region="GB"),
            )

        assert [i.value for i in await rows(db, Identity)] == ["+442079460958"]
