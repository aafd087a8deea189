"""intake.composer on SQLite and PostgreSQL: where a reply can go, who a note mentions."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from intake.composer import (
    TextPart,
    mention_ids,
    mention_parts,
    mention_suggestions,
    mentioned_managers,
    reply_routes,
)
from intake.conversations import add_reply
from storage.db import Database
from storage.errors import InvalidInput
from storage.models import ChannelKind, Identity, Manager, Message, MessageStatus, OutboxEvent
from storage.types import utcnow
from tests.factories import create_channel, create_manager, ingest_message


class TestReplyRoutes:
    async def test_an_email_conversation_answers_by_its_mailbox_and_offers_telegram(
        self, db: Database
    ) -> None:
        mailbox = await create_channel(db, kind=ChannelKind.EMAIL, title="Продажи")
        bot = await create_channel(db, kind=ChannelKind.TELEGRAM, title="Бот")
        await create_channel(
            db, kind=ChannelKind.TELEGRAM, title="Бот менеджеров", config={"audience": "managers"}
        )
        chat = await ingest_message(db, bot, telegram=5551, text="привет")
        mail = await ingest_message(db, mailbox, email="anna@example.ru", telegram=5551)
        assert mail.contact_id == chat.contact_id
        async with db.read() as session:
            routes = await reply_routes(session, mail.conversation_id)
        assert [(r.channel_id, r.kind, r.address, r.own) for r in routes] == [
            (mailbox.id, "email", None, True),
            (bot.id, "telegram", "5551", False),
        ]

    async def test_a_web_form_offers_the_clients_email_through_a_mailbox(
        self, db: Database
    ) -> None:
        form = await create_channel(db)
        mailbox = await create_channel(db, kind=ChannelKind.EMAIL)
        taken = await ingest_message(db, form, email="ivan@example.ru")
        async with db.read() as session:
            routes = await reply_routes(session, taken.conversation_id)
        assert [(r.channel_id, r.address, r.own) for r in routes] == [
            (mailbox.id, "ivan@example.ru", False)
        ]

    async def test_a_bot_the_client_never_wrote_to_is_no_way_to_them(self, db: Database) -> None:
        form = await create_channel(db)
        await create_channel(db, kind=ChannelKind.TELEGRAM)
        taken = await ingest_message(db, form, telegram=777)
        async with db.read() as session:
            assert await reply_routes(session, taken.conversation_id) == []

    async def test_a_call_with_only_a_phone_number_has_no_way_to_answer_in_writing(
        self, db: Database
    ) -> None:
        line = await create_channel(db, kind=ChannelKind.TELEPHONY)
        await create_channel(db, kind=ChannelKind.EMAIL)
        taken = await ingest_message(db, line, phone="+79161234567")
        async with db.read() as session:
            assert await reply_routes(session, taken.conversation_id) == []

    async def test_an_unreachable_address_is_not_offered(self, db: Database) -> None:
        form = await create_channel(db)
        await create_channel(db, kind=ChannelKind.EMAIL)
        taken = await ingest_message(db, form, email="gone@example.ru")
        async with db.transaction() as session:
            await session.execute(update(Identity).values(unreachable_at=utcnow()))
        async with db.read() as session:
            assert await reply_routes(session, taken.conversation_id) == []


class TestReplyThroughAnotherChannel:
    async def test_a_web_form_reply_goes_by_the_mailbox_chosen_or_by_default(
        self, db: Database
    ) -> None:
        form = await create_channel(db)
        mailbox = await create_channel(db, kind=ChannelKind.EMAIL)
        taken = await ingest_message(db, form, email="ivan@example.ru")
        async with db.transaction() as session:
            chosen = await add_reply(
                session,
                taken.conversation_id,
                text="Ответ",
                manager_id=None,
                now=utcnow(),
                channel_id=mailbox.id,
            )
            default = await add_reply(
                session, taken.conversation_id, text="Ещё", manager_id=None, now=utcnow()
            )
        assert chosen.channel_id == default.channel_id == mailbox.id
        assert chosen.conversation_id == taken.conversation_id
        assert chosen.status == MessageStatus.QUEUED
        async with db.read() as session:
            events = (
                await session.scalars(
                    select(OutboxEvent.payload).where(OutboxEvent.topic == "message.outbound")
                )
            ).all()
        assert {event["channel_id"] for event in events} == {mailbox.id}

    async def test_a_channel_that_cannot_reach_the_client_is_refused(self, db: Database) -> None:
        form = await create_channel(db)
        bot = await create_channel(db, kind=ChannelKind.TELEGRAM)
        taken = await ingest_message(db, form, email="ivan@example.ru")
        with pytest.raises(InvalidInput) as refused:
            async with db.transaction() as session:
                await add_reply(
                    session,
                    taken.conversation_id,
                    text="Ответ",
                    manager_id=None,
                    now=utcnow(),
                    channel_id=bot.id,
                )
        assert refused.value.code == "unreachable_channel"


class TestMentions:
    async def test_a_note_mentions_active_managers_named_in_its_text(self, db: Database) -> None:
        author = await create_manager(db, name="Ольга")
        irina = await create_manager(db, name="Ирина Петрова")
        boris = await create_manager(db, name="Борис")
        gone = await create_manager(db, name="Глеб")
        await create_manager(db, name="Ирина")
        async with db.transaction() as session:
            await session.execute(
                update(Manager).where(Manager.id == gone.id).values(is_active=False)
            )
        form = await create_channel(db)
        taken = await ingest_message(db, form)
        # Boris's id came from the client, but his name is not in the text: not mentioned.
        async with db.transaction() as session:
            note = await add_reply(
                session,
                taken.conversation_id,
                text="@ирина петрова, посмотрите; @Глеб тоже. @Ольга себе",
                manager_id=author.id,
                now=utcnow(),
                note=True,
                mentions=[boris.id, irina.id, 999],
            )
        assert note.meta == {"mentions": sorted([irina.id, author.id])}
        async with db.read() as session:
            rows = (
                await session.scalars(
                    select(OutboxEvent.payload).where(OutboxEvent.topic == "note.mentioned")
                )
            ).all()
        # The author is not told of their own mention.
        assert [(row["manager_id"], row["author_id"], row["message_id"]) for row in rows] == [
            (irina.id, author.id, note.id)
        ]

    async def test_a_name_is_mentioned_only_whole(self, db: Database) -> None:
        anna = await create_manager(db, name="Анна")
        await create_manager(db, name="Анна Мария")
        async with db.read() as session:
            assert await mentioned_managers(session, "@Аннабель, привет") == []
            assert await mentioned_managers(session, "e-mail anna@Анна") == []
            assert await mentioned_managers(session, "(@Анна)") == [anna.id]

    async def test_a_name_two_managers_share_goes_to_the_one_picked(self, db: Database) -> None:
        first = await create_manager(db, name="Иван")
        second = await create_manager(db, name="Иван")
        async with db.read() as session:
            assert await mentioned_managers(session, "@Иван", [second.id]) == [second.id]
            assert await mentioned_managers(session, "@Иван") == sorted([first.id, second.id])

    async def test_a_reply_mentions_nobody(self, db: Database) -> None:
        await create_manager(db, name="Ирина")
        form = await create_channel(db, kind=ChannelKind.EMAIL)
        taken = await ingest_message(db, form, email="c@example.ru")
        async with db.transaction() as session:
            reply = await add_reply(
                session, taken.conversation_id, text="@Ирина", manager_id=None, now=utcnow()
            )
            assert reply.meta == {}
        async with db.read() as session:
            topics = (await session.scalars(select(OutboxEvent.topic))).all()
            assert "note.mentioned" not in topics
            assert (await session.get(Message, reply.id)) is not None

    async def test_suggestions_match_a_word_of_the_name(self, db: Database) -> None:
        irina = await create_manager(db, name="Ирина Петрова")
        await create_manager(db, name="Борис")
        async with db.read() as session:
            assert await mention_suggestions(session, "пет") == [(irina.id, "Ирина Петрова")]
            assert len(await mention_suggestions(session, "")) == 2

    def test_the_hidden_field_gives_only_numbers(self) -> None:
        assert mention_ids(["3, 7,x,,-1", "12"]) == [3, 7, 12]


class TestMentionParts:
    def test_the_names_mentioned_stand_out_whole_and_in_any_case(self) -> None:
        names = ["Ирина", "Ирина Петрова", "Борис"]
        text = "(@ирина петрова) и @Ирина, а @Ирина Петровна нет; anna@Борис и @Бориска нет"
        assert mention_parts(text, names) == [
            TextPart("(", False),
            TextPart("@ирина петрова", True),
            TextPart(") и ", False),
            TextPart("@Ирина", True),
            TextPart(", а ", False),
            TextPart("@Ирина", True),
            TextPart(" Петровна нет; anna@Борис и @Бориска нет", False),
        ]

    def test_a_text_without_the_names_is_one_plain_part(self) -> None:
        assert mention_parts("@Олег, проверь", ["Ирина"]) == [TextPart("@Олег, проверь", False)]
        assert mention_parts("", ["Ирина"]) == []
        assert mention_parts("@Ирина", []) == [TextPart("@Ирина", False)]
