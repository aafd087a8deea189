"""The claims board and a claim's card (intake.claims.board), the investigation plan's
steps ticked off, and who sees which claim."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from intake.claims.board import claim_card, claims_board
from intake.claims.service import add_step, change_status, complete_step, update_claim
from intake.visibility import Viewer
from storage.db import Database
from storage.errors import Conflict, NotFound
from storage.models import ChannelKind, Conversation, ManagerRole
from storage.types import utcnow
from tests.factories import create_channel, create_claim, create_manager


class TestPlan:
    async def test_a_step_is_ticked_off_once_with_who_and_when(self, db: Database) -> None:
        channel = await create_channel(db, kind=ChannelKind.EMAIL)
        olga = await create_manager(db)
        claim = await create_claim(db, channel)
        async with db.transaction() as session:
            step = await add_step(session, claim.id, "Запросить фото у склада", manager_id=olga.id)
        async with db.transaction() as session:
            done = await complete_step(session, claim.id, step.id, manager_id=olga.id)
            first = done.done_at
        async with db.transaction() as session:
            again = await complete_step(session, claim.id, step.id, manager_id=None)
        assert first is not None and again.done_at == first and again.done_by_id == olga.id

    async def test_a_status_entry_is_not_a_step(self, db: Database) -> None:
        channel = await create_channel(db, kind=ChannelKind.EMAIL)
        claim = await create_claim(db, channel)
        async with db.read() as session:
            [registered] = (await claim_card(session, Viewer(None, True), claim.id)).history
        with pytest.raises(NotFound):
            async with db.transaction() as session:
                await complete_step(session, claim.id, registered.id, manager_id=None)

    async def test_a_closed_claims_plan_is_final(self, db: Database) -> None:
        channel = await create_channel(db, kind=ChannelKind.EMAIL)
        claim = await create_claim(db, channel)
        async with db.transaction() as session:
            step = await add_step(session, claim.id, "Проверить оплату", manager_id=None)
            await change_status(session, claim.id, "rejected", manager_id=None, resolution="Нет")
        with pytest.raises(Conflict) as refused:
            async with db.transaction() as session:
                await complete_step(session, claim.id, step.id, manager_id=None)
        assert refused.value.code == "claim_closed"


class TestBoard:
    async def test_counts_pages_owners_and_overdue(self, db: Database) -> None:
        channel = await create_channel(db, kind=ChannelKind.EMAIL)
        admin = await create_manager(db, role=ManagerRole.ADMIN, name="Ирина")
        late = await create_claim(db, channel, name="Анна", now=utcnow() - timedelta(days=11))
        fresh = await create_claim(db, channel, email="fresh@example.ru")
        done = await create_claim(db, channel, now=utcnow() - timedelta(days=30))
        async with db.transaction() as session:
            await update_claim(session, fresh.id, manager_id=admin.id)
            await change_status(session, done.id, "rejected", manager_id=None, resolution="Нет")
        viewer = Viewer(admin.id, True)
        async with db.read() as session:
            board = await claims_board(session, viewer)
            mine = await claims_board(session, viewer, mine=True)
            first = await claims_board(session, viewer, statuses=(), limit=2)
            rest = await claims_board(session, viewer, statuses=(), cursor=first.next_cursor)
        assert [(r.claim.id, r.client, r.owner, r.overdue) for r in board.rows] == [
            (fresh.id, "fresh@example.ru", "Ирина", False),
            (late.id, "Анна", None, True),
        ]
        assert board.counts == {"registered": 2, "rejected": 1} and board.active == 2
        assert [r.claim.id for r in mine.rows] == [fresh.id] and mine.total == 1
        assert [r.claim.id for r in first.rows + rest.rows] == [done.id, fresh.id, late.id]
        assert rest.next_cursor is None and rest.rows[-1].overdue

    async def test_a_manager_sees_the_claims_of_conversations_they_see_and_their_own(
        self, db: Database
    ) -> None:
        channel = await create_channel(db, kind=ChannelKind.EMAIL)
        olga = await create_manager(db)
        ivan = await create_manager(db)
        unassigned = await create_claim(db, channel)
        ivans = await create_claim(db, channel)
        olgas_duty = await create_claim(db, channel)
        async with db.transaction() as session:
            await session.execute(
                update(Conversation)
                .where(Conversation.id.in_([ivans.conversation_id, olgas_duty.conversation_id]))
                .values(assignee_id=ivan.id)
            )
            await update_claim(session, olgas_duty.id, manager_id=olga.id)
        olga_sees = Viewer(olga.id)
        async with db.read() as session:
            board = await claims_board(session, olga_sees, statuses=())
            await claim_card(session, olga_sees, olgas_duty.number)
            with pytest.raises(NotFound):
                await claim_card(session, olga_sees, ivans.number)
            everything = await claims_board(session, Viewer(olga.id, True), statuses=())
        assert [r.claim.id for r in board.rows] == [olgas_duty.id, unassigned.id]
        assert board.counts == {"registered": 2}
        assert len(everything.rows) == 3

    async def test_a_card_offers_the_moves_its_status_allows(self, db: Database) -> None:
        channel = await create_channel(db, kind=ChannelKind.EMAIL)
        claim = await create_claim(db, channel)
        admin = Viewer(None, True)
        async with db.read() as session:
            card = await claim_card(session, admin, claim.number)
        assert card.next_statuses == ["in_review", "investigating", "rejected"]
        async with db.transaction() as session:
            await change_status(session, claim.id, "investigating", manager_id=None)
        async with db.read() as session:
            card = await claim_card(session, admin, claim.number)
        # Forward first, then back.
        assert card.next_statuses == ["resolved", "rejected", "in_review"]
        async with db.transaction() as session:
            await change_status(session, claim.id, "rejected", manager_id=None, resolution="Нет")
        async with db.read() as session:
            card = await claim_card(session, admin, claim.number)
        assert card.next_statuses == [] and not card.open and not card.overdue
