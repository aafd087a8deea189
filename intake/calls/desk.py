"""The managers' calls desk: the callbacks to make (overdue first), the recent calls, and
the card a ringing call pops up. Read through the same visibility as the conversations
(intake.calls.desk_repository); marking a callback done is intake.tasks' `complete_task`,
as the API does it. Services flush, never commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import phonenumbers
from sqlalchemy.ext.asyncio import AsyncSession

from intake import tasks
from intake.calls.desk_repository import DeskRepository
from intake.calls.repository import CallRepository
from intake.journal import Page, decode_cursor, decode_time_cursor, encode_time_cursor, page_of
from intake.visibility import Viewer
from storage.errors import NotFound
from storage.models import Call, CallState, Contact, Conversation, Task
from storage.types import utcnow

CURSOR_KIND = "desk-call"
CALLBACKS_PAGE = 50
CARD_CONVERSATIONS = 5
RINGING_FRESH = timedelta(minutes=2)
"""A call still marked ringing that began longer ago is taken for one whose end was lost."""
MAX_RINGING = 20


def shown_number(number: str | None) -> str:
    """A number as people write it (+7 912 345-67-89); what cannot be parsed, as it is."""
    if not number:
        return ""
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return number
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is (or was) on the other end: the contact when known, and the number."""

    contact_id: int | None
    name: str | None
    company: str | None
    number: str  # as people write it; empty when the caller hid it

    @classmethod
    def of(cls, contact: Contact | None, number: str | None) -> Caller:
        return cls(
            contact.id if contact is not None else None,
            contact.name if contact is not None else None,
            contact.company if contact is not None else None,
            shown_number(number),
        )


@dataclass(frozen=True, slots=True)
class CallbackRow:
    """An open callback with the missed call that opened it."""

    task: Task
    caller: Caller
    call: Call | None
    overdue: bool
    conversation_id: int | None  # set when the viewer may open it


@dataclass(frozen=True, slots=True)
class CallRow:
    call: Call
    caller: Caller
    conversation_id: int | None  # set when the viewer may open it


@dataclass(frozen=True, slots=True)
class Callbacks:
    rows: list[CallbackRow]
    total: int  # open callbacks the viewer may see, on every page
    next_cursor: str | None = None  # the next page's, when there is one


async def open_callbacks(
    session: AsyncSession,
    viewer: Viewer,
    now: datetime,
    *,
    cursor: str | None = None,
    limit: int = CALLBACKS_PAGE,
) -> Callbacks:
    """The open tasks `viewer` may see, the longest due first (the overdue ones lead), a
    keyset page of `limit` after `cursor` (InvalidInput for one this did not give)."""
    repo = DeskRepository(session)
    after = decode_time_cursor(cursor) if cursor else None
    found = await repo.open_tasks(viewer, limit + 1, after)
    more = len(found) > limit
    found = found[:limit]
    # All of them on this first page: the count is the page's; else one query counts.
    total = len(found) if after is None and not more else await repo.count_open_tasks(viewer)
    calls = await repo.calls_by_id({t.call_id for t in found if t.call_id is not None})
    contacts = await repo.contacts({t.contact_id for t in found if t.contact_id is not None})
    visible = await repo.visible_among(
        viewer, {t.conversation_id for t in found if t.conversation_id is not None}
    )
    rows = [
        CallbackRow(
            task,
            Caller.of(contacts.get(task.contact_id or 0), task.phone),
            calls.get(task.call_id or 0),
            task.due_at < now,
            task.conversation_id if task.conversation_id in visible else None,
        )
        for task in found
    ]
    next_cursor = encode_time_cursor(found[-1].due_at, found[-1].id) if more else None
    return Callbacks(rows, total, next_cursor)


async def recent_calls(
    session: AsyncSession,
    viewer: Viewer,
    *,
    missed_only: bool = False,
    cursor: str | None = None,
    limit: int = 50,
) -> Page[CallRow]:
    """The calls `viewer` may see, newest first, with an opaque cursor for the next page."""
    repo = DeskRepository(session)
    after_id = decode_cursor(CURSOR_KIND, cursor) if cursor else None
    states = (CallState.MISSED,) if missed_only else ()
    found = await repo.calls(viewer, states, after_id, limit + 1)
    page = page_of(CURSOR_KIND, found, limit, lambda call: call.id)
    contacts = await repo.contacts({c.contact_id for c in page.items if c.contact_id is not None})
    visible = await repo.visible_among(
        viewer, {c.conversation_id for c in page.items if c.conversation_id is not None}
    )
    rows = [
        CallRow(
            call,
            Caller.of(contacts.get(call.contact_id or 0), call.client_number or call.from_number),
            call.conversation_id if call.conversation_id in visible else None,
        )
        for call in page.items
    ]
    return Page(rows, page.next_cursor)


async def complete_callback(
    session: AsyncSession, viewer: Viewer, task_id: int, *, now: datetime, note: str = ""
) -> Task:
    """Mark a task `viewer` may see done (NotFound for one they may not see; Conflict when
    it is closed already)."""
    if await DeskRepository(session).task(viewer, task_id) is None:
        raise NotFound(f"no task {task_id}")
    return await tasks.complete_task(
        session, task_id, manager_id=viewer.manager_id, now=now, note=note
    )


async def ringing_for(
    session: AsyncSession, viewer: Viewer, *, now: datetime | None = None
) -> list[int]:
    """The ids of the calls ringing now (begun within `RINGING_FRESH`) whose ring `viewer`
    heard, oldest first: by the live stream's rule (inbox.web.stream's CallNews), a ring
    offered to managers (the caller's owner, the conversation's assignee, the call's
    manager, those whose phone it rang, by `details["rang"]`) is theirs, one offered to
    nobody belongs to whoever may see its conversation (administrators, without one). A
    tab that opens while the phone rings shows the card too."""
    now = now or utcnow()
    repo = DeskRepository(session)
    calls = await repo.ringing(now - RINGING_FRESH, MAX_RINGING)
    if not calls:
        return []
    contacts = await repo.contacts({c.contact_id for c in calls if c.contact_id is not None})
    conversations = {c.conversation_id for c in calls if c.conversation_id is not None}
    assignees = await repo.assignees(conversations)
    visible = await repo.visible_among(viewer, conversations)
    rang = {str(e) for c in calls for e in (c.details or {}).get("rang", [])}
    at = await CallRepository(session).managers_by_extension(sorted(rang))
    heard = []
    for call in calls:
        contact = contacts.get(call.contact_id) if call.contact_id is not None else None
        offered = {
            contact.owner_id if contact is not None else None,
            assignees.get(call.conversation_id) if call.conversation_id is not None else None,
            call.manager_id,
            *(at.get(str(e)) for e in (call.details or {}).get("rang", [])),
        } - {None}
        if offered:
            seen = viewer.manager_id in offered
        elif call.conversation_id is not None:
            seen = call.conversation_id in visible
        else:
            seen = viewer.is_admin
        if seen:
            heard.append(call.id)
    return heard


@dataclass(frozen=True, slots=True)
class RingingCard:
    """What a manager's screen shows while the phone rings: who calls, their open
    conversations and when they were last in touch."""

    call: Call
    caller: Caller
    conversations: list[Conversation]
    last_contact: datetime | None


async def ringing_card(
    session: AsyncSession, viewer: Viewer, call_id: int, *, extension: str | None = None
) -> RingingCard:
    """The card of a call `viewer` may see, owns the caller of, or whose phone (their
    `extension`) it rang; NotFound otherwise."""
    repo = DeskRepository(session)
    call = await repo.call(viewer, call_id, owned=True)
    if call is None and extension:
        rung = await repo.call(Viewer(None, is_admin=True), call_id)
        if rung is not None and extension in (rung.details or {}).get("rang", []):
            call = rung
    if call is None:
        raise NotFound(f"no call {call_id}")
    contact = None
    conversations: list[Conversation] = []
    last_contact = None
    if call.contact_id is not None:
        contact = (await repo.contacts([call.contact_id])).get(call.contact_id)
        conversations = await repo.open_conversations(viewer, call.contact_id, CARD_CONVERSATIONS)
        last_contact = await repo.last_contact(
            viewer, call.contact_id, call.started_at, call.message_id
        )
    return RingingCard(
        call,
        Caller.of(contact, call.client_number or call.from_number),
        conversations,
        last_contact,
    )
