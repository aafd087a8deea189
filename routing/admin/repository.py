"""The queries behind routing's administration: queues, members, rules, profiles, history."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from storage.models import (
    Assignment,
    Conversation,
    ConversationStatus,
    Manager,
    ManagerAbsence,
    Queue,
    QueueMember,
    RoutingRule,
)


@dataclass(frozen=True, slots=True)
class HistoryRow:
    assignment: Assignment
    manager_name: str | None
    queue_name: str | None
    actor_name: str | None


class RoutingAdminRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # Queues and members

    async def queues(self) -> Sequence[Queue]:
        return (await self.session.scalars(select(Queue).order_by(Queue.key, Queue.id))).all()

    async def queue(self, queue_id: int) -> Queue | None:
        return await self.session.get(Queue, queue_id)

    async def queue_by_key(self, key: str) -> Queue | None:
        return (await self.session.scalars(select(Queue).where(Queue.key == key))).first()

    async def existing_queue_ids(self, queue_ids: Sequence[int]) -> set[int]:
        if not queue_ids:
            return set()
        rows = await self.session.scalars(select(Queue.id).where(Queue.id.in_(list(queue_ids))))
        return {int(q) for q in rows}

    async def member_ids(self, queue_ids: Sequence[int] | None = None) -> dict[int, list[int]]:
        """Ordered member ids by queue id (every queue, or the given ones)."""
        query = select(QueueMember.queue_id, QueueMember.manager_id).order_by(
            QueueMember.queue_id, QueueMember.position, QueueMember.id
        )
        if queue_ids is not None:
            query = query.where(QueueMember.queue_id.in_(list(queue_ids)))
        found: dict[int, list[int]] = {}
        for queue_id, manager_id in await self.session.execute(query):
            found.setdefault(int(queue_id), []).append(int(manager_id))
        return found

    async def members(self, queue_id: int) -> Sequence[tuple[QueueMember, Manager]]:
        rows = await self.session.execute(
            select(QueueMember, Manager)
            .join(Manager, Manager.id == QueueMember.manager_id)
            .where(QueueMember.queue_id == queue_id)
            .order_by(QueueMember.position, QueueMember.id)
        )
        return [(member, manager) for member, manager in rows]

    async def member(self, queue_id: int, manager_id: int) -> QueueMember | None:
        return (
            await self.session.scalars(
                select(QueueMember).where(
                    QueueMember.queue_id == queue_id, QueueMember.manager_id == manager_id
                )
            )
        ).first()

    async def next_member_position(self, queue_id: int) -> int:
        last = await self.session.scalar(
            select(func.max(QueueMember.position)).where(QueueMember.queue_id == queue_id)
        )
        return 0 if last is None else int(last) + 1

    async def clear_members(self, queue_id: int) -> None:
        await self.session.execute(
            delete(QueueMember)
            .where(QueueMember.queue_id == queue_id)
            .execution_options(synchronize_session="fetch")
        )

    async def queues_of(self, manager_id: int) -> list[int]:
        rows = await self.session.scalars(
            select(QueueMember.queue_id)
            .where(QueueMember.manager_id == manager_id)
            .order_by(QueueMember.queue_id)
        )
        return [int(q) for q in rows]

    # Channels

    # Rules

    async def rules(self) -> Sequence[RoutingRule]:
        return (
            await self.session.scalars(
                select(RoutingRule).order_by(RoutingRule.position, RoutingRule.id)
            )
        ).all()

    async def rule(self, rule_id: int) -> RoutingRule | None:
        return await self.session.get(RoutingRule, rule_id)

    async def next_rule_position(self) -> int:
        last = await self.session.scalar(select(func.max(RoutingRule.position)))
        return 0 if last is None else int(last) + 1

    # Managers

    async def manager(self, manager_id: int) -> Manager | None:
        return await self.session.get(Manager, manager_id)

    async def managers(self) -> Sequence[Manager]:
        return (
            await self.session.scalars(select(Manager).order_by(Manager.name, Manager.id))
        ).all()

    async def existing_manager_ids(self, manager_ids: Sequence[int]) -> set[int]:
        if not manager_ids:
            return set()
        rows = await self.session.scalars(
            select(Manager.id).where(Manager.id.in_(list(manager_ids)))
        )
        return {int(m) for m in rows}

    async def open_count(self, manager_id: int) -> int:
        count = await self.session.scalar(
            select(func.count()).where(
                Conversation.assignee_id == manager_id,
                Conversation.status != ConversationStatus.CLOSED,
            )
        )
        return int(count or 0)

    async def absences(self, manager_id: int) -> Sequence[ManagerAbsence]:
        return (
            await self.session.scalars(
                select(ManagerAbsence)
                .where(ManagerAbsence.manager_id == manager_id)
                .order_by(ManagerAbsence.starts_at, ManagerAbsence.id)
            )
        ).all()

    async def absence(self, absence_id: int) -> ManagerAbsence | None:
        return await self.session.get(ManagerAbsence, absence_id)

    async def absent_now(self, manager_id: int, at: datetime) -> bool:
        found = await self.session.scalar(
            select(ManagerAbsence.id)
            .where(
                ManagerAbsence.manager_id == manager_id,
                ManagerAbsence.starts_at <= at,
                ManagerAbsence.ends_at > at,
            )
            .limit(1)
        )
        return found is not None

    # Conversations

    async def conversation(self, conversation_id: int) -> Conversation | None:
        return await self.session.get(Conversation, conversation_id)

    async def history(self, conversation_id: int) -> list[HistoryRow]:
        assignee = aliased(Manager)
        actor = aliased(Manager)
        rows = await self.session.execute(
            select(Assignment, assignee.name, Queue.name, actor.name)
            .outerjoin(assignee, assignee.id == Assignment.manager_id)
            .outerjoin(actor, actor.id == Assignment.actor_manager_id)
            .outerjoin(Queue, Queue.id == Assignment.queue_id)
            .where(Assignment.conversation_id == conversation_id)
            .order_by(Assignment.id)
        )
        return [HistoryRow(a, m, q, c) for a, m, q, c in rows]
