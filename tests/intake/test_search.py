"""intake.search on both backends: stems, names, identities, numbers, visibility, paging."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, func, select, text, update

from intake import search as search_module
from intake import search_repository
from intake.search import SearchHit, search, snippet_of, terms_of
from intake.visibility import Viewer
from storage.db import Database
from storage.errors import InvalidInput
from storage.models import Conversation, Message, Queue, QueueMember
from tests.factories import create_channel, create_manager, ingest_message

EVERYONE = Viewer(manager_id=None, is_admin=True)


async def found(db: Database, query: str, viewer: Viewer = EVERYONE, limit: int = 50) -> list[int]:
    """Every matching conversation id, following the cursor to the end."""
    ids: list[int] = []
    cursor = None
    async with db.read() as session:
        while True:
            page = await search(session, viewer, query, cursor, limit=limit)
            ids.extend(hit.row.conversation.id for hit in page.items)
            cursor = page.next_cursor
            if cursor is None:
                return ids


async def first_hit(db: Database, query: str) -> SearchHit:
    async with db.read() as session:
        page = await search(session, EVERYONE, query)
    assert page.items, f"nothing found for {query!r}"
    return page.items[0]


class TestTerms:
    @pytest.mark.parametrize("query", ["", "   ", "?!…", "x" * 201])
    def test_nothing_to_search_for_is_refused(self, query: str) -> None:
        with pytest.raises(InvalidInput) as caught:
            terms_of(query)
        assert caught.value.code == "invalid_query"

    def test_words_are_stemmed_by_their_language(self) -> None:
        terms = terms_of("Заказы invoices Счёт")
        assert terms.stems == ("заказ", "invoic", "счет")

    def test_a_phone_however_written(self) -> None:
        assert terms_of("8 (912) 345-67-89").phone_digits == ("89123456789", "79123456789")
        assert terms_of("+7 912 345").phone_digits == ("7912345",)
        assert terms_of("заказ 12").phone_digits == ()

    def test_the_snippet_marks_words_by_their_stem(self) -> None:
        parts = snippet_of("Хочу Заказать, а заказ не пришёл", ("заказ",))
        assert [(part.text, part.hit) for part in parts] == [
            ("Хочу ", False),
            ("Заказать", True),
            (", а ", False),
            ("заказ", True),
            (" не пришёл", False),
        ]

    def test_a_long_text_is_cut_around_the_first_hit(self) -> None:
        text = " ".join(f"слово{n}" for n in range(100)) + " Счёт " + "конец " * 50
        parts = snippet_of(text, ("счет",), width=10)
        assert parts[0].text == "…" and parts[-1].text == "…"
        assert [part.text for part in parts if part.hit] == ["Счёт"]
        assert len("".join(part.text for part in parts).split()) <= 12


class TestSearch:
    async def test_russian_and_english_words_by_their_stem(self, db: Database) -> None:
        channel = await create_channel(db)
        order = await ingest_message(db, channel, text="Хочу сделать заказ на доставку")
        invoice = await ingest_message(db, channel, text="Please send the invoice")
        await ingest_message(db, channel, text="Спасибо, всё получил")

        assert await found(db, "заказы") == [order.conversation_id]
        assert await found(db, "ЗАКАЗОВ доставки") == [order.conversation_id]
        assert await found(db, "invoices") == [invoice.conversation_id]
        assert await found(db, "заказы invoices") == []

    async def test_the_snippet_marks_the_matched_word(self, db: Database) -> None:
        channel = await create_channel(db)
        text = "Добрый день! " + "Пишу по поводу счёта. " * 3 + "Когда придёт возврат денег?"
        result = await ingest_message(db, channel, text=text)

        hit = await first_hit(db, "возврат")

        assert hit.message_id == result.message_id
        assert [part.text.lower() for part in hit.snippet if part.hit] == ["возврат"]
        assert "Когда придёт" in "".join(part.text for part in hit.snippet)

    async def test_subject_contact_name_and_company(self, db: Database) -> None:
        channel = await create_channel(db)
        by_subject = await ingest_message(
            db, channel, text="см. вложение", subject="Счёт на оплату №15", email="b@x.ru"
        )
        by_name = await ingest_message(db, channel, text="добрый день", name="Иван Петров")

        assert await found(db, "счета оплаты") == [by_subject.conversation_id]
        assert await found(db, "петро") == [by_name.conversation_id]
        assert await found(db, "ИВАН петров") == [by_name.conversation_id]

    async def test_identities_by_any_part(self, db: Database) -> None:
        channel = await create_channel(db)
        mail = await ingest_message(db, channel, text="вопрос", email="anna.k@romashka.ru")
        phone = await ingest_message(db, channel, text="звонок", phone="+79123456789")

        assert await found(db, "anna.k@romashka.ru") == [mail.conversation_id]
        assert await found(db, "romashka") == [mail.conversation_id]
        assert await found(db, "8 (912) 345-67-89") == [phone.conversation_id]
        assert await found(db, "912 345 67") == [phone.conversation_id]

    async def test_request_number(self, db: Database) -> None:
        channel = await create_channel(db)
        result = await ingest_message(db, channel, text="нужна консультация")
        assert result.lead_id is not None

        assert result.conversation_id in await found(db, str(result.lead_id))

    async def test_query_syntax_is_only_text(self, db: Database) -> None:
        channel = await create_channel(db)
        await ingest_message(db, channel, text="NEAR OR AND заказ")
        for query in ['"заказ', "заказ*", "NEAR(заказ OR)", "-заказ", "заказ:^", "' OR 1=1 --"]:
            await found(db, query)  # no error from the backend's query syntax
        assert len(await found(db, '"заказ OR')) == 1

    async def test_an_edited_or_deleted_message_is_searched_as_it_is_now(
        self, db: Database
    ) -> None:
        channel = await create_channel(db)
        result = await ingest_message(db, channel, text="первоначальный текст")
        async with db.transaction() as session:
            await session.execute(
                update(Message)
                .where(Message.id == result.message_id)
                .values(text="исправленный текст")
            )
        assert await found(db, "первоначальный") == []
        assert await found(db, "исправленный") == [result.conversation_id]

        async with db.transaction() as session:
            await session.execute(delete(Message).where(Message.id == result.message_id))
        assert await found(db, "исправленный") == []

    async def test_every_match_is_reachable_page_by_page(self, db: Database) -> None:
        channel = await create_channel(db)
        ids = [
            (
                await ingest_message(db, channel, text=f"Заявка на доставку номер {n}")
            ).conversation_id
            for n in range(130)
        ]

        assert await found(db, "доставка") == sorted(ids, reverse=True)

    async def test_the_latest_match_comes_first_and_once(self, db: Database) -> None:
        channel = await create_channel(db)
        ids = [
            (
                await ingest_message(
                    db, channel, email=f"c{n}@x.ru", thread_key=f"t{n}", text=f"возврат {n}"
                )
            ).conversation_id
            for n in range(7)
        ]
        # The oldest conversation gets a new matching message, another an unrelated one.
        await ingest_message(db, channel, email="c0@x.ru", thread_key="t0", text="Где возврат?")
        await ingest_message(db, channel, email="c3@x.ru", thread_key="t3", text="спасибо")
        by_name = await ingest_message(db, channel, name="Возвратов Иван", text="добрый день")

        for limit in (1, 2, 3, 50):
            assert await found(db, "возврат", limit=limit) == [
                by_name.conversation_id,
                ids[0],
                *reversed(ids[1:]),
            ], limit

    async def test_many_and_few_matches_give_the_same_pages(
        self, db: Database, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        channel = await create_channel(db)
        for n in range(9):
            await ingest_message(
                db, channel, email=f"c{n % 4}@x.ru", thread_key=f"t{n % 4}", text=f"счёт {n}"
            )
        as_few = await found(db, "счета", limit=2)
        # Past this many matches a word is read newest first (PostgreSQL's other plan).
        monkeypatch.setattr(search_repository, "RARE_MATCHES", 1)
        assert await found(db, "счета", limit=2) == as_few
        assert len(as_few) == 4

    async def test_every_plan_of_a_common_word_gives_the_same_pages(
        self, db: Database, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        channel = await create_channel(db)
        for n in range(90):
            await ingest_message(
                db, channel, email=f"c{n % 30}@x.ru", thread_key=f"t{n % 30}", text=f"счёт {n}"
            )
            await ingest_message(db, channel, email=f"o{n}@x.ru", text=f"другое {n}")
        # A page of 10 reads 64 matches at once: all in the newest messages (PostgreSQL).
        newest_first = await found(db, "счета", limit=10)
        assert len(newest_first) == 30
        # The newest messages hold too few: the matches are read unordered, then newest first.
        monkeypatch.setattr(search_repository, "NEWEST_WINDOW", 20)
        assert await found(db, "счета", limit=10) == newest_first
        monkeypatch.setattr(search_repository, "RARE_MATCHES", 1)
        assert await found(db, "счета", limit=10) == newest_first
        # A rare word in a newer message of one of them, which moves it up.
        claim = await ingest_message(
            db, channel, email="c5@x.ru", thread_key="t5", text="Рекламация по счёту"
        )
        moved = [claim.conversation_id, *(i for i in newest_first if i != claim.conversation_id)]
        # With the statistics of ANALYZE PostgreSQL knows the word for a common one and
        # walks the newest messages first; a word it does not list is read unordered first.
        # (The smallest statistics target, so that a word seen once is not listed, as in a
        # large inbox: in a small table ANALYZE lists every word.)
        async with db.transaction() as session:
            if db.engine.dialect.name == "postgresql":
                await session.execute(
                    text("ALTER TABLE messages ALTER COLUMN search_vector SET STATISTICS 1")
                )
            await session.execute(text("ANALYZE"))
        if db.engine.dialect.name == "postgresql":
            async with db.read() as session:
                repo = search_repository.SearchRepository(session)
                assert not await repo._has_uncommon_word(terms_of("счета"))
                assert await repo._has_uncommon_word(terms_of("рекламации"))
                assert await repo._has_uncommon_word(terms_of("счета рекламации"))
        for window, rare in ((20_000, 2000), (20, 2000), (20, 1), (20_000, 0)):
            monkeypatch.setattr(search_repository, "NEWEST_WINDOW", window)
            monkeypatch.setattr(search_repository, "RARE_MATCHES", rare)
            plan = (window, rare)
            assert await found(db, "счета", limit=10) == moved, plan
            assert await found(db, "рекламации", limit=10) == [claim.conversation_id], plan
            assert await found(db, "счёт рекламации") == [claim.conversation_id], plan

    async def test_many_name_matches_give_the_same_pages(
        self, db: Database, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        channel = await create_channel(db)
        by_name = [
            (
                await ingest_message(
                    db,
                    channel,
                    name=f"Anna Kowalski {n}",
                    email=f"s{n}@x.ru",
                    thread_key=f"s{n}",
                    text=f"вопрос {n}",
                )
            ).conversation_id
            for n in range(6)
        ]
        by_text = [
            (
                await ingest_message(db, channel, email=f"t{n}@x.ru", text=f"Kowalski {n}")
            ).conversation_id
            for n in range(3)
        ]
        # A conversation matched by its contact gets a newer message and moves up.
        await ingest_message(db, channel, email="s1@x.ru", thread_key="s1", text="ещё вопрос")
        # One matched by its contact and by a message stands by its latest message.
        await ingest_message(db, channel, email="s4@x.ru", thread_key="s4", text="Kowalski again")
        async with db.transaction() as session:
            conversation = await session.get(Conversation, by_name[2])
            assert conversation is not None
            bare = Conversation(
                channel_id=conversation.channel_id,
                contact_id=conversation.contact_id,
                thread_key="no-messages",
                status="open",
            )
            session.add(bare)
            await session.flush()
            bare_id = bare.id
        as_few = {limit: await found(db, "kowalski", limit=limit) for limit in (1, 2, 3, 50)}
        # Past this many, the conversations matched by a name are ranked by reading their
        # messages newest first (the other plan), with the database telling which candidates
        # they are.
        monkeypatch.setattr(search_module, "MANY_OTHERS", 1)
        for limit, expected in as_few.items():
            assert await found(db, "kowalski", limit=limit) == expected, limit
        assert as_few[50] == [
            by_name[4],
            by_name[1],
            *reversed(by_text),
            *reversed(by_name[5:]),
            by_name[3],
            by_name[2],
            by_name[0],
            bare_id,
        ]

    async def test_a_name_matching_many_contacts_is_paged_to_the_end(
        self, db: Database, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        channel = await create_channel(db)
        manager = await create_manager(db, name="Анна")
        other = await create_manager(db, name="Борис")
        named: list[int] = []
        for n in range(23):
            result = await ingest_message(
                db,
                channel,
                name=f"Ирина Kowalczyk {n}",
                email=f"k{n}@x.ru",
                thread_key=f"k{n}",
                text=f"вопрос {n}",
            )
            named.append(result.conversation_id)
            # Conversations that match nothing between them, newer than some matches.
            await ingest_message(db, channel, name="Олег Петров", email=f"o{n}@x.ru", text="нет")
        # Older conversations get newer messages (and so move up), two of them twice.
        for n in (3, 11, 3, 17, 11):
            await ingest_message(
                db, channel, email=f"k{n}@x.ru", thread_key=f"k{n}", text=f"ещё вопрос {n}"
            )
        async with db.transaction() as session:
            # Three conversations of matching contacts without any message (they come last),
            # and five assigned to someone else (a manager does not see those).
            bare = []
            for n in (2, 9, 20):
                conversation = await session.get(Conversation, named[n])
                assert conversation is not None
                extra = Conversation(
                    channel_id=conversation.channel_id,
                    contact_id=conversation.contact_id,
                    thread_key=f"bare-{n}",
                    status="open",
                )
                session.add(extra)
                await session.flush()
                bare.append(extra.id)
            hidden = [named[n] for n in (0, 3, 8, 15, 22)]
            await session.execute(
                update(Conversation).where(Conversation.id.in_(hidden)).values(assignee_id=other.id)
            )
            rows = await session.execute(
                select(Message.conversation_id, func.max(Message.id))
                .where(Message.conversation_id.in_(named))
                .group_by(Message.conversation_id)
            )
            latest = {row[0]: row[1] for row in rows}
        expected = [
            *sorted(named, key=lambda conversation_id: latest[conversation_id], reverse=True),
            *sorted(bare, reverse=True),
        ]
        as_manager = [i for i in expected if i not in hidden]
        # Listed by id and ranked at once, then (many) walking the newest messages, then
        # counted as many by their contacts without being listed.
        for many_others, many_contacts in ((2000, 1000), (1, 1000), (2000, 1)):
            monkeypatch.setattr(search_module, "MANY_OTHERS", many_others)
            monkeypatch.setattr(search_module, "MANY_CONTACTS", many_contacts)
            for limit in (1, 4, 7, 50):
                plan = (many_others, many_contacts, limit)
                assert await found(db, "kowalczyk", limit=limit) == expected, plan
                seen = await found(db, "KOWALCZ", Viewer(manager_id=manager.id), limit=limit)
                assert seen == as_manager, plan

    async def test_every_other_source_is_found_by_either_plan(
        self, db: Database, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        channel = await create_channel(db)
        mail = await ingest_message(db, channel, text="вопрос", email="anna.k@romashka.ru")
        phone = await ingest_message(db, channel, text="звонок", phone="+79123456789")
        subject = await ingest_message(
            db, channel, text="см. вложение", subject="Счёт на оплату", email="b@x.ru"
        )
        named = await ingest_message(db, channel, text="добрый день", name="Иван Петров")
        assert named.lead_id is not None
        expected = {
            "anna.k@romashka.ru": [mail.conversation_id],
            "romashka": [mail.conversation_id],
            "8 (912) 345-67-89": [phone.conversation_id],
            "счета оплаты": [subject.conversation_id],
            "ИВАН петров": [named.conversation_id],
            str(named.lead_id): [named.conversation_id],
        }
        # Listed by id (few), then found walking the newest messages (many).
        for many_others in (2000, 0):
            monkeypatch.setattr(search_module, "MANY_OTHERS", many_others)
            for query, ids in expected.items():
                assert await found(db, query) == ids, (many_others, query)

    async def test_a_cursor_from_elsewhere_is_refused(self, db: Database) -> None:
        async with db.read() as session:
            for cursor in ["bGVhZDox", "!!", "c2VhcmNoOjE6eA"]:
                with pytest.raises(InvalidInput) as caught:
                    await search(session, EVERYONE, "заказ", cursor)
                assert caught.value.code == "invalid_cursor"


class TestVisibility:
    async def test_a_manager_sees_their_queues_the_unassigned_and_their_own(
        self, db: Database
    ) -> None:
        channel = await create_channel(db)
        anna = await create_manager(db, name="Анна")
        boris = await create_manager(db, name="Борис")
        own, others, in_queue, unassigned = [
            (await ingest_message(db, channel, text=f"жалоба {n}")).conversation_id
            for n in range(4)
        ]
        async with db.transaction() as session:
            queue = Queue(key="support", name="Поддержка")
            session.add(queue)
            await session.flush()
            session.add(QueueMember(queue_id=queue.id, manager_id=anna.id))
            for conversation_id, assignee, queue_id in [
                (own, anna.id, None),
                (others, boris.id, None),
                (in_queue, boris.id, queue.id),
            ]:
                await session.execute(
                    update(Conversation)
                    .where(Conversation.id == conversation_id)
                    .values(assignee_id=assignee, queue_id=queue_id)
                )

        seen_by_anna = await found(db, "жалоба", Viewer(manager_id=anna.id))
        seen_by_boris = await found(db, "жалоба", Viewer(manager_id=boris.id))

        assert sorted(seen_by_anna) == sorted([own, in_queue, unassigned])
        assert sorted(seen_by_boris) == sorted([others, in_queue, unassigned])
        assert len(await found(db, "жалоба")) == 4
