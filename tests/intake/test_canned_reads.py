"""Canned replies and unread markers on both backends."""

from __future__ import annotations

from datetime import timedelta

import pytest

from intake.canned import (
    Editor,
    change_canned,
    create_canned,
    delete_canned,
    list_canned,
    render_canned,
)
from intake.conversations import add_reply
from intake.reads import mark_read, unread_of
from storage.db import Database
from storage.errors import Conflict, Forbidden, InvalidInput, NotFound
from storage.models import ManagerRole
from storage.types import utcnow
from tests.factories import create_channel, create_manager, ingest_message


class TestCanned:
    async def test_shared_and_own_replies_with_their_variables(self, db: Database) -> None:
        admin = await create_manager(db, role=ManagerRole.ADMIN, name="Ирина")
        anna = await create_manager(db, name="Анна Смирнова")
        channel = await create_channel(db)
        result = await ingest_message(db, channel, name="Пётр Иванов", text="Где мой заказ?")
        async with db.transaction() as session:
            shared = await create_canned(
                session,
                Editor(admin.id, is_admin=True),
                shortcut="/hello",
                title="Приветствие",
                body="Здравствуйте, {client_name}! Заявка №{request_number}. {manager_name}",
                shared=True,
            )
            own = await create_canned(
                session,
                Editor(anna.id, is_admin=False),
                shortcut="help",
                title="Помощь с заказом",
                body="Сейчас проверю.",
                shared=False,
            )

        async with db.read() as session:
            texts = await render_canned(session, anna.id, shared.id, result.conversation_id)
            by_anna = [reply.shortcut for reply in await list_canned(session, anna.id)]
            by_admin = [reply.shortcut for reply in await list_canned(session, admin.id)]
            typed = [reply.id for reply in await list_canned(session, anna.id, "/he")]
            by_title = [reply.id for reply in await list_canned(session, anna.id, "заказ")]

        assert texts == (f"Здравствуйте, Пётр Иванов! Заявка №{result.lead_id}. Анна Смирнова")
        assert by_anna == ["hello", "help"]
        assert by_admin == ["hello"]
        assert typed == [shared.id, own.id]
        assert by_title == [own.id]

    @pytest.mark.parametrize(
        "body", ["{client}", "{client_name.__class__}", "{client_name!r}", "{0}", "{", "  "]
    )
    async def test_a_body_with_an_unknown_variable_is_refused(
        self, db: Database, body: str
    ) -> None:
        anna = await create_manager(db)
        async with db.transaction() as session:
            with pytest.raises(InvalidInput) as caught:
                await create_canned(
                    session,
                    Editor(anna.id, is_admin=False),
                    shortcut="x",
                    title="x",
                    body=body,
                    shared=False,
                )
        assert caught.value.code == "invalid_body"

    async def test_who_may_change_what(self, db: Database) -> None:
        admin = await create_manager(db, role=ManagerRole.ADMIN)
        anna = await create_manager(db)
        boris = await create_manager(db)
        as_anna = Editor(anna.id, is_admin=False)
        async with db.transaction() as session:
            with pytest.raises(Forbidden):
                await create_canned(
                    session, as_anna, shortcut="s", title="t", body="b", shared=True
                )
            shared = await create_canned(
                session, Editor(admin.id, True), shortcut="s", title="t", body="b", shared=True
            )
            own = await create_canned(
                session, as_anna, shortcut="s", title="t", body="b", shared=False
            )
            with pytest.raises(Conflict):
                await create_canned(
                    session, as_anna, shortcut="s", title="t2", body="b", shared=False
                )
            with pytest.raises(Forbidden):
                await change_canned(session, as_anna, shared.id, body="new")
            with pytest.raises(NotFound):
                await delete_canned(session, Editor(boris.id, False), own.id)
            changed = await change_canned(session, as_anna, own.id, body="Новый {client_name}")
            assert changed.body == "Новый {client_name}"
            await delete_canned(session, as_anna, own.id)
        async with db.read() as session:
            assert [r.id for r in await list_canned(session, anna.id)] == [shared.id]
            with pytest.raises(NotFound):
                await render_canned(session, boris.id, own.id, 1)


class TestReads:
    async def test_a_client_message_after_the_read_position_is_unread(self, db: Database) -> None:
        anna = await create_manager(db)
        boris = await create_manager(db)
        channel = await create_channel(db)
        first = await ingest_message(db, channel, email="a@x.ru", thread_key="t1")
        other = await ingest_message(db, channel, email="b@x.ru", thread_key="t2")
        ids = [first.conversation_id, other.conversation_id]
        now = utcnow()

        async with db.transaction() as session:
            await mark_read(session, anna.id, first.conversation_id, now)
        async with db.read() as session:
            assert await unread_of(session, anna.id, ids) == {other.conversation_id}
            assert await unread_of(session, boris.id, ids) == set(ids)

        # The manager's own reply does not make it unread; the client's next message does.
        async with db.transaction() as session:
            await add_reply(
                session, first.conversation_id, text="Ответ", manager_id=anna.id, now=now
            )
        async with db.read() as session:
            assert await unread_of(session, anna.id, ids) == {other.conversation_id}
        await ingest_message(db, channel, email="a@x.ru", thread_key="t1", text="Ещё вопрос")
        async with db.read() as session:
            assert await unread_of(session, anna.id, ids) == {
                first.conversation_id,
                other.conversation_id,
            }

    async def test_the_read_position_never_moves_back(self, db: Database) -> None:
        anna = await create_manager(db)
        channel = await create_channel(db)
        first = await ingest_message(db, channel, email="a@x.ru", thread_key="t")
        second = await ingest_message(db, channel, email="a@x.ru", thread_key="t")
        assert first.conversation_id == second.conversation_id
        now = utcnow()
        async with db.transaction() as session:
            await mark_read(session, anna.id, first.conversation_id, now)
        async with db.transaction() as session:
            await mark_read(
                session,
                anna.id,
                first.conversation_id,
                now + timedelta(seconds=1),
                message_id=first.message_id,
            )
        async with db.read() as session:
            assert await unread_of(session, anna.id, [first.conversation_id]) == set()
            with pytest.raises(InvalidInput):
                await mark_read(session, anna.id, first.conversation_id, now, message_id=10**9)
