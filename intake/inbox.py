"""The managers' workspace as a service: list views, counts, a conversation and its contact's
timeline, and which views a change touches (for the live stream).

A view is named by a slug that is also its URL: `mine`, `unassigned`, `open`, `sla-soon`,
`sla-breached`, `claims`, `queue-<id>`, `channel-<id>`, `status-<status>`. Lists are sorted
by last activity (the last message, else the creation) or by SLA due (the nearest response
target first) with a keyset cursor on (sort key, id), so a walk never repeats or skips a row
and there is no page cap. Services read; they never commit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement
from sqlalchemy.ext.asyncio import AsyncSession

from intake.inbox_repository import (
    NO_SLA,
    OPEN_STATUSES,
    SLA_SOON,
    SORTS,
    Counts,
    InboxRepository,
    LastMessage,
    ListRow,
    TimelineItem,
    has_claim,
    sla_breached,
    sla_soon,
)
from intake.journal import Page, decode_time_cursor, encode_time_cursor
from intake.search import SnippetPart, search
from intake.visibility import Viewer
from storage.errors import InvalidInput, NotFound
from storage.models import Contact, Conversation, ConversationStatus, Message
from storage.types import utcnow

__all__ = [
    "SORTS",
    "ConversationState",
    "ConversationView",
    "Counts",
    "InboxList",
    "LastMessage",
    "ListRow",
    "Navigation",
    "TimelineItem",
    "View",
    "Viewer",
    "conversation_state",
    "conversation_view",
    "inbox_list",
    "navigation",
    "parse_view",
    "viewer_queues",
    "views_of",
    "visible_conversation",
    "visible_message",
]

PAGE_SIZE = 50
TIMELINE_SIZE = 200
_VIEW = re.compile(
    r"(mine|unassigned|open|sla-soon|sla-breached|claims)"
    r"|(queue|channel)-([0-9]{1,18})|status-([a-z]{1,20})"
)


@dataclass(frozen=True, slots=True)
class View:
    """A list view: its kind (`mine`, `unassigned`, `open`, `sla-soon`, `sla-breached`,
    `claims`, `queue`, `channel`, `status`) and, for the last three, the queue id, channel
    id or status."""

    kind: str
    value: str | None = None

    @property
    def slug(self) -> str:
        return self.kind if self.value is None else f"{self.kind}-{self.value}"

    def condition(self, viewer: Viewer, now: datetime | None = None) -> ColumnElement[bool]:
        is_open = Conversation.status.in_(OPEN_STATUSES)
        now = now or utcnow()
        if self.kind == "mine":
            if viewer.manager_id is None:
                return Conversation.id.is_(None)
            return is_open & (Conversation.assignee_id == viewer.manager_id)
        if self.kind == "unassigned":
            return is_open & Conversation.assignee_id.is_(None)
        if self.kind == "queue":
            return is_open & (Conversation.queue_id == int(self.value or 0))
        if self.kind == "channel":
            return is_open & (Conversation.channel_id == int(self.value or 0))
        if self.kind == "status":
            return Conversation.status == self.value
        if self.kind == "sla-soon":
            return sla_soon(now)
        if self.kind == "sla-breached":
            return sla_breached(now)
        if self.kind == "claims":
            return is_open & has_claim()
        return is_open


def parse_view(slug: str) -> View:
    """The view a slug names; NotFound for one that names none."""
    match = _VIEW.fullmatch(slug)
    if match is None:
        raise NotFound(f"no view {slug!r}")
    fixed, kind, number, status = match.groups()
    if fixed:
        return View(fixed)
    if kind:
        return View(kind, str(int(number)))
    if status not in {s.value for s in ConversationStatus}:
        raise NotFound(f"no view {slug!r}")
    return View("status", status)


@dataclass(frozen=True, slots=True)
class ConversationState:
    """What decides a conversation's views: its status, assignee, queue and channel, the
    SLA target it runs against and whether it has a claim."""

    id: int
    status: str
    assignee_id: int | None
    queue_id: int | None
    channel_id: int
    sla_due_at: datetime | None = None
    has_claim: bool = False


def views_of(
    conversation: ConversationState,
    viewer: Viewer,
    queue_ids: frozenset[int],
    now: datetime | None = None,
) -> list[str]:
    """The slugs of the views `conversation` now belongs to for `viewer` at `now` (none when
    the viewer may not see it): what the live stream tells each tab."""
    mine = viewer.manager_id is not None and conversation.assignee_id == viewer.manager_id
    if not (
        viewer.is_admin
        or mine
        or conversation.assignee_id is None
        or conversation.queue_id in queue_ids
    ):
        return []
    slugs = [f"status-{conversation.status}"]
    if conversation.status in OPEN_STATUSES:
        slugs += ["open", f"channel-{conversation.channel_id}"]
        if conversation.queue_id is not None:
            slugs.append(f"queue-{conversation.queue_id}")
        if mine:
            slugs.append("mine")
        if conversation.assignee_id is None:
            slugs.append("unassigned")
        if conversation.has_claim:
            slugs.append("claims")
        due = conversation.sla_due_at
        if conversation.status == ConversationStatus.OPEN and due is not None:
            now = now or utcnow()
            if due < now:
                slugs.append("sla-breached")
            elif due < now + SLA_SOON:
                slugs.append("sla-soon")
    return slugs


def _encode_cursor(row: ListRow, sort: str) -> str:
    at = row.activity_at if sort == "activity" else (row.sla_due_at or NO_SLA)
    return encode_time_cursor(at, row.conversation.id)


@dataclass(frozen=True, slots=True)
class InboxList:
    page: Page[ListRow]
    last_messages: dict[int, LastMessage]


async def inbox_list(
    session: AsyncSession,
    viewer: Viewer,
    view: View,
    cursor: str | None = None,
    limit: int = PAGE_SIZE,
    sort: str = "activity",
) -> InboxList:
    """One page of a view, latest activity first (or `sort="sla"`: the nearest SLA target
    first), in two queries whatever its size; a cursor holds for the sort that gave it."""
    if sort not in SORTS:
        raise InvalidInput(f"no sort {sort!r}", code="invalid_sort")
    repo = InboxRepository(session)
    after = decode_time_cursor(cursor) if cursor else None
    rows = await repo.list_page(
        viewer, view.condition(viewer), after=after, limit=limit + 1, sort=sort
    )
    more = len(rows) > limit
    rows = rows[:limit]
    last = await repo.last_messages([row.conversation.id for row in rows])
    return InboxList(Page(rows, _encode_cursor(rows[-1], sort) if more else None), last)


@dataclass(frozen=True, slots=True)
class SearchRow:
    """A search result as the list shows it: the row and its latest matching fragment."""

    row: ListRow
    snippet: tuple[SnippetPart, ...]


async def search_list(
    session: AsyncSession,
    viewer: Viewer,
    query: str,
    cursor: str | None = None,
    limit: int = PAGE_SIZE,
) -> Page[SearchRow]:
    """One page of `intake.search.search` (latest match first, only what `viewer` may see)
    as list rows; InvalidInput for a query or cursor it refuses."""
    found = await search(session, viewer, query, cursor, limit)
    ids = [hit.row.conversation.id for hit in found.items]
    rows = await InboxRepository(session).list_page(
        viewer, Conversation.id.in_(ids), after=None, limit=max(len(ids), 1)
    )
    by_id = {row.conversation.id: row for row in rows}
    return Page(
        [
            SearchRow(by_id[hit.row.conversation.id], hit.snippet)
            for hit in found.items
            if hit.row.conversation.id in by_id
        ],
        found.next_cursor,
    )


@dataclass(frozen=True, slots=True)
class Navigation:
    counts: Counts
    queues: list[tuple[int, str]]
    channels: list[tuple[int, str, str]]


async def navigation(session: AsyncSession, viewer: Viewer) -> Navigation:
    """The views column: the viewer's queues, the channels and every view's count."""
    repo = InboxRepository(session)
    return Navigation(
        await repo.counts(viewer, utcnow()), await repo.queues(viewer), await repo.channels()
    )


@dataclass(frozen=True, slots=True)
class ConversationView:
    row: ListRow
    contact: Contact
    identities: list[tuple[str, str]]
    timeline: list[TimelineItem]
    # The claims filed from this conversation (their numbers): whoever sees the
    # conversation sees them (intake.claims.repository.claims_visible_to).
    claims: list[str]


async def visible_conversation(
    session: AsyncSession, viewer: Viewer, conversation_id: int
) -> ListRow:
    """The conversation if `viewer` may see it; NotFound otherwise (never a hint it exists)."""
    row = await InboxRepository(session).visible_conversation(viewer, conversation_id)
    if row is None:
        raise NotFound(f"no conversation {conversation_id}")
    return row


async def visible_message(session: AsyncSession, viewer: Viewer, message_id: int) -> Message:
    """A message of a conversation `viewer` may see; NotFound otherwise."""
    message = await InboxRepository(session).message(message_id)
    if message is None:
        raise NotFound(f"no message {message_id}")
    await visible_conversation(session, viewer, message.conversation_id)
    return message


async def conversation_view(
    session: AsyncSession, viewer: Viewer, conversation_id: int
) -> ConversationView:
    """A conversation with its contact and the contact's timeline across channels."""
    repo = InboxRepository(session)
    row = await visible_conversation(session, viewer, conversation_id)
    contact_id = row.conversation.contact_id
    contact = await repo.contact(contact_id)
    assert contact is not None  # foreign key
    return ConversationView(
        row,
        contact,
        await repo.identities(contact_id),
        await repo.timeline(contact_id, before_id=None, limit=TIMELINE_SIZE),
        await repo.claim_numbers(conversation_id),
    )


async def conversation_state(
    session: AsyncSession, conversation_id: int
) -> ConversationState | None:
    """The conversation as stored now, for sorting a live event into views."""
    found = await InboxRepository(session).conversation_state(conversation_id)
    if found is None:
        return None
    conversation, claimed = found
    due = (
        conversation.first_response_due_at
        if conversation.first_response_at is None
        else conversation.next_response_due_at
    )
    return ConversationState(
        conversation.id,
        conversation.status,
        conversation.assignee_id,
        conversation.queue_id,
        conversation.channel_id,
        due,
        claimed,
    )


async def viewer_queues(session: AsyncSession, viewer: Viewer) -> frozenset[int]:
    """The ids of the queues the viewer works in."""
    return frozenset(queue_id for queue_id, _ in await InboxRepository(session).queues(viewer))
