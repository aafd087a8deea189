"""The calls desk service: a fixed number of queries whatever the number of rows, and
callers shown as people write numbers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from sqlalchemy import event, select

from intake.calls.desk import open_callbacks, recent_calls, shown_number
from intake.visibility import Viewer
from storage.db import Database
from storage.errors import InvalidInput
from storage.models import Call, CallState, Task, TaskKind, TaskStatus
from storage.types import utcnow
from tests.factories import create_channel, create_manager, ingest_message


@contextmanager
def counted(db: Database) -> Iterator[list[str]]:
    """The SELECT statements run on the database's read engine while the block runs."""
    statements: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    engine = db.read_engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def missed_calls(db: Database, count: int, start: int) -> None:
    """`count` missed calls, each with its contact, conversation and open callback."""
    channel = await create_channel(db)
    now = utcnow()
    for n in range(start, start + count):
        number = f"+7912345{n:04d}"
        taken = await ingest_message(db, channel, email=f"caller{n}@example.ru")
        async with db.transaction() as session:
            call = Call(
                channel_id=channel.id,
                provider_call_id=f"desk-{n}",
                direction="inbound",
                state=CallState.MISSED,
                from_number=number,
                to_number="+74951234567",
                client_number=number,
                contact_id=taken.contact_id,
                conversation_id=taken.conversation_id,
                started_at=now - timedelta(minutes=n),
                ended_at=now - timedelta(minutes=n) + timedelta(seconds=20),
                wait_seconds=20,
                forwarded=False,
                details={},
            )
            session.add(call)
            await session.flush()
            session.add(
                Task(
                    kind=TaskKind.CALLBACK,
                    status=TaskStatus.OPEN,
                    title="",
                    phone=number,
                    count=1,
                    due_at=now + timedelta(minutes=30 - n),
                    note="",
                    call_id=call.id,
                    contact_id=taken.contact_id,
                    conversation_id=taken.conversation_id,
                )
            )


async def statements_of_a_desk(db: Database, viewer: Viewer) -> tuple[int, int, int]:
    """(queries, callbacks, calls) of reading the page's two lists."""
    with counted(db) as statements:
        async with db.read() as session:
            callbacks = await open_callbacks(session, viewer, utcnow())
            calls = await recent_calls(session, viewer)
    return len(statements), len(callbacks.rows), len(calls.items)


async def test_the_lists_take_a_fixed_number_of_queries(db: Database) -> None:
    manager = await create_manager(db)
    viewers = (Viewer(manager.id, False), Viewer(None, True))
    await missed_calls(db, 2, 0)
    few = [await statements_of_a_desk(db, viewer) for viewer in viewers]
    await missed_calls(db, 20, 2)
    many = [await statements_of_a_desk(db, viewer) for viewer in viewers]

    assert [rows for _, *rows in few] == [[2, 2], [2, 2]]
    assert [rows for _, *rows in many] == [[22, 22], [22, 22]]
    assert [queries for queries, *_ in many] == [queries for queries, *_ in few]
    assert max(queries for queries, *_ in many) <= 7  # each list: its rows, callers, links


def test_numbers_are_shown_as_people_write_them() -> None:
    assert shown_number("+79123456789") == "+7 912 345-67-89"
    assert shown_number("+442079460958") == "+44 20 7946 0958"
    assert shown_number("anonymous") == "anonymous"
    assert shown_number(None) == ""


async def test_callbacks_come_in_keyset_pages_that_neither_repeat_nor_skip(db: Database) -> None:
    manager = await create_manager(db)
    await missed_calls(db, 7, 0)
    viewer = Viewer(manager.id, False)
    async with db.transaction() as session:
        tasks = list((await session.scalars(select(Task).order_by(Task.id))).all())
        for task in tasks[2:5]:  # three due at the very same moment: the id decides
            task.due_at = tasks[2].due_at
    async with db.read() as session:
        whole = await open_callbacks(session, viewer, utcnow())
        assert whole.total == 7 and whole.next_cursor is None
        order = [row.task.id for row in whole.rows]
        walked: list[int] = []
        cursor = None
        while True:
            page = await open_callbacks(session, viewer, utcnow(), cursor=cursor, limit=2)
            assert page.total == 7 and len(page.rows) <= 2
            walked += [row.task.id for row in page.rows]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert walked == order
        with pytest.raises(InvalidInput):
            await open_callbacks(session, viewer, utcnow(), cursor="bm90LWEtY3Vyc29y")
