"""The queries of the call journal, the blocklist and tasks; services never write SQL."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import (
    BlockedNumber,
    Call,
    Contact,
    Conversation,
    Manager,
    Message,
    Task,
    TaskStatus,
)
from storage.models.base import table_of


@dataclass(frozen=True, slots=True)
class CallFilters:
    direction: str | None = None
    states: tuple[str, ...] = ()
    channel_id: int | None = None
    manager_id: int | None = None
    contact_id: int | None = None
    number: str | None = None  # E.164: the client's number
    started_from: datetime | None = None
    started_to: datetime | None = None


@dataclass(frozen=True, slots=True)
class TaskFilters:
    kind: str | None = None
    statuses: tuple[str, ...] = (TaskStatus.OPEN,)
    assignee_id: int | None = None
    unassigned: bool = False
    contact_id: int | None = None
    overdue_at: datetime | None = None  # only open tasks due before this moment


class CallRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @property
    def locking(self) -> bool:
        return self.session.get_bind().dialect.name != "sqlite"

    async def lock_calls(self, keys: Sequence[tuple[int, str]]) -> dict[tuple[int, str], Call]:
        """The calls with these (channel, provider call id) keys, rows locked in id order."""
        if not keys:
            return {}
        query = (
            select(Call)
            .where(tuple_(Call.channel_id, Call.provider_call_id).in_(list(keys)))
            .order_by(Call.id)
        )
        if self.locking:
            query = query.with_for_update()
        calls = (await self.session.scalars(query)).all()
        return {(call.channel_id, call.provider_call_id): call for call in calls}

    async def blocked_among(self, numbers: Collection[str]) -> set[str]:
        if not numbers:
            return set()
        result = await self.session.scalars(
            select(BlockedNumber.number).where(BlockedNumber.number.in_(list(numbers)))
        )
        return set(result.all())

    async def managers_named(
        self, agents: Collection[str], phones: dict[str, str | None]
    ) -> dict[str, int | None]:
        """agent -> the active manager it names (extension or SIP login, email, phone)."""
        if not agents:
            return {}
        lowered = {agent.lower() for agent in agents}
        numbers = {p for p in phones.values() if p}
        conditions: list[Any] = [
            Manager.extension.in_(list(agents)),
            func.lower(Manager.email).in_(list(lowered)),
        ]
        if numbers:
            conditions.append(Manager.phone.in_(list(numbers)))
        rows = await self.session.execute(
            select(Manager.id, Manager.extension, Manager.email, Manager.phone)
            .where(Manager.is_active.is_(True), or_(*conditions))
            .order_by(Manager.id)
        )
        by_extension: dict[str, int] = {}
        by_email: dict[str, int] = {}
        by_phone: dict[str, int] = {}
        for manager_id, extension, email, phone in rows:
            if extension:
                by_extension.setdefault(extension, manager_id)
            by_email.setdefault(email.lower(), manager_id)
            if phone:
                by_phone.setdefault(phone, manager_id)
        found: dict[str, int | None] = {}
        for agent in agents:
            phone = phones.get(agent)
            found[agent] = (
                by_extension.get(agent)
                or by_email.get(agent.lower())
                or (by_phone.get(phone) if phone else None)
            )
        return found

    async def managers_by_extension(self, extensions: Sequence[str]) -> dict[str, int]:
        """extension -> the active manager with it (the phones ringing)."""
        if not extensions:
            return {}
        rows = await self.session.execute(
            select(Manager.extension, Manager.id)
            .where(Manager.is_active.is_(True), Manager.extension.in_(list(extensions)))
            .order_by(Manager.id)
        )
        found: dict[str, int] = {}
        for extension, manager_id in rows:
            found.setdefault(str(extension), int(manager_id))
        return found

    async def people_of(
        self, calls: Iterable[Call]
    ) -> tuple[dict[int, Contact], dict[int, Conversation]]:
        """The calls' contacts and conversations by id, in two queries."""
        calls = list(calls)
        contact_ids = {c.contact_id for c in calls if c.contact_id is not None}
        conversation_ids = {c.conversation_id for c in calls if c.conversation_id is not None}
        contacts: dict[int, Contact] = {}
        conversations: dict[int, Conversation] = {}
        if contact_ids:
            for contact in await self.session.scalars(
                select(Contact).where(Contact.id.in_(contact_ids))
            ):
                contacts[contact.id] = contact
        if conversation_ids:
            for conversation in await self.session.scalars(
                select(Conversation).where(Conversation.id.in_(conversation_ids))
            ):
                conversations[conversation.id] = conversation
        return contacts, conversations

    async def set_messages(self, lines: dict[int, tuple[str, dict[str, Any]]]) -> None:
        """Rewrite the text and meta of these messages (message id -> (text, meta))."""
        if not lines:
            return
        table = table_of(Message)
        await self.session.execute(
            update(table)
            .where(table.c.id == bindparam("mid"))
            .values(text=bindparam("t"), meta=bindparam("m")),
            [{"mid": i, "t": text, "m": meta} for i, (text, meta) in lines.items()],
        )

    async def get_call(self, call_id: int) -> Call | None:
        return await self.session.get(Call, call_id)

    async def is_blocked(self, numbers: Sequence[str]) -> bool:
        if not numbers:
            return False
        found = await self.session.scalars(
            select(BlockedNumber.id).where(BlockedNumber.number.in_(list(numbers))).limit(1)
        )
        return found.first() is not None

    async def active_manager_named(
        self, values: Sequence[str], phones: Sequence[str]
    ) -> Manager | None:
        """The active manager a PBX names: by extension or SIP login, email, or phone."""
        if not values and not phones:
            return None
        conditions: list[Any] = []
        if values:
            conditions.append(Manager.extension.in_(list(values)))
            conditions.append(func.lower(Manager.email).in_([v.lower() for v in values]))
        if phones:
            conditions.append(Manager.phone.in_(list(phones)))
        result = await self.session.scalars(
            select(Manager)
            .where(Manager.is_active.is_(True), or_(*conditions))
            .order_by(Manager.id)
            .limit(1)
        )
        return result.first()

    async def list_calls(
        self, filters: CallFilters, after_id: int | None, limit: int
    ) -> list[Call]:
        """Newest first; `after_id` continues below that id."""
        query = select(Call).order_by(Call.id.desc()).limit(limit)
        if after_id is not None:
            query = query.where(Call.id < after_id)
        if filters.direction:
            query = query.where(Call.direction == filters.direction)
        if filters.states:
            query = query.where(Call.state.in_(filters.states))
        if filters.channel_id is not None:
            query = query.where(Call.channel_id == filters.channel_id)
        if filters.manager_id is not None:
            query = query.where(Call.manager_id == filters.manager_id)
        if filters.contact_id is not None:
            query = query.where(Call.contact_id == filters.contact_id)
        if filters.number:
            query = query.where(Call.client_number == filters.number)
        if filters.started_from is not None:
            query = query.where(Call.started_at >= filters.started_from)
        if filters.started_to is not None:
            query = query.where(Call.started_at < filters.started_to)
        return list((await self.session.scalars(query)).all())

    # Blocklist

    async def blocked_numbers(self) -> list[BlockedNumber]:
        result = await self.session.scalars(select(BlockedNumber).order_by(BlockedNumber.number))
        return list(result.all())

    async def blocked_number(self, number: str) -> BlockedNumber | None:
        result = await self.session.scalars(
            select(BlockedNumber).where(BlockedNumber.number == number)
        )
        return result.first()

    async def unblock(self, number: str) -> bool:
        result = await self.session.execute(
            delete(BlockedNumber)
            .where(BlockedNumber.number == number)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0))


class TaskRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @property
    def locking(self) -> bool:
        return self.session.get_bind().dialect.name != "sqlite"

    async def get(self, task_id: int, *, lock: bool = False) -> Task | None:
        query = select(Task).where(Task.id == task_id)
        if lock and self.locking:
            query = query.with_for_update()
        return (await self.session.scalars(query)).first()

    async def open_of_kind_for_phone(self, kind: str, phone: str) -> Task | None:
        query = select(Task).where(
            Task.kind == kind, Task.phone == phone, Task.status == TaskStatus.OPEN
        )
        if self.locking:
            query = query.with_for_update()
        return (await self.session.scalars(query)).first()

    async def open_for_phones(self, phones: Collection[str]) -> dict[str, list[Task]]:
        """phone -> its open tasks (rows locked), for every one of these phones."""
        found: dict[str, list[Task]] = {phone: [] for phone in phones}
        if not phones:
            return found
        query = (
            select(Task)
            .where(Task.phone.in_(list(phones)), Task.status == TaskStatus.OPEN)
            .order_by(Task.id)
        )
        if self.locking:
            query = query.with_for_update()
        for task in (await self.session.scalars(query)).all():
            found[str(task.phone)].append(task)
        return found

    async def open_for_phone(self, phone: str) -> list[Task]:
        query = select(Task).where(Task.phone == phone, Task.status == TaskStatus.OPEN)
        if self.locking:
            query = query.with_for_update()
        return list((await self.session.scalars(query)).all())

    async def open_unassigned_of_conversations(self, conversation_ids: Sequence[int]) -> list[Task]:
        """The open tasks nobody has of these conversations, locked, in id order."""
        query = (
            select(Task)
            .where(
                Task.conversation_id.in_(list(conversation_ids)),
                Task.status == TaskStatus.OPEN,
                Task.assignee_id.is_(None),
            )
            .order_by(Task.id)
        )
        if self.locking:
            query = query.with_for_update()
        return list((await self.session.scalars(query)).all())

    async def find(self, filters: TaskFilters, after_id: int | None, limit: int) -> list[Task]:
        """Newest first, like every journal list; `after_id` continues below that id."""
        query = select(Task).order_by(Task.id.desc()).limit(limit)
        if after_id is not None:
            query = query.where(Task.id < after_id)
        if filters.kind:
            query = query.where(Task.kind == filters.kind)
        if filters.statuses:
            query = query.where(Task.status.in_(filters.statuses))
        if filters.assignee_id is not None:
            query = query.where(Task.assignee_id == filters.assignee_id)
        if filters.unassigned:
            query = query.where(Task.assignee_id.is_(None))
        if filters.contact_id is not None:
            query = query.where(Task.contact_id == filters.contact_id)
        if filters.overdue_at is not None:
            query = query.where(Task.status == TaskStatus.OPEN, Task.due_at < filters.overdue_at)
        return list((await self.session.scalars(query)).all())
