"""Conversation states: snooze and its wake-up, waiting for the client, reopen; the SLA and
claims views, the SLA sort, and bulk actions (both databases)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event, select, update

from intake.inbox import (
    ConversationState,
    Viewer,
    conversation_state,
    inbox_list,
    navigation,
    parse_view,
    views_of,
)
from intake.states import client_wrote, local_time, mark_pending, reopen, snooze, snooze_time, wake
from routing.admin.bulk import bulk_act
from routing.engine import RoutingEngine
from storage.db import Database
from storage.errors import Conflict, InvalidInput
from storage.events import SnoozeDue
from storage.models import (
    Claim,
    Conversation,
    ManagerRole,
    OutboxEvent,
    Queue,
    QueueMember,
)
from storage.types import utcnow
from tests.factories import create_channel, create_manager, ingest_message

MOSCOW = ZoneInfo("Europe/Moscow")


async def _conversations(db: Database, count: int) -> list[int]:
    channel = await create_channel(db)
    ids = []
    for n in range(count):
        result = await ingest_message(db, channel, text=f"Заявка {n}", email=f"s{n}@example.ru")
        ids.append(result.conversation_id)
    return ids


async def _arrange(db: Database, conversation_id: int, **values: Any) -> None:
    async with db.transaction() as session:
        await session.execute(
            update(Conversation).where(Conversation.id == conversation_id).values(**values)
        )


async def _stored(db: Database, conversation_id: int) -> Conversation:
    async with db.read() as session:
        found = await session.get(Conversation, conversation_id)
        assert found is not None
        return found


async def _events(db: Database, topic: str) -> list[OutboxEvent]:
    async with db.read() as session:
        rows = await session.scalars(
            select(OutboxEvent).where(OutboxEvent.topic == topic).order_by(OutboxEvent.id)
        )
        return list(rows)


async def _ids(db: Database, slug: str, viewer: Viewer | None = None) -> list[int]:
    async with db.read() as session:
        listing = await inbox_list(session, viewer or Viewer(None, True), parse_view(slug))
    return [row.conversation.id for row in listing.page.items]


class TestSnoozeTime:
    # Monday 7 December 2026, 22:30 in Moscow (19:30 UTC).
    NOW = datetime(2026, 12, 7, 19, 30, tzinfo=UTC)

    def test_an_hour(self) -> None:
        assert snooze_time("hour", self.NOW, MOSCOW) == self.NOW + timedelta(hours=1)

    def test_tomorrow_at_nine_in_the_managers_zone(self) -> None:
        assert snooze_time("tomorrow", self.NOW, MOSCOW) == datetime(2026, 12, 8, 6, tzinfo=UTC)
        # Late in the UTC evening it is already the next day in Moscow.
        late = datetime(2026, 12, 7, 22, 30, tzinfo=UTC)
        assert snooze_time("tomorrow", late, MOSCOW) == datetime(2026, 12, 9, 6, tzinfo=UTC)

    def test_next_monday_is_a_week_on_from_a_monday(self) -> None:
        assert snooze_time("monday", self.NOW, MOSCOW) == datetime(2026, 12, 14, 6, tzinfo=UTC)
        thursday = datetime(2026, 12, 10, 9, tzinfo=UTC)
        assert snooze_time("monday", thursday, MOSCOW) == datetime(2026, 12, 14, 6, tzinfo=UTC)

    def test_a_time_from_a_form_is_in_the_managers_zone(self) -> None:
        assert local_time("2026-12-08T09:30", MOSCOW) == datetime(2026, 12, 8, 6, 30, tzinfo=UTC)
        assert local_time("2026-12-08T09:30+00:00", MOSCOW) == datetime(
            2026, 12, 8, 9, 30, tzinfo=UTC
        )
        with pytest.raises(InvalidInput):
            local_time("завтра", MOSCOW)
        with pytest.raises(InvalidInput):
            snooze_time("later", self.NOW, MOSCOW)


class TestSnooze:
    async def test_a_snoozed_conversation_leaves_the_open_views_and_wakes_on_top(
        self, db: Database
    ) -> None:
        manager = await create_manager(db)
        first, second = await _conversations(db, 2)
        await _arrange(db, first, assignee_id=manager.id)
        now = utcnow()
        until = now + timedelta(hours=2)
        async with db.transaction() as session:
            await snooze(session, first, until=until, manager_id=manager.id, now=now)
        assert await _ids(db, "open") == [second]
        assert await _ids(db, "mine", Viewer(manager.id)) == []
        assert await _ids(db, "status-snoozed") == [first]
        async with db.read() as session:
            nav = await navigation(session, Viewer(None, True))
        assert nav.counts.open == 1 and nav.counts.by_status["snoozed"] == 1
        [timer] = await _events(db, "conversation.snooze_due")
        assert timer.due_at == until and timer.payload["until"] == until.isoformat()
        [told] = await _events(db, "conversation.snoozed")
        assert told.payload["manager_id"] == manager.id

        later = now + timedelta(hours=2, seconds=1)
        due = SnoozeDue(conversation_id=first, until=until.isoformat())
        async with db.transaction() as session:
            assert await wake(session, due, later)
        async with db.transaction() as session:
            assert not await wake(session, due, later)  # a retried timer changes nothing
        stored = await _stored(db, first)
        assert (stored.status, stored.snoozed_until) == ("open", None)
        assert await _ids(db, "open") == [first, second]  # on top
        assert await _ids(db, "mine", Viewer(manager.id)) == [first]
        [back] = await _events(db, "conversation.reopened")
        assert back.payload == {
            "conversation_id": first,
            "from": "snoozed",
            "reason": "snooze_ended",
            "manager_id": manager.id,
            "reopened_by": None,
        }

    async def test_snoozing_again_outdates_the_first_timer(self, db: Database) -> None:
        [conversation] = await _conversations(db, 1)
        now = utcnow()
        async with db.transaction() as session:
            await snooze(
                session, conversation, until=now + timedelta(hours=1), manager_id=None, now=now
            )
            await snooze(
                session, conversation, until=now + timedelta(hours=3), manager_id=None, now=now
            )
        first, second = await _events(db, "conversation.snooze_due")
        async with db.transaction() as session:
            event = SnoozeDue.from_payload(first.payload)
            assert not await wake(session, event, now + timedelta(hours=1))
        assert (await _stored(db, conversation)).status == "snoozed"
        async with db.transaction() as session:
            assert await wake(session, SnoozeDue.from_payload(second.payload), now)
        assert (await _stored(db, conversation)).status == "open"

    async def test_the_client_writing_wakes_it_and_ends_a_wait(self, db: Database) -> None:
        snoozed, waiting = await _conversations(db, 2)
        now = utcnow()
        async with db.transaction() as session:
            await snooze(session, snoozed, until=now + timedelta(days=1), manager_id=None, now=now)
            await mark_pending(session, waiting, manager_id=None)
        assert await _ids(db, "status-pending") == [waiting]
        assert waiting in await _ids(db, "open")  # waiting stays among the open ones
        async with db.transaction() as session:
            assert await client_wrote(session, snoozed, now)
            assert await client_wrote(session, waiting, now)
            assert not await client_wrote(session, waiting, now)
        assert (await _stored(db, snoozed)).status == "open"
        assert (await _stored(db, waiting)).status == "open"
        reasons = [e.payload["reason"] for e in await _events(db, "conversation.reopened")]
        assert reasons == ["client_wrote", "client_wrote"]

    @pytest.mark.parametrize(
        ("offset", "code"),
        [(timedelta(minutes=-1), "snooze_in_past"), (timedelta(days=400), "snooze_too_long")],
    )
    async def test_a_snooze_ends_in_the_coming_year(
        self, db: Database, offset: timedelta, code: str
    ) -> None:
        [conversation] = await _conversations(db, 1)
        now = utcnow()
        async with db.transaction() as session:
            with pytest.raises(InvalidInput) as refused:
                await snooze(session, conversation, until=now + offset, manager_id=None, now=now)
        assert refused.value.code == code

    async def test_a_closed_conversation_is_not_snoozed(self, db: Database) -> None:
        [conversation] = await _conversations(db, 1)
        await _arrange(db, conversation, status="closed")
        now = utcnow()
        async with db.transaction() as session:
            with pytest.raises(Conflict):
                await snooze(
                    session, conversation, until=now + timedelta(hours=1), manager_id=None, now=now
                )


class TestReopen:
    async def test_a_closed_conversation_opens_again(self, db: Database) -> None:
        manager = await create_manager(db)
        [conversation] = await _conversations(db, 1)
        await _arrange(db, conversation, status="closed", closed_at=utcnow())
        async with db.transaction() as session:
            await reopen(session, conversation, manager_id=manager.id, now=utcnow())
        stored = await _stored(db, conversation)
        assert (stored.status, stored.closed_at) == ("open", None)
        [event] = await _events(db, "conversation.reopened")
        assert event.payload["from"] == "closed" and event.payload["reopened_by"] == manager.id

    async def test_not_when_its_thread_opened_another_conversation(self, db: Database) -> None:
        channel = await create_channel(db)
        first = await ingest_message(db, channel, email="t@example.ru", thread_key="thread-1")
        await _arrange(db, first.conversation_id, status="closed")
        again = await ingest_message(db, channel, email="t@example.ru", thread_key="thread-1")
        assert again.conversation_id != first.conversation_id
        async with db.transaction() as session:
            with pytest.raises(Conflict) as refused:
                await reopen(session, first.conversation_id, manager_id=None, now=utcnow())
        assert refused.value.code == "thread_reopened"


class TestSlaAndClaimViews:
    async def test_due_soon_breached_and_the_sort_by_sla(self, db: Database) -> None:
        late, soon, later, none, waiting = await _conversations(db, 5)
        now = utcnow()
        await _arrange(db, late, first_response_due_at=now - timedelta(minutes=5))
        await _arrange(db, soon, first_response_due_at=now + timedelta(minutes=20))
        # Answered once; the client's next message waits for an answer.
        await _arrange(
            db,
            later,
            first_response_at=now - timedelta(hours=1),
            first_response_due_at=now - timedelta(hours=2),
            next_response_due_at=now + timedelta(hours=3),
        )
        await _arrange(
            db, waiting, status="pending", first_response_due_at=now - timedelta(minutes=1)
        )
        assert await _ids(db, "sla-breached") == [late]
        assert await _ids(db, "sla-soon") == [soon]
        async with db.read() as session:
            counts = (await navigation(session, Viewer(None, True))).counts
            walked: list[int] = []
            cursor = None
            while True:
                listing = await inbox_list(
                    session, Viewer(None, True), parse_view("open"), cursor, limit=2, sort="sla"
                )
                walked += [row.conversation.id for row in listing.page.items]
                cursor = listing.page.next_cursor
                if cursor is None:
                    break
            with pytest.raises(InvalidInput):
                await inbox_list(session, Viewer(None, True), parse_view("open"), sort="lost")
        assert (counts.sla_breached, counts.sla_soon) == (1, 1)
        # Nearest target first (a waiting one's too); those without one last, by id.
        assert walked == [late, waiting, soon, later, none]

    async def test_a_page_by_sla_costs_the_same_queries_whatever_its_size(
        self, db: Database
    ) -> None:
        ids = await _conversations(db, 12)
        now = utcnow()
        for n, conversation_id in enumerate(ids[:6]):
            await _arrange(db, conversation_id, first_response_due_at=now + timedelta(minutes=n))
        statements: list[str] = []

        def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
            statements.append(statement)

        engine = db.read_engine.sync_engine
        costs = {}
        event.listen(engine, "before_cursor_execute", record)
        try:
            for size in (2, 12):
                statements.clear()
                async with db.read() as session:
                    listing = await inbox_list(
                        session, Viewer(None, True), parse_view("open"), limit=size, sort="sla"
                    )
                assert len(listing.page.items) == size
                costs[size] = len(
                    [s for s in statements if s.lstrip().upper().startswith("SELECT")]
                )
        finally:
            event.remove(engine, "before_cursor_execute", record)
        assert costs == {2: 2, 12: 2}  # the page and its rows' last messages

    async def test_claims_view_and_live_views(self, db: Database) -> None:
        claimed, plain = await _conversations(db, 2)
        async with db.transaction() as session:
            conversation = await session.get(Conversation, claimed)
            assert conversation is not None
            session.add(
                Claim(
                    number="CLM-T-1",
                    year=2026,
                    sequence=1,
                    channel_id=conversation.channel_id,
                    contact_id=conversation.contact_id,
                    conversation_id=claimed,
                    reason="quality",
                    description="Сломано",
                )
            )
        await _arrange(db, plain, first_response_due_at=utcnow() - timedelta(minutes=1))
        assert await _ids(db, "claims") == [claimed]
        async with db.read() as session:
            assert (await navigation(session, Viewer(None, True))).counts.claims == 1
            claimed_state = await conversation_state(session, claimed)
            late_state = await conversation_state(session, plain)
        assert claimed_state is not None and late_state is not None
        admin = Viewer(None, True)
        assert "claims" in views_of(claimed_state, admin, frozenset())
        assert "sla-breached" in views_of(late_state, admin, frozenset())
        assert "claims" not in views_of(late_state, admin, frozenset())

    def test_views_of_knows_snoozed_and_sla_soon(self) -> None:
        now = utcnow()
        snoozed = ConversationState(1, "snoozed", 7, None, 5, now - timedelta(hours=1))
        assert views_of(snoozed, Viewer(7), frozenset(), now) == ["status-snoozed"]
        soon = ConversationState(1, "open", 7, None, 5, now + timedelta(minutes=10))
        assert "sla-soon" in views_of(soon, Viewer(7), frozenset(), now)
        assert "sla-breached" in views_of(soon, Viewer(7), frozenset(), now + timedelta(hours=1))


class TestBulk:
    async def test_each_conversation_is_checked_and_the_refused_leave_the_rest_done(
        self, db: Database
    ) -> None:
        me = await create_manager(db)
        colleague = await create_manager(db)
        await create_manager(db, role=ManagerRole.ADMIN)
        mine, unassigned, closed, elsewhere = await _conversations(db, 4)
        async with db.transaction() as session:
            queue = Queue(key="elsewhere", name="Другая")
            session.add(queue)
            await session.flush()
            queue_id = queue.id
        await _arrange(db, mine, assignee_id=me.id)
        await _arrange(db, closed, status="closed")
        await _arrange(db, elsewhere, assignee_id=colleague.id, queue_id=queue_id)
        engine = RoutingEngine()
        now = utcnow()
        async with db.transaction() as session:
            closing = await bulk_act(
                session,
                engine,
                Viewer(me.id),
                [mine, unassigned, mine, elsewhere],
                "close",
                now=now,
            )
        assert closing.done == [mine, unassigned]
        assert closing.refused == [(elsewhere, "not_found")]
        assert (await _stored(db, elsewhere)).status == "open"

        async with db.transaction() as session:
            snoozing = await bulk_act(
                session,
                engine,
                Viewer(me.id),
                [mine, closed],
                "snooze",
                now=now,
                until=now + timedelta(hours=1),
            )
        assert snoozing.done == [] and snoozing.refused == [
            (mine, "conversation_closed"),
            (closed, "conversation_closed"),
        ]

    async def test_bulk_assign_checks_the_candidates(self, db: Database) -> None:
        me = await create_manager(db)
        member = await create_manager(db)
        first, second = await _conversations(db, 2)
        async with db.transaction() as session:
            queue = Queue(key="sales", name="Продажи")
            session.add(queue)
            await session.flush()
            session.add_all(
                [
                    QueueMember(queue_id=queue.id, manager_id=me.id),
                    QueueMember(queue_id=queue.id, manager_id=member.id),
                ]
            )
            queue_id = queue.id
        await _arrange(db, first, queue_id=queue_id)
        engine = RoutingEngine()
        async with db.transaction() as session:
            result = await bulk_act(
                session,
                engine,
                Viewer(me.id),
                [first, second],
                "assign",
                now=utcnow(),
                manager_id=member.id,
            )
        # The second has no queue: only an administrator may give it to anyone.
        assert result.done == [first] and result.refused == [(second, "not_a_candidate")]
        assert (await _stored(db, first)).assignee_id == member.id
        async with db.transaction() as session:
            with pytest.raises(InvalidInput):
                await bulk_act(session, engine, Viewer(me.id), [], "close", now=utcnow())
            with pytest.raises(InvalidInput):
                await bulk_act(session, engine, Viewer(me.id), [first], "assign", now=utcnow())
