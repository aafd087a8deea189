"""The queries of the managers' calls page and of the ringing call's card.

What a manager may see of the telephony follows the conversations: a call or a callback
is theirs to see when its conversation is (intake.visibility), or when they answered
the call or were given the callback; administrators see all of it.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import ColumnElement, and_, func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from intake.inbox_repository import OPEN_STATUSES
from intake.visibility import Viewer, visible_to
from storage.models import Call, CallState, Contact, Conversation, Message, Task, TaskStatus


def _conversation_seen(
    viewer: Viewer, conversation_id: InstrumentedAttribute[int | None]
) -> ColumnElement[bool]:
    """The row's conversation exists and `viewer` may see it (an outer join's missing
    conversation must not pass for an unassigned one)."""
    if viewer.is_admin:
        return true()
    visible = select(Conversation.id).where(visible_to(viewer))
    return and_(conversation_id.is_not(None), conversation_id.in_(visible))


def call_seen(viewer: Viewer) -> ColumnElement[bool]:
    """The calls `viewer` may see."""
    if viewer.is_admin:
        return true()
    return or_(
        _conversation_seen(viewer, Call.conversation_id), Call.manager_id == viewer.manager_id
    )


def task_seen(viewer: Viewer) -> ColumnElement[bool]:
    """The tasks `viewer` may see."""
    if viewer.is_admin:
        return true()
    return or_(
        _conversation_seen(viewer, Task.conversation_id), Task.assignee_id == viewer.manager_id
    )


class DeskRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def open_tasks(
        self, viewer: Viewer, limit: int, after: tuple[datetime, int] | None = None
    ) -> list[Task]:
        """Open tasks, the longest due first (so the overdue ones lead); `after` continues
        past that (due time, id)."""
        query = select(Task).where(Task.status == TaskStatus.OPEN, task_seen(viewer))
        if after is not None:
            due_at, last_id = after
            query = query.where(
                or_(Task.due_at > due_at, and_(Task.due_at == due_at, Task.id > last_id))
            )
        query = query.order_by(Task.due_at, Task.id).limit(limit)
        return list((await self.session.scalars(query)).all())

    async def count_open_tasks(self, viewer: Viewer) -> int:
        query = (
            select(func.count())
            .select_from(Task)
            .where(Task.status == TaskStatus.OPEN, task_seen(viewer))
        )
        return int((await self.session.scalar(query)) or 0)

    async def task(self, viewer: Viewer, task_id: int) -> Task | None:
        query = select(Task).where(Task.id == task_id, task_seen(viewer))
        return (await self.session.scalars(query)).first()

    async def calls(
        self, viewer: Viewer, states: Collection[str], after_id: int | None, limit: int
    ) -> list[Call]:
        """Calls newest first; `after_id` continues below that id."""
        query = select(Call).where(call_seen(viewer)).order_by(Call.id.desc()).limit(limit)
        if states:
            query = query.where(Call.state.in_(list(states)))
        if after_id is not None:
            query = query.where(Call.id < after_id)
        return list((await self.session.scalars(query)).all())

    async def call(self, viewer: Viewer, call_id: int, *, owned: bool = False) -> Call | None:
        """The call if `viewer` may see it (or, `owned`, is the caller's owner)."""
        seen = call_seen(viewer)
        if owned and not viewer.is_admin:
            own = select(Contact.id).where(Contact.owner_id == viewer.manager_id)
            seen = or_(seen, Call.contact_id.in_(own))
        query = select(Call).where(Call.id == call_id, seen)
        return (await self.session.scalars(query)).first()

    async def calls_by_id(self, ids: Collection[int]) -> dict[int, Call]:
        if not ids:
            return {}
        rows = await self.session.scalars(select(Call).where(Call.id.in_(list(ids))))
        return {call.id: call for call in rows}

    async def ringing(self, since: datetime, limit: int) -> list[Call]:
        """The calls still ringing that began at `since` or later, the oldest first."""
        query = (
            select(Call)
            .where(Call.state == CallState.RINGING, Call.started_at >= since)
            .order_by(Call.id)
            .limit(limit)
        )
        return list((await self.session.scalars(query)).all())

    async def assignees(self, ids: Collection[int]) -> dict[int, int | None]:
        """conversation id -> its assignee."""
        if not ids:
            return {}
        rows = await self.session.execute(
            select(Conversation.id, Conversation.assignee_id).where(Conversation.id.in_(list(ids)))
        )
        return {conversation_id: assignee for conversation_id, assignee in rows}

    async def contacts(self, ids: Collection[int]) -> dict[int, Contact]:
        if not ids:
            return {}
        rows = await self.session.scalars(select(Contact).where(Contact.id.in_(list(ids))))
        return {contact.id: contact for contact in rows}

    async def visible_among(self, viewer: Viewer, ids: Collection[int]) -> set[int]:
        """Which of these conversations `viewer` may open."""
        if not ids:
            return set()
        query = select(Conversation.id).where(Conversation.id.in_(list(ids)))
        if not viewer.is_admin:
            query = query.where(visible_to(viewer))
        return set((await self.session.scalars(query)).all())

    async def open_conversations(
        self, viewer: Viewer, contact_id: int, limit: int
    ) -> list[Conversation]:
        """The contact's open conversations `viewer` may see, the latest active first."""
        query = (
            select(Conversation)
            .where(
                Conversation.contact_id == contact_id,
                Conversation.status.in_(OPEN_STATUSES),
                visible_to(viewer),
            )
            .order_by(Conversation.last_message_at.desc(), Conversation.id.desc())
            .limit(limit)
        )
        return list((await self.session.scalars(query)).all())

    async def last_contact(
        self, viewer: Viewer, contact_id: int, before: datetime, except_message: int | None
    ) -> datetime | None:
        """When the contact last wrote, called or was answered before `before` (in the
        conversations `viewer` may see), leaving out the message of the ringing call."""
        query = (
            select(func.max(Message.created_at))
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(
                Conversation.contact_id == contact_id,
                Message.created_at < before,
                visible_to(viewer),
            )
        )
        if except_message is not None:
            query = query.where(Message.id != except_message)
        found = await self.session.scalar(query)
        return found if isinstance(found, datetime) else None
