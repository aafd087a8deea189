"""Which conversations a manager sees: administrators all of them; a manager the conversations
of their queues, the unassigned ones and their own.

One predicate, used by every list that shows conversations to a person (search, the inbox's
views), so that no page shows what another hides.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, or_, select, true

from storage.models import Conversation, QueueMember


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who is looking: a manager, or an administrator (an operator's token acts as one),
    who sees everything."""

    manager_id: int | None
    is_admin: bool = False


def visible_to(viewer: Viewer) -> ColumnElement[bool]:
    """The condition on `conversations` rows that `viewer` may see."""
    if viewer.is_admin:
        return true()
    if viewer.manager_id is None:
        return Conversation.assignee_id.is_(None)
    own_queues = select(QueueMember.queue_id).where(QueueMember.manager_id == viewer.manager_id)
    return or_(
        Conversation.assignee_id == viewer.manager_id,
        Conversation.assignee_id.is_(None),
        Conversation.queue_id.in_(own_queues),
    )
