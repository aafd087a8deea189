"""The queries of the managers' workspace: list views, their counts, the contact timeline,
canned replies and read positions.

Every list is one query for its page (plus one for the rows' last messages), whatever the
page's size: no query per row. Visibility is a condition in the query, never a filter in
Python, so a page is always full and the counts agree with the lists.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, exists, func, literal, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased, selectinload

from intake.journal_repository import contains_any
from intake.visibility import Viewer, visible_to
from storage.models import (
    CannedReply,
    Channel,
    Claim,
    Contact,
    Conversation,
    ConversationRead,
    ConversationStatus,
    Identity,
    Manager,
    Message,
    MessageDirection,
    Queue,
    QueueMember,
)
from storage.models.base import table_of
from storage.types import UTCDateTime

OPEN_STATUSES = (ConversationStatus.OPEN.value, ConversationStatus.PENDING.value)


@dataclass(frozen=True, slots=True)
class ListRow:
    """A conversation as a list row shows it."""

    conversation: Conversation
    channel_kind: str
    channel_title: str
    contact_name: str | None
    assignee_name: str | None
    activity_at: datetime
    sla_due_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class LastMessage:
    direction: str
    text: str


@dataclass(frozen=True, slots=True)
class TimelineItem:
    message: Message
    channel_kind: str
    author_name: str | None


@dataclass(frozen=True, slots=True)
class Counts:
    """Open conversations per view the viewer can see."""

    mine: int
    unassigned: int
    open: int
    by_queue: dict[int, int]
    by_channel: dict[int, int]
    by_status: dict[str, int]
    sla_soon: int = 0
    sla_breached: int = 0
    claims: int = 0


def activity_column() -> ColumnElement[datetime]:
    """When the conversation last moved: its last message, else its creation."""
    return func.coalesce(Conversation.last_message_at, Conversation.created_at)


# How far ahead an SLA target is "due soon".
SLA_SOON = timedelta(hours=1)
# Rows without a running SLA target sort after every one that has one.
NO_SLA = datetime(9999, 1, 1, tzinfo=UTC)
SORTS = ("activity", "sla")


def sla_due_column() -> ColumnElement[datetime]:
    """The response target the client waits on: the first response's until the first reply,
    then the next response's (set while a client message is unanswered, cleared by a reply)."""
    return case(
        (Conversation.first_response_at.is_(None), Conversation.first_response_due_at),
        else_=Conversation.next_response_due_at,
    )


def sla_key_column() -> ColumnElement[datetime]:
    """The SLA sort key: the due time, or NO_SLA when no target runs."""
    return func.coalesce(sla_due_column(), literal(NO_SLA, UTCDateTime()))


def sla_breached(now: datetime) -> ColumnElement[bool]:
    """Open, and its target has passed (waiting and snoozed conversations owe no answer)."""
    due = sla_due_column()
    return (Conversation.status == ConversationStatus.OPEN.value) & due.is_not(None) & (due < now)


def sla_soon(now: datetime) -> ColumnElement[bool]:
    """Open, and its target comes within SLA_SOON."""
    due = sla_due_column()
    return (
        (Conversation.status == ConversationStatus.OPEN.value)
        & due.is_not(None)
        & (due >= now)
        & (due < now + SLA_SOON)
    )


def has_claim() -> ColumnElement[bool]:
    return exists().where(Claim.conversation_id == Conversation.id)


class InboxRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def list_page(
        self,
        viewer: Viewer,
        condition: ColumnElement[bool],
        *,
        after: tuple[datetime, int] | None,
        limit: int,
        sort: str = "activity",
    ) -> list[ListRow]:
        """Rows matching `condition` that `viewer` sees after the keyset position `after`
        (sort key, id): latest activity first, or (`sort="sla"`) the nearest SLA target first
        and those without one last, by activity."""
        assignee = aliased(Manager)
        activity = activity_column()
        query = (
            select(
                Conversation,
                Channel.kind,
                Channel.title,
                Contact.name,
                assignee.name,
                activity.label("activity_at"),
                sla_due_column().label("sla_due_at"),
            )
            .join(Channel, Channel.id == Conversation.channel_id)
            .join(Contact, Contact.id == Conversation.contact_id)
            .outerjoin(assignee, assignee.id == Conversation.assignee_id)
            .where(visible_to(viewer), condition)
        )
        if sort == "sla":
            key = sla_key_column()
            if after is not None:
                at, last_id = after
                query = query.where(or_(key > at, and_(key == at, Conversation.id > last_id)))
            query = query.order_by(key.asc(), Conversation.id.asc())
        else:
            if after is not None:
                at, last_id = after
                query = query.where(
                    or_(activity < at, and_(activity == at, Conversation.id < last_id))
                )
            query = query.order_by(activity.desc(), Conversation.id.desc())
        rows = (await self.session.execute(query.limit(limit))).all()
        return [ListRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6]) for r in rows]

    async def last_messages(self, conversation_ids: Sequence[int]) -> dict[int, LastMessage]:
        """The latest message (not a note) of each conversation, in one query."""
        if not conversation_ids:
            return {}
        latest = (
            select(func.max(Message.id))
            .where(
                Message.conversation_id.in_(conversation_ids),
                Message.direction != MessageDirection.NOTE,
            )
            .group_by(Message.conversation_id)
        )
        rows = await self.session.execute(
            select(Message.conversation_id, Message.direction, Message.text).where(
                Message.id.in_(latest)
            )
        )
        return {row[0]: LastMessage(row[1], row[2] or "") for row in rows}

    async def counts(self, viewer: Viewer, now: datetime) -> Counts:
        """Counts of every view in four queries (fixed views, per queue, channel, status)."""
        visible = visible_to(viewer)
        is_open = Conversation.status.in_(OPEN_STATUSES)

        def count_if(condition: ColumnElement[bool]) -> Any:
            return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

        mine_condition: ColumnElement[bool] = (
            Conversation.assignee_id == viewer.manager_id
            if viewer.manager_id is not None
            else Conversation.id.is_(None)
        )
        fixed = (
            await self.session.execute(
                select(
                    count_if(mine_condition),
                    count_if(Conversation.assignee_id.is_(None)),
                    func.count(),
                    count_if(sla_soon(now)),
                    count_if(sla_breached(now)),
                    count_if(has_claim()),
                ).where(visible, is_open)
            )
        ).one()
        by_queue = await self.session.execute(
            select(Conversation.queue_id, func.count())
            .where(visible, is_open, Conversation.queue_id.is_not(None))
            .group_by(Conversation.queue_id)
        )
        by_channel = await self.session.execute(
            select(Conversation.channel_id, func.count())
            .where(visible, is_open)
            .group_by(Conversation.channel_id)
        )
        by_status = await self.session.execute(
            select(Conversation.status, func.count()).where(visible).group_by(Conversation.status)
        )
        return Counts(
            mine=int(fixed[0]),
            unassigned=int(fixed[1]),
            open=int(fixed[2]),
            by_queue={int(q or 0): int(n) for q, n in by_queue},
            by_channel={int(c): int(n) for c, n in by_channel},
            by_status={str(s): int(n) for s, n in by_status},
            sla_soon=int(fixed[3]),
            sla_breached=int(fixed[4]),
            claims=int(fixed[5]),
        )

    async def queues(self, viewer: Viewer) -> list[tuple[int, str]]:
        """The queues the viewer works in (every queue for an administrator)."""
        query = select(Queue.id, Queue.name).order_by(Queue.name, Queue.id)
        if not viewer.is_admin:
            query = query.where(
                Queue.id.in_(
                    select(QueueMember.queue_id).where(QueueMember.manager_id == viewer.manager_id)
                )
            )
        return [(row[0], row[1]) for row in await self.session.execute(query)]

    async def channels(self) -> list[tuple[int, str, str]]:
        """(id, kind, title) of every active channel."""
        rows = await self.session.execute(
            select(Channel.id, Channel.kind, Channel.title)
            .where(Channel.is_active.is_(True))
            .order_by(Channel.kind, Channel.title, Channel.id)
        )
        return [(row[0], row[1], row[2]) for row in rows]

    async def visible_conversation(self, viewer: Viewer, conversation_id: int) -> ListRow | None:
        rows = await self.list_page(viewer, Conversation.id == conversation_id, after=None, limit=1)
        return rows[0] if rows else None

    async def conversation_state(self, conversation_id: int) -> tuple[Conversation, bool] | None:
        """The conversation as it is now and whether it has a claim (what the live stream
        sorts into views), in one query."""
        row = (
            await self.session.execute(
                select(Conversation, has_claim())
                .where(Conversation.id == conversation_id)
                .execution_options(populate_existing=True)
            )
        ).first()
        return None if row is None else (row[0], bool(row[1]))

    async def claim_numbers(self, conversation_id: int) -> list[str]:
        """The numbers of the claims filed from this conversation, oldest first."""
        rows = await self.session.scalars(
            select(Claim.number).where(Claim.conversation_id == conversation_id).order_by(Claim.id)
        )
        return list(rows)

    async def identities(self, contact_id: int) -> list[tuple[str, str]]:
        rows = await self.session.execute(
            select(Identity.kind, Identity.value)
            .where(Identity.contact_id == contact_id)
            .order_by(Identity.kind, Identity.id)
        )
        return [(row[0], row[1]) for row in rows]

    async def contact(self, contact_id: int) -> Contact | None:
        return await self.session.get(Contact, contact_id)

    async def timeline(
        self, contact_id: int, *, before_id: int | None, limit: int
    ) -> list[TimelineItem]:
        """The contact's messages in every channel, newest `limit` before `before_id`,
        returned oldest first, with attachments, channel kind and author."""
        author = aliased(Manager)
        query = (
            select(Message, Channel.kind, author.name)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .join(Channel, Channel.id == Message.channel_id)
            .outerjoin(author, author.id == Message.author_manager_id)
            .where(Conversation.contact_id == contact_id)
            .options(selectinload(Message.attachments))
            .order_by(Message.id.desc())
            .limit(limit)
        )
        if before_id is not None:
            query = query.where(Message.id < before_id)
        rows = (await self.session.execute(query)).all()
        return [TimelineItem(r[0], r[1], r[2]) for r in reversed(rows)]

    async def message(self, message_id: int) -> Message | None:
        return await self.session.get(Message, message_id)

    # Canned replies

    async def canned_replies(
        self, manager_id: int | None, *, prefix: str | None, limit: int
    ) -> Sequence[CannedReply]:
        """The shared replies and `manager_id`'s own, by shortcut; `prefix` narrows them to
        shortcuts starting with it or titles containing it."""
        query = select(CannedReply).where(
            or_(CannedReply.owner_id.is_(None), CannedReply.owner_id == manager_id)
        )
        if prefix:
            escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(
                or_(
                    func.lower(CannedReply.shortcut).like(escaped.lower() + "%", escape="\\"),
                    contains_any(CannedReply.title, prefix),
                )
            )
        query = query.order_by(CannedReply.shortcut, CannedReply.owner_id.is_(None)).limit(limit)
        return (await self.session.scalars(query)).all()

    async def canned_reply(self, reply_id: int) -> CannedReply | None:
        return await self.session.get(CannedReply, reply_id)

    async def shortcut_taken(
        self, owner_id: int | None, shortcut: str, *, except_id: int | None = None
    ) -> bool:
        query = select(CannedReply.id).where(
            CannedReply.shortcut == shortcut,
            CannedReply.owner_id.is_(None)
            if owner_id is None
            else CannedReply.owner_id == owner_id,
        )
        if except_id is not None:
            query = query.where(CannedReply.id != except_id)
        return (await self.session.scalar(query.limit(1))) is not None

    # Read positions

    async def latest_message_ids(self, conversation_ids: Sequence[int]) -> dict[int, int]:
        """Each conversation's latest inbound message id (those without one are absent)."""
        if not conversation_ids:
            return {}
        rows = await self.session.execute(
            select(Message.conversation_id, func.max(Message.id))
            .where(
                Message.conversation_id.in_(conversation_ids),
                Message.direction == MessageDirection.INBOUND,
            )
            .group_by(Message.conversation_id)
        )
        return {conversation_id: message_id for conversation_id, message_id in rows.all()}

    async def read_positions(
        self, manager_id: int, conversation_ids: Sequence[int]
    ) -> dict[int, int]:
        if not conversation_ids:
            return {}
        rows = await self.session.execute(
            select(ConversationRead.conversation_id, ConversationRead.last_read_message_id).where(
                ConversationRead.manager_id == manager_id,
                ConversationRead.conversation_id.in_(conversation_ids),
            )
        )
        return {conversation_id: message_id for conversation_id, message_id in rows.all()}

    async def latest_message_id(self, conversation_id: int) -> int | None:
        return await self.session.scalar(
            select(func.max(Message.id)).where(Message.conversation_id == conversation_id)
        )

    async def set_read_position(
        self, manager_id: int, conversation_id: int, message_id: int, now: datetime
    ) -> None:
        """Move the manager's read position forward to `message_id` (never back)."""
        dialect = self.session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        table = table_of(ConversationRead)
        statement = insert(table).values(
            manager_id=manager_id,
            conversation_id=conversation_id,
            last_read_message_id=message_id,
            read_at=now,
        )
        statement = statement.on_conflict_do_update(
            index_elements=[table.c.manager_id, table.c.conversation_id],
            set_={
                "last_read_message_id": func.max(
                    table.c.last_read_message_id, statement.excluded.last_read_message_id
                )
                if dialect == "sqlite"
                else func.greatest(
                    table.c.last_read_message_id, statement.excluded.last_read_message_id
                ),
                "read_at": statement.excluded.read_at,
            },
        )
        await self.session.execute(statement)
