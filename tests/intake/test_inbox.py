"""The managers' workspace service: views, visibility, counts, keyset pages, live views."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from sqlalchemy import event, update

from intake.inbox import (
    ConversationState,
    Viewer,
    conversation_state,
    conversation_view,
    inbox_list,
    navigation,
    parse_view,
    views_of,
)
from storage.db import Database
from storage.errors import InvalidInput, NotFound
from storage.models import Conversation, ManagerRole, Queue, QueueMember
from storage.types import utcnow
from tests.factories import create_channel, create_manager, ingest_message


@contextmanager
def counted(db: Database) -> Iterator[list[str]]:
    """The SQL statements run on the database's read engine while the block runs."""
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


async def _conversations(db: Database, count: int) -> list[int]:
    channel = await create_channel(db)
    ids = []
    for n in range(count):
        result = await ingest_message(db, channel, text=f"Заявка {n}", email=f"c{n}@example.ru")
        ids.append(result.conversation_id)
    return ids


async def _arrange(db: Database, conversation_id: int, **values: object) -> None:
    async with db.transaction() as session:
        await session.execute(
            update(Conversation).where(Conversation.id == conversation_id).values(**values)
        )


class TestParseView:
    def test_every_view_has_a_slug(self) -> None:
        for slug in ("mine", "unassigned", "open", "queue-3", "channel-12", "status-pending"):
            assert parse_view(slug).slug == slug

    @pytest.mark.parametrize("slug", ["", "mine-1", "queue-", "queue-x", "status-lost", "x"])
    def test_an_unknown_view_is_not_found(self, slug: str) -> None:
        with pytest.raises(NotFound):
            parse_view(slug)


class TestViewsOf:
    def state(
        self, status: str = "open", assignee_id: int | None = None, queue_id: int | None = None
    ) -> ConversationState:
        return ConversationState(1, status, assignee_id, queue_id, 5)

    def test_an_unassigned_open_conversation(self) -> None:
        views = views_of(self.state(), Viewer(7, False), frozenset())
        assert set(views) == {"status-open", "open", "channel-5", "unassigned"}

    def test_assigned_to_the_viewer_in_a_queue(self) -> None:
        views = views_of(self.state(assignee_id=7, queue_id=2), Viewer(7, False), frozenset())
        assert set(views) == {"status-open", "open", "channel-5", "queue-2", "mine"}

    def test_another_managers_conversation_outside_the_viewers_queues_is_unseen(self) -> None:
        state = self.state(assignee_id=8, queue_id=2)
        assert views_of(state, Viewer(7, False), frozenset({3})) == []
        assert "queue-2" in views_of(state, Viewer(7, False), frozenset({2}))
        assert "open" in views_of(state, Viewer(9, True), frozenset())

    def test_a_closed_conversation_leaves_the_open_views(self) -> None:
        assert views_of(self.state(status="closed"), Viewer(7, False), frozenset()) == [
            "status-closed"
        ]


class TestVisibility:
    async def test_a_manager_sees_the_unassigned_their_own_and_their_queues(
        self, db: Database
    ) -> None:
        me = await create_manager(db)
        other = await create_manager(db)
        admin = await create_manager(db, role=ManagerRole.ADMIN)
        unassigned, mine, in_my_queue, elsewhere = await _conversations(db, 4)
        async with db.transaction() as session:
            mine_queue = Queue(key="sales", name="Продажи")
            other_queue = Queue(key="service", name="Сервис")
            session.add_all([mine_queue, other_queue])
            await session.flush()
            session.add(QueueMember(queue_id=mine_queue.id, manager_id=me.id))
            queues = (mine_queue.id, other_queue.id)
        await _arrange(db, mine, assignee_id=me.id)
        await _arrange(db, in_my_queue, assignee_id=other.id, queue_id=queues[0])
        await _arrange(db, elsewhere, assignee_id=other.id, queue_id=queues[1])

        async with db.read() as session:
            seen = await inbox_list(session, Viewer(me.id, False), parse_view("open"))
            everything = await inbox_list(session, Viewer(admin.id, True), parse_view("open"))
            own = await inbox_list(session, Viewer(me.id, False), parse_view("mine"))
            nav = await navigation(session, Viewer(me.id, False))
            with pytest.raises(NotFound):
                await conversation_view(session, Viewer(me.id, False), elsewhere)
            opened = await conversation_view(session, Viewer(me.id, False), in_my_queue)

        assert {r.conversation.id for r in seen.page.items} == {unassigned, mine, in_my_queue}
        assert {r.conversation.id for r in everything.page.items} == {
            unassigned,
            mine,
            in_my_queue,
            elsewhere,
        }
        assert [r.conversation.id for r in own.page.items] == [mine]
        assert (nav.counts.mine, nav.counts.unassigned, nav.counts.open) == (1, 1, 3)
        assert nav.counts.by_queue == {queues[0]: 1}
        assert nav.queues == [(queues[0], "Продажи")]
        assert [item.message.text for item in opened.timeline] == ["Заявка 2"]


class TestPages:
    async def test_pages_walk_every_row_once_by_last_activity(self, db: Database) -> None:
        ids = await _conversations(db, 7)
        base = utcnow() - timedelta(hours=1)
        # Activity in an order that is not the ids' order; two rows tie on the time.
        for minutes, conversation_id in zip([5, 1, 6, 3, 3, 0, 2], ids, strict=True):
            await _arrange(db, conversation_id, last_message_at=base + timedelta(minutes=minutes))
        viewer = Viewer(None, True)
        walked: list[int] = []
        cursor = None
        async with db.read() as session:
            while True:
                listing = await inbox_list(session, viewer, parse_view("open"), cursor, limit=3)
                walked += [row.conversation.id for row in listing.page.items]
                cursor = listing.page.next_cursor
                if cursor is None:
                    break
            with pytest.raises(InvalidInput):
                await inbox_list(session, viewer, parse_view("open"), "bm90IGEgY3Vyc29y")
        expected = [ids[2], ids[0], ids[4], ids[3], ids[6], ids[1], ids[5]]
        assert walked == expected

    async def test_a_page_costs_the_same_queries_whatever_its_size(self, db: Database) -> None:
        await _conversations(db, 12)
        viewer = Viewer(None, True)
        costs = {}
        for size in (2, 12):
            async with db.read() as session:
                with counted(db) as statements:
                    listing = await inbox_list(session, viewer, parse_view("open"), limit=size)
                    await navigation(session, viewer)
            assert len(listing.page.items) == size
            assert all(row.conversation.id in listing.last_messages for row in listing.page.items)
            costs[size] = len(statements)
        assert costs[2] == costs[12], costs
        # The page and its last messages; four counts; the queues and the channels.
        assert costs[12] == 8, costs


class TestConversationState:
    async def test_the_state_the_stream_sorts_by(self, db: Database) -> None:
        manager = await create_manager(db)
        [conversation_id] = await _conversations(db, 1)
        await _arrange(db, conversation_id, assignee_id=manager.id)
        async with db.read() as session:
            state = await conversation_state(session, conversation_id)
            missing = await conversation_state(session, 10**9)
        assert state is not None and state.assignee_id == manager.id
        assert "mine" in views_of(state, Viewer(manager.id, False), frozenset())
        assert missing is None
