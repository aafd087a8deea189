"""A transaction's worth of call events prepared set-at-a-time: the calls locked in one
query, the new ones created together, their callers taken in with one `ingest_batch`, the
managers named looked up at once. What a row the book misses costs is one query."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from intake.batch import ingest_batch
from intake.calls.events import (
    CallChannel,
    CallEvent,
    agent_of,
    blocklist_key,
    build_call,
    client_number,
    inbound_message,
    key_of,
    reject,
)
from intake.calls.repository import CallRepository, TaskRepository
from intake.ingest import IntakeConfig
from intake.schemas import InboundMessage
from storage.errors import HubError
from storage.models import Call, CallDirection, CallState, Contact, Conversation, Task


@dataclass
class CallBook:
    """What one transaction's events need, loaded set-at-a-time by `prepare_calls` (rows
    it misses are queried one by one); the message lines are written by `finish_calls`."""

    repo: CallRepository
    calls: dict[tuple[int, str], Call] = field(default_factory=dict)
    fresh: set[tuple[int, str]] = field(default_factory=set)  # created, no event applied yet
    blocked: dict[str, bool] = field(default_factory=dict)
    managers: dict[str, int | None] = field(default_factory=dict)  # agent -> manager id
    extensions: dict[str, int | None] = field(default_factory=dict)
    lead_ids: dict[int, int | None] = field(default_factory=dict)  # call id -> new lead
    written: dict[int, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    lines: dict[int, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    # phone -> its open tasks, for the numbers of the batch (see intake.tasks).
    open_tasks: dict[str, list[Task]] = field(default_factory=dict)
    # Held here: the session's identity map keeps only weak references.
    contacts: dict[int, Contact] = field(default_factory=dict)
    conversations: dict[int, Conversation] = field(default_factory=dict)
    new_tasks: list[Task] = field(default_factory=list)  # to flush and announce at the end

    async def contact(self, contact_id: int | None) -> Contact | None:
        if contact_id is None:
            return None
        if contact_id not in self.contacts:
            found = await self.repo.session.get(Contact, contact_id)
            if found is None:
                return None
            self.contacts[contact_id] = found
        return self.contacts[contact_id]

    async def conversation(self, conversation_id: int | None) -> Conversation | None:
        if conversation_id is None:
            return None
        if conversation_id not in self.conversations:
            found = await self.repo.session.get(Conversation, conversation_id)
            if found is None:
                return None
            self.conversations[conversation_id] = found
        return self.conversations[conversation_id]

    async def is_blocked(self, key: str) -> bool:
        if key not in self.blocked:
            self.blocked[key] = await self.repo.is_blocked([key])
        return self.blocked[key]

    async def manager_named(self, agent: str, phone: str | None) -> int | None:
        if agent not in self.managers:
            manager = await self.repo.active_manager_named([agent], [phone] if phone else [])
            self.managers[agent] = manager.id if manager is not None else None
        return self.managers[agent]

    async def managers_at(self, extensions: Sequence[str]) -> list[int]:
        missing = [e for e in extensions if e not in self.extensions]
        if missing:
            found = await self.repo.managers_by_extension(missing)
            for extension in missing:
                self.extensions[extension] = found.get(extension)
        return sorted({m for e in extensions if (m := self.extensions[e]) is not None})

    def write_line(self, message_id: int, text: str, meta: dict[str, Any]) -> None:
        self.lines[message_id] = (text, meta)


async def prepare_calls(
    session: AsyncSession,
    items: Sequence[tuple[CallChannel, CallEvent]],
    config: IntakeConfig,
    now: datetime,
) -> CallBook:
    """Load (and lock) the calls of a batch of events, create the new ones, take their
    callers in with one `ingest_batch`, and look up the managers they name."""
    repo = CallRepository(session)
    book = CallBook(repo)
    region = config.default_region
    keys = sorted({key_of(channel, event) for channel, event in items})
    book.calls = await repo.lock_calls(keys)
    firsts: dict[tuple[int, str], tuple[CallChannel, CallEvent]] = {}
    for channel, event in items:
        firsts.setdefault(key_of(channel, event), (channel, event))
    new = {key: first for key, first in firsts.items() if key not in book.calls}
    callers = {
        key: blocklist_key(event.from_number, region)
        for key, (_, event) in new.items()
        if (event.direction or CallDirection.INBOUND) == CallDirection.INBOUND
    }
    blocked = await repo.blocked_among({k for k in callers.values() if k is not None})
    book.blocked = {k: k in blocked for k in callers.values() if k is not None}
    for key, (_channel, event) in new.items():
        call = build_call(key, event, event.at or now, region)
        caller = callers.get(key)
        if caller is not None and book.blocked[caller]:
            reject(call, event.at or now)
        book.calls[key] = call
        book.fresh.add(key)
        session.add(call)
    if new:
        await session.flush()
    await _take_in_batch(session, book, firsts, config)
    agents = {agent_of(e.agent) for _, e in items if e.agent}
    if agents:
        phones = {a: client_number(a, region) for a in agents if any(c.isdigit() for c in a)}
        book.managers = await repo.managers_named(agents, phones)
    rung = {agent for _, event in items for agent in event.ringing}
    if rung:
        found = await repo.managers_by_extension(sorted(rung))
        book.extensions = {extension: found.get(extension) for extension in rung}
    book.contacts, book.conversations = await repo.people_of(book.calls.values())
    numbers = {c.client_number for c in book.calls.values() if c.client_number is not None}
    book.open_tasks = await TaskRepository(session).open_for_phones(numbers)
    return book


async def finish_calls(book: CallBook) -> None:
    """Write the calls' lines in their conversations (once per message) and flush."""
    await book.repo.set_messages(
        {i: line for i, line in book.lines.items() if book.written.get(i) != line}
    )
    await book.repo.session.flush()


async def _take_in_batch(
    session: AsyncSession,
    book: CallBook,
    firsts: dict[tuple[int, str], tuple[CallChannel, CallEvent]],
    config: IntakeConfig,
) -> None:
    """The callers of new inbound calls become contacts and messages, set-at-a-time."""
    taken: list[tuple[Call, CallChannel]] = []
    messages: list[InboundMessage] = []
    for key, (channel, _event) in firsts.items():
        call = book.calls[key]
        if (
            call.contact_id is not None
            or call.client_number is None
            or call.state == CallState.REJECTED
            or call.direction != CallDirection.INBOUND
        ):
            continue
        taken.append((call, channel))
        messages.append(inbound_message(channel, call))
    if not messages:
        return
    outcomes = await ingest_batch(session, messages, config)
    for (call, _channel), message, outcome in zip(taken, messages, outcomes, strict=True):
        if isinstance(outcome, HubError):
            raise outcome
        call.contact_id = outcome.contact_id
        call.conversation_id = outcome.conversation_id
        call.message_id = outcome.message_id
        book.lead_ids[call.id] = outcome.lead_id
        book.written[outcome.message_id] = (message.text, message.meta)
