"""The statements of routing in batches: read once for many conversations, write set-at-a-time.

Lock order, the same as one decision at a time takes it: the conversations first (in id
order), then the managers (in id order). The queues' members are locked for the short
rest of the batch's transaction, and their open conversations are counted under those
locks: a worker deciding one conversation at a time writes the chosen manager's row
with its assignment, so it waits for this batch (and then finds the row changed and
decides again), and another batch waits for the locks; nobody goes over capacity.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    bindparam,
    cast,
    column,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from routing.repository import QUEUE_STATE, ManagerState, QueueState
from storage.db import OUTBOX_FLAG
from storage.models import (
    Assignment,
    Channel,
    Contact,
    Conversation,
    ConversationStatus,
    Lead,
    Manager,
    ManagerAbsence,
    OutboxEvent,
    Queue,
    QueueMember,
    RoutingRule,
)
from storage.models.base import table_of
from storage.sql import among


@dataclass(frozen=True, slots=True)
class PendingConversation:
    """A conversation waiting for its first decision, with what the decision reads of it."""

    id: int
    status: str
    routing_state: str
    assignee_id: int | None
    queue_id: int | None
    priority: str
    first_response_at: datetime | None
    contact_id: int
    owner_id: int | None
    language: str | None
    default_queue_id: int | None
    has_lead: bool


@dataclass
class BatchWrites:
    """Everything a batch decided, as rows for set-at-a-time statements."""

    at: datetime  # when written (the rows' created_at and updated_at, events due now)

    assignments: list[dict[str, Any]]
    # Per assignment row (same order): the conversation's new values.
    conversations: list[dict[str, Any]]
    # The events per assignment row (same order); each gets the assignment's id.
    events: list[list[dict[str, Any]]]
    managers: dict[int, datetime]  # last_assigned_at
    leads: dict[int, int]  # conversation id -> assignee
    owners: dict[int, int]  # contact id -> owner


_CONVERSATION_COLUMNS = (
    Conversation.id,
    Conversation.status,
    Conversation.routing_state,
    Conversation.assignee_id,
    Conversation.queue_id,
    Conversation.priority,
    Conversation.first_response_at,
    Conversation.contact_id,
    Contact.owner_id,
    Contact.language,
    Channel.default_queue_id,
    Lead.id.is_not(None),
)
_MEMBER_COLUMNS = (
    Manager.id,
    Manager.is_active,
    Manager.presence,
    Manager.presence_expires_at,
    Manager.capacity,
    Manager.languages,
    Manager.working_hours,
    Manager.last_assigned_at,
)


class BatchRepository:
    """Plain Core statements on the session's connection (no ORM objects: a batch reads
    and writes thousands of rows)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.locking = session.get_bind().dialect.name != "sqlite"

    def _among(self, column: Any, ids: Sequence[int]) -> Any:
        """`column IN ids`; on PostgreSQL as one array parameter, whatever the number of ids
        (an IN list renders a parameter per id)."""
        return among(column, ids, postgresql=self.locking)

    async def _execute(self, statement: Any, parameters: Any = None) -> Any:
        connection = await self.session.connection()
        return await connection.execute(statement, parameters)

    async def has_active_rules(self) -> bool:
        count = (
            await self._execute(
                select(func.count(RoutingRule.id)).where(RoutingRule.is_active.is_(True))
            )
        ).scalar()
        return bool(count)

    async def lock_conversations(self, ids: Sequence[int]) -> list[PendingConversation]:
        """The conversations row-locked in id order, with their contact, channel and lead."""
        query = (
            select(*_CONVERSATION_COLUMNS)
            .join(Contact, Contact.id == Conversation.contact_id)
            .join(Channel, Channel.id == Conversation.channel_id)
            .outerjoin(Lead, Lead.conversation_id == Conversation.id)
            .where(self._among(Conversation.id, ids))
            .order_by(Conversation.id)
        )
        if self.locking:
            query = query.with_for_update(of=Conversation)
        rows = await self._execute(query)
        return [PendingConversation(*tuple(row)) for row in rows]

    async def queues(self, ids: Sequence[int]) -> dict[int, QueueState]:
        rows = await self._execute(select(*QUEUE_STATE).where(self._among(Queue.id, ids)))
        return {row[0]: QueueState(*row) for row in rows}

    async def lock_members(
        self, queue_ids: Sequence[int], others: Sequence[int], at: datetime
    ) -> tuple[dict[int, list[tuple[int, int]]], dict[int, ManagerState], dict[int, int], set[int]]:
        """The queues' members and the `others` managers locked in id order: (manager id,
        position) per queue, the managers, their open conversations, and who is absent at
        `at`."""
        membership = (
            await self._execute(
                select(QueueMember.queue_id, QueueMember.manager_id, QueueMember.position)
                .where(self._among(QueueMember.queue_id, queue_ids))
                .order_by(QueueMember.queue_id, QueueMember.position, QueueMember.manager_id)
            )
        ).all()
        order: dict[int, list[tuple[int, int]]] = {q: [] for q in queue_ids}
        for queue_id, manager_id, position in membership:
            order[queue_id].append((manager_id, position))
        manager_ids = sorted({*(row[1] for row in membership), *others})
        if not manager_ids:
            return order, {}, {}, set()
        query = (
            select(*_MEMBER_COLUMNS)
            .where(self._among(Manager.id, manager_ids))
            .order_by(Manager.id)
        )
        if self.locking:
            query = query.with_for_update(of=Manager)
        managers = {row[0]: ManagerState(*row) for row in await self._execute(query)}
        # Counted once the rows are locked: assignments committed meanwhile are seen.
        load = {
            manager_id: int(count)
            for manager_id, count in await self._execute(
                select(Conversation.assignee_id, func.count())
                .where(
                    self._among(Conversation.assignee_id, manager_ids),
                    Conversation.status != ConversationStatus.CLOSED,
                )
                .group_by(Conversation.assignee_id)
            )
            if manager_id is not None
        }
        absent = set(
            (
                await self._execute(
                    select(ManagerAbsence.manager_id).where(
                        self._among(ManagerAbsence.manager_id, manager_ids),
                        ManagerAbsence.starts_at <= at,
                        ManagerAbsence.ends_at > at,
                    )
                )
            ).scalars()
        )
        return order, managers, load, absent

    async def write(self, writes: BatchWrites) -> None:
        """All of a batch's decisions in a few statements, one per table."""
        if not writes.assignments:
            return
        now = writes.at
        assignments = table_of(Assignment)
        inserted = await self._execute(
            insert(assignments).returning(assignments.c.id, sort_by_parameter_order=True),
            [{"created_at": now, "ended_at": None, **row} for row in writes.assignments],
        )
        assignment_ids = [int(row[0]) for row in inserted]

        await self._update_rows(Conversation, "id", writes.conversations, now)
        await self._update_rows(
            Manager,
            "id",
            [{"id": m, "last_assigned_at": at} for m, at in sorted(writes.managers.items())],
            now,
        )
        await self._update_rows(
            Lead,
            "conversation_id",
            [{"conversation_id": c, "assignee_id": m} for c, m in sorted(writes.leads.items())],
            now,
        )
        contacts = table_of(Contact)
        await self._update_rows(
            Contact,
            "id",
            [{"id": c, "owner_id": m} for c, m in sorted(writes.owners.items())],
            now,
            contacts.c.owner_id.is_(None),  # an owner set meanwhile stays
        )
        events = [
            {**event, "payload": {**event["payload"], "assignment_id": assignment_id}}
            for assignment_id, group in zip(assignment_ids, writes.events, strict=True)
            for event in group
        ]
        if events:
            await self._execute(insert(table_of(OutboxEvent)), events)
            self.session.info[OUTBOX_FLAG] = True

    async def _update_rows(
        self,
        entity: type,
        key: str,
        rows: list[dict[str, Any]],
        now: datetime,
        *conditions: ColumnElement[bool],
    ) -> None:
        """Update the rows found by their `key` column to the values beside it, stamping
        `updated_at`; rows setting the same columns go in one statement.

        PostgreSQL: `UPDATE … FROM unnest(<one array per column>)`, a statement of as
        many parameters whatever the number of rows; SQLite: one statement executed for
        each row (executemany, in process).
        """
        if not rows:
            return
        table = table_of(entity)
        shapes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for row in rows:
            shapes.setdefault(tuple(sorted(row)), []).append(row)
        for shape, group in shapes.items():
            columns = [name for name in shape if name != key]
            if self.locking:
                source = (
                    func.unnest(
                        *(
                            cast(
                                literal([row[name] for row in group], ARRAY(table.c[name].type)),
                                ARRAY(table.c[name].type),
                            )
                            for name in shape
                        )
                    )
                    .table_valued(*(column(name, table.c[name].type) for name in shape))
                    .render_derived(name="given")
                )
                await self._execute(
                    update(table)
                    .where(table.c[key] == source.c[key], *conditions)
                    .values({**{name: source.c[name] for name in columns}, "updated_at": now})
                )
                continue
            await self._execute(
                update(table)
                .where(table.c[key] == bindparam(f"b_{key}"), *conditions)
                .values({**{name: bindparam(f"b_{name}") for name in columns}, "updated_at": now}),
                [{f"b_{name}": row[name] for name in shape} for row in group],
            )
