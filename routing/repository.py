"""The queries routing needs. Row locks make assignment safe with many workers."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, literal, or_, select, union_all, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import (
    Assignment,
    Channel,
    Contact,
    Conversation,
    ConversationStatus,
    Lead,
    Manager,
    ManagerAbsence,
    Message,
    MessageDirection,
    Queue,
    QueueMember,
    RoutingRule,
    RoutingState,
)


class RoutingRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.locking = session.get_bind().dialect.name != "sqlite"
        self._leads: dict[int, Lead | None] = {}
        self._contacts: dict[int, Contact] = {}
        self._channels: dict[int, Channel] = {}
        self._queues: dict[int, Queue] = {}

    async def lock_conversation(self, conversation_id: int) -> Conversation | None:
        """The conversation, row-locked until commit (SQLite has one writer anyway).

        Its contact, channel and lead come in the same round trip, so the decision
        that follows reads them from the session instead of asking again.
        """
        query = (
            select(Conversation, Contact, Channel, Lead, Queue)
            .join(Contact, Contact.id == Conversation.contact_id)
            .join(Channel, Channel.id == Conversation.channel_id)
            .outerjoin(Lead, Lead.conversation_id == Conversation.id)
            .outerjoin(Queue, Queue.id == Channel.default_queue_id)
            .where(Conversation.id == conversation_id)
        )
        if self.locking:
            query = query.with_for_update(of=Conversation)
        row = (await self.session.execute(query)).first()
        if row is None:
            return None
        self._leads[conversation_id] = row[3]
        # Held here: the session's identity map only keeps weak references.
        self._contacts[row[1].id] = row[1]
        self._channels[row[2].id] = row[2]
        if row[4] is not None:
            self._queues[row[4].id] = row[4]
        conversation: Conversation = row[0]
        return conversation

    async def lock_managers(self, manager_ids: Sequence[int]) -> dict[int, Manager]:
        """Managers row-locked in id order (one order everywhere: no deadlocks)."""
        if not manager_ids:
            return {}
        query = select(Manager).where(Manager.id.in_(sorted(set(manager_ids)))).order_by(Manager.id)
        if self.locking:
            query = query.with_for_update()
        return {m.id: m for m in (await self.session.scalars(query)).all()}

    async def lock_members(self, queue_id: int) -> tuple[list[tuple[int, int]], dict[int, Manager]]:
        """The queue's (manager id, position) pairs and their managers, row-locked in id
        order, in one round trip."""
        query = (
            select(Manager, QueueMember.position)
            .join(QueueMember, QueueMember.manager_id == Manager.id)
            .where(QueueMember.queue_id == queue_id)
            .order_by(Manager.id)
        )
        if self.locking:
            query = query.with_for_update(of=Manager)
        rows = (await self.session.execute(query)).all()
        managers = {row[0].id: row[0] for row in rows}
        members = sorted(((row[0].id, int(row[1])) for row in rows), key=lambda m: (m[1], m[0]))
        return members, managers

    async def channel(self, channel_id: int) -> Channel:
        channel = self._channels.get(channel_id) or await self.session.get(Channel, channel_id)
        assert channel is not None
        return channel

    async def contact(self, contact_id: int) -> Contact:
        contact = self._contacts.get(contact_id) or await self.session.get(Contact, contact_id)
        assert contact is not None
        return contact

    async def queue(self, queue_id: int) -> Queue | None:
        return self._queues.get(queue_id) or await self.session.get(Queue, queue_id)

    async def queues_of(self, manager_id: int) -> list[int]:
        rows = await self.session.scalars(
            select(QueueMember.queue_id).where(QueueMember.manager_id == manager_id)
        )
        return [int(q) for q in rows]

    async def load_and_absence(
        self, manager_ids: Sequence[int], at: datetime
    ) -> tuple[dict[int, int], set[int]]:
        """Open conversations per manager and who is absent at `at`, in one round trip.

        Read after the managers' rows are locked, so assignments other workers
        committed meanwhile are counted.
        """
        if not manager_ids:
            return {}, set()
        ids = list(manager_ids)
        counts = (
            select(Conversation.assignee_id.label("manager_id"), func.count().label("n"))
            .where(
                Conversation.assignee_id.in_(ids),
                Conversation.status != ConversationStatus.CLOSED,
            )
            .group_by(Conversation.assignee_id)
        )
        absences = select(
            ManagerAbsence.manager_id.label("manager_id"), literal(-1).label("n")
        ).where(
            ManagerAbsence.manager_id.in_(ids),
            ManagerAbsence.starts_at <= at,
            ManagerAbsence.ends_at > at,
        )
        load: dict[int, int] = {}
        absent: set[int] = set()
        rows: Sequence[Any] = (await self.session.execute(union_all(counts, absences))).all()
        for row in rows:
            manager_id, n = row[0], int(row[1])
            if manager_id is None:
                continue
            if n < 0:
                absent.add(int(manager_id))
            else:
                load[int(manager_id)] = n
        return load, absent

    async def absent(self, manager_ids: Sequence[int], at: datetime) -> set[int]:
        if not manager_ids:
            return set()
        rows = await self.session.scalars(
            select(ManagerAbsence.manager_id).where(
                ManagerAbsence.manager_id.in_(list(manager_ids)),
                ManagerAbsence.starts_at <= at,
                ManagerAbsence.ends_at > at,
            )
        )
        return {int(m) for m in rows}

    async def active_rules(self) -> Sequence[RoutingRule]:
        rows = await self.session.scalars(
            select(RoutingRule)
            .where(RoutingRule.is_active.is_(True))
            .order_by(RoutingRule.position, RoutingRule.id)
        )
        return rows.all()

    async def first_inbound_text(self, conversation_id: int) -> str:
        text = await self.session.scalar(
            select(Message.text)
            .where(
                Message.conversation_id == conversation_id,
                Message.direction == MessageDirection.INBOUND,
            )
            .order_by(Message.id)
            .limit(1)
        )
        return text or ""

    async def lead_of(self, conversation_id: int) -> Lead | None:
        if conversation_id not in self._leads:
            self._leads[conversation_id] = (
                await self.session.scalars(
                    select(Lead).where(Lead.conversation_id == conversation_id)
                )
            ).first()
        return self._leads[conversation_id]

    async def current_assignment(self, conversation_id: int) -> Assignment | None:
        return (
            await self.session.scalars(
                select(Assignment)
                .where(Assignment.conversation_id == conversation_id, Assignment.ended_at.is_(None))
                .order_by(Assignment.id.desc())
                .limit(1)
            )
        ).first()

    async def end_assignments(self, conversation_id: int, at: datetime) -> None:
        await self.session.execute(
            update(Assignment)
            .where(Assignment.conversation_id == conversation_id, Assignment.ended_at.is_(None))
            .values(ended_at=at)
            .execution_options(synchronize_session=False)
        )

    async def waiting_conversations(self, queue_ids: Sequence[int] | None, limit: int) -> list[int]:
        """Conversations nobody could take yet, oldest first.

        Routing them one after another in one transaction would take a conversation's
        lock while holding managers' locks (the reverse of `route()`'s order): so they
        are all locked here first, before any manager, and the ones another worker is
        routing right now are skipped (that worker decides them).
        """
        query = (
            select(Conversation.id)
            .where(
                Conversation.routing_state.in_([RoutingState.WAITING, RoutingState.NEW]),
                Conversation.status != ConversationStatus.CLOSED,
                Conversation.assignee_id.is_(None),
            )
            .order_by(Conversation.id)
            .limit(limit)
        )
        if queue_ids is not None:
            query = query.where(
                or_(Conversation.queue_id.in_(list(queue_ids)), Conversation.queue_id.is_(None))
            )
        if self.locking:
            query = query.with_for_update(skip_locked=True)
        return [int(c) for c in await self.session.scalars(query)]
