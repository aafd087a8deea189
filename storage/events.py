"""The event catalogue: every outbox topic, once, with its typed payload.

An event is a frozen dataclass declared with its topic
(``class ConversationOpened(Event, topic="conversation.opened")``). `emit()` takes
one (storage.outbox), handler tables are keyed by its type, the outbox worker
parses each stored row into it once before dispatch (`parse`), and the bus carries
its payload (storage.bus.publish_event), so every consumer reads the same fields.

The stored JSON is the contract with rows already in outboxes: `payload()` writes
exactly the keys these events have always had (a field's key may differ from its
name, `key("from")`; a field marked `omitted_when_none()` is left out rather than
written as null), and `parse` reads them back, ignoring keys it does not know.

Events nothing consumes but the bus (live updates of open pages, the pollers'
channel changes) are declared ``bus_only=True``; every other event has an outbox
handler (tests/storage/test_events.py checks both against the handler tables).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar, Union

__all__ = [
    "CATALOGUE",
    "Event",
    "UnknownTopic",
    "key",
    "omitted_when_none",
    "parse",
]

E = TypeVar("E", bound="Event")

CATALOGUE: dict[str, type[Event]] = {}
"""Topic -> event type, for every event declared."""


class UnknownTopic(LookupError):
    """A stored event's topic is in no catalogue (written by another version)."""


def key(name: str) -> Any:
    """A field stored under another key than its name (``from``, a Python keyword)."""
    return field(metadata={"key": name})


def omitted_when_none(*, stored_as: str | None = None) -> Any:
    """An optional field left out of the stored JSON when None (as it always was)."""
    metadata: dict[str, Any] = {"omit_none": True}
    if stored_as is not None:
        metadata["key"] = stored_as
    return field(default=None, metadata=metadata)


@dataclass(frozen=True, kw_only=True)
class Event:
    """One outbox event; subclasses declare `topic` (and `bus_only`) as class arguments."""

    topic: ClassVar[str]
    bus_only: ClassVar[bool] = False

    def __init_subclass__(cls, *, topic: str | None = None, bus_only: bool = False) -> None:
        super().__init_subclass__()
        if topic is None:
            return  # a base that shares fields between events
        if topic in CATALOGUE:
            raise TypeError(f"topic {topic!r} is declared twice")
        cls.topic = topic
        cls.bus_only = bus_only
        CATALOGUE[topic] = cls

    def payload(self) -> dict[str, Any]:
        """The stored JSON object."""
        codec = _codec(type(self))
        out = {key: getattr(self, name) for name, key in codec.plain}
        for name, key in codec.listed:
            out[key] = list(getattr(self, name))
        for name, key in codec.omitted:
            value = getattr(self, name)
            if value is not None:
                out[key] = value
        return out

    @classmethod
    def from_payload(cls: type[E], payload: Mapping[str, Any]) -> E:
        """The event as stored; raises KeyError, TypeError or ValueError on a bad payload."""
        values: dict[str, Any] = {}
        for name, key, convert, required in _codec(cls).reads:
            if key in payload:
                values[name] = convert(payload[key])
            elif required:
                raise KeyError(f"{cls.topic} event without {key!r}")
        return cls(**values)


def parse(topic: str, payload: Mapping[str, Any]) -> Event:
    """A stored event as its catalogue type; raises UnknownTopic for a topic none declares."""
    kind = CATALOGUE.get(topic)
    if kind is None:
        raise UnknownTopic(f"no event is declared for topic {topic!r}")
    return kind.from_payload(payload)


# -- the JSON codec, built once per event type from its fields' annotations --------------

Convert = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class _Codec:
    plain: tuple[tuple[str, str], ...]  # (field, key) written as they are
    listed: tuple[tuple[str, str], ...]  # tuples, written as JSON arrays
    omitted: tuple[tuple[str, str], ...]  # left out when None
    reads: tuple[tuple[str, str, Convert, bool], ...]  # (field, key, convert, required)


_CODECS: dict[type[Event], _Codec] = {}


def _codec(kind: type[Event]) -> _Codec:
    codec = _CODECS.get(kind)
    if codec is None:
        hints = typing.get_type_hints(kind)
        plain, listed, omitted, reads = [], [], [], []
        for f in dataclasses.fields(kind):
            key = f.metadata.get("key", f.name)
            hint = hints[f.name]
            if f.metadata.get("omit_none"):
                omitted.append((f.name, key))
            elif typing.get_origin(hint) is tuple:
                listed.append((f.name, key))
            else:
                plain.append((f.name, key))
            required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            reads.append((f.name, key, _converter(hint), required))
        codec = _CODECS[kind] = _Codec(tuple(plain), tuple(listed), tuple(omitted), tuple(reads))
    return codec


def _converter(hint: Any) -> Convert:
    """Check and convert one JSON value to the annotated type (int, str, bool, None,
    tuple[X, ...], dict, Any and their unions with None)."""
    if hint is Any:
        return _as_is
    if hint in _SCALARS:
        return _SCALARS[hint]
    origin = typing.get_origin(hint)
    arguments = typing.get_args(hint)
    if origin in (Union, types.UnionType) and len(arguments) == 2 and type(None) in arguments:
        inner = _converter(next(a for a in arguments if a is not type(None)))
        return lambda value: None if value is None else inner(value)
    if origin is tuple and len(arguments) == 2 and arguments[1] is Ellipsis:
        item = _converter(arguments[0])
        return lambda value: tuple(item(v) for v in _sequence(value))
    if origin is dict or hint is dict:
        return _object
    raise TypeError(f"an event field cannot be {hint!r}")


def _as_is(value: Any) -> Any:
    return value


def _int(value: Any) -> int:
    if type(value) is int:
        return value
    if isinstance(value, str):
        return int(value)  # ValueError if it is no number
    raise TypeError(f"{value!r} is not an integer")


def _str(value: Any) -> str:
    if isinstance(value, str):
        return str(value)
    raise TypeError(f"{value!r} is not a string")


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise TypeError(f"{value!r} is not a boolean")


_SCALARS: dict[Any, Convert] = {int: _int, str: _str, bool: _bool}


def _sequence(value: Any) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise TypeError(f"{value!r} is not a list")
    return list(value)


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"{value!r} is not an object")
    return dict(value)


# -- the catalogue ----------------------------------------------------------------------
# Grouped by what the event is about. Ids are the rows' ids; times are ISO 8601 strings
# as they were written (timers compare them with the row's current due time). Where a
# handler has always read a key as optional, the field has that default, so rows written
# before the key existed are still read.


# Channels


@dataclass(frozen=True, kw_only=True)
class ChannelChanged(Event, topic="channel.changed", bus_only=True):
    """A channel's settings or activity changed (not its status): every process's
    pollers start, restart or stop its poller (channels.supervision)."""

    channel_id: int
    kind: str


@dataclass(frozen=True, kw_only=True)
class EmailQuarantined(Event, topic="email.quarantined", bus_only=True):
    channel_id: int
    quarantine_id: int
    reason: str


# Contacts and leads


@dataclass(frozen=True, kw_only=True)
class ContactMergeSuggested(Event, topic="contact.merge_suggested", bus_only=True):
    contact_id: int
    other_contact_id: int


@dataclass(frozen=True, kw_only=True)
class ContactMerged(Event, topic="contact.merged", bus_only=True):
    """A manager merged `merged_contact_id` into `contact_id` (record `merge_id`)."""

    contact_id: int
    merged_contact_id: int
    merge_id: int
    conversation_ids: tuple[int, ...] = ()
    manager_id: int | None = None
    token_id: int | None = None


@dataclass(frozen=True, kw_only=True)
class ContactChanged(Event, topic="contact.changed", bus_only=True):
    """A contact's name, company or notes were edited: open contact panels show it again."""

    contact_id: int


@dataclass(frozen=True, kw_only=True)
class ConversationRefs(Event):
    """The ids ingest writes on its events."""

    conversation_id: int
    contact_id: int
    channel_id: int


@dataclass(frozen=True, kw_only=True)
class LeadCreated(ConversationRefs, topic="lead.created", bus_only=True):
    lead_id: int
    source: str


@dataclass(frozen=True, kw_only=True)
class LeadStatusChanged(Event, topic="lead.status_changed", bus_only=True):
    lead_id: int
    from_: str = key("from")
    to: str
    actor: dict[str, Any]  # {"manager_id": ..., "token_id": ...}


# Conversations and messages


class ConversationOpened(ConversationRefs, topic="conversation.opened"):
    """A client's first message opened a conversation (machine mail opens none)."""


@dataclass(frozen=True, kw_only=True)
class MessageReceived(ConversationRefs, topic="message.received"):
    message_id: int
    continues: bool = True  # False for a conversation's first message
    automatic: bool = False

    def payload(self) -> dict[str, Any]:
        out = super().payload()
        if not self.automatic:
            del out["automatic"]  # written only for machine mail
        return out


@dataclass(frozen=True, kw_only=True)
class ConversationClosed(Event, topic="conversation.closed"):
    conversation_id: int
    manager_id: int | None = None  # the assignee, whose capacity is freed
    closed_by: int | None = None


@dataclass(frozen=True, kw_only=True)
class ConversationSnoozed(Event, topic="conversation.snoozed", bus_only=True):
    """A manager put the conversation aside until `until` (ISO time, UTC)."""

    conversation_id: int
    until: str
    manager_id: int | None = None  # the assignee
    snoozed_by: int | None = None


@dataclass(frozen=True, kw_only=True)
class SnoozeDue(Event, topic="conversation.snooze_due"):
    """Timer: a snooze ends (only the snooze that ends at `until` wakes the conversation)."""

    conversation_id: int
    until: str


@dataclass(frozen=True, kw_only=True)
class SnoozeEnded(Event, topic="conversation.snooze_ended"):
    """A snooze ran out and the conversation is open again: its assignee is told as of any
    other news of theirs (routing.notify: the live stream, email, the managers' bot)."""

    conversation_id: int
    manager_id: int  # the assignee


@dataclass(frozen=True, kw_only=True)
class ConversationPending(Event, topic="conversation.pending", bus_only=True):
    """A manager marked the conversation as waiting for the client."""

    conversation_id: int
    manager_id: int | None = None  # the assignee
    marked_by: int | None = None


@dataclass(frozen=True, kw_only=True)
class ConversationReopened(Event, topic="conversation.reopened", bus_only=True):
    """The conversation is open again: `reason` is `manager` (reopened by hand, `reopened_by`),
    `snooze_ended` or `client_wrote`; `from_` the status it left."""

    conversation_id: int
    from_: str = key("from")
    reason: str
    manager_id: int | None = None  # the assignee, told over the live stream
    reopened_by: int | None = None


@dataclass(frozen=True, kw_only=True)
class MessageRef(Event):
    conversation_id: int
    message_id: int
    channel_id: int


class MessageEdited(MessageRef, topic="message.edited", bus_only=True):
    pass


@dataclass(frozen=True, kw_only=True)
class MessageOutbound(MessageRef, topic="message.outbound"):
    """A reply (or a system message) waits in the queue for the delivery worker."""

    manager_id: int | None


@dataclass(frozen=True, kw_only=True)
class NoteAdded(MessageRef, topic="message.note_added", bus_only=True):
    manager_id: int | None


@dataclass(frozen=True, kw_only=True)
class NoteMentioned(MessageRef, topic="note.mentioned"):
    """A note mentions a manager (`manager_id`), who is notified; `author_id` wrote it."""

    manager_id: int
    author_id: int | None


class MessageSent(MessageRef, topic="message.sent", bus_only=True):
    pass


@dataclass(frozen=True, kw_only=True)
class MessageFailed(MessageRef, topic="message.failed", bus_only=True):
    reason: str | None


@dataclass(frozen=True, kw_only=True)
class MessageDelayed(MessageRef, topic="message.delayed", bus_only=True):
    """A bounce said delivery is delayed, not failed."""

    reason: str | None


# Routing


@dataclass(frozen=True, kw_only=True)
class Decided(Event):
    """An event written with a routing decision: routing's `record()` adds the new
    assignment's id to the stored JSON in the statement that creates it."""

    conversation_id: int
    assignment_id: int | None = omitted_when_none()


@dataclass(frozen=True, kw_only=True)
class ConversationAssigned(Decided, topic="conversation.assigned"):
    manager_id: int
    queue_id: int | None = None
    reason: str = ""  # an AssignmentReason
    explanation: str | None = None


@dataclass(frozen=True, kw_only=True)
class ConversationOffered(Decided, topic="conversation.offered"):
    queue_id: int | None = None
    manager_ids: tuple[int, ...] = ()


@dataclass(frozen=True, kw_only=True)
class ConversationWaiting(Decided, topic="conversation.waiting", bus_only=True):
    queue_id: int | None
    reason: str


class RoutingRetry(Decided, topic="routing.retry"):
    """Timer: try a waiting conversation again (only the wait it was armed for)."""


class ForwardDue(Decided, topic="routing.forward_due"):
    """Timer: strict order, the manager has not answered in time."""


@dataclass(frozen=True, kw_only=True)
class SlaDue(Decided, topic="sla.due"):
    """Timer: a response target (`kind`: first_response, next_response) falls due."""

    kind: str
    due_at: str


@dataclass(frozen=True, kw_only=True)
class SlaClock(Decided, topic="conversation.sla_clock", bus_only=True):
    """Timer for the open lists: a response target due at `due_at` comes within the "due
    soon" window (`at`: soon) or falls due (`at`: due). Only the bus hears it: the live
    stream sorts the conversation into its views again, so a row moves between "due soon"
    and "breached" as time passes. A stale or repeated tick only refreshes a list."""

    due_at: str
    at: str


@dataclass(frozen=True, kw_only=True)
class SlaBreached(Event, topic="sla.breached"):
    conversation_id: int
    kind: str = "first_response"
    due_at: str | None = None
    manager_id: int | None = None  # the assignee
    queue_id: int | None = None
    supervisor_id: int | None = None  # the queue's


@dataclass(frozen=True, kw_only=True)
class QueueChanged(Event, topic="routing.queue_changed"):
    queue_id: int


@dataclass(frozen=True, kw_only=True)
class PresenceChanged(Event, topic="manager.presence_changed"):
    manager_id: int
    from_: str = key("from")
    to: str


@dataclass(frozen=True, kw_only=True)
class CapacityChanged(Event, topic="manager.capacity_changed"):
    manager_id: int


@dataclass(frozen=True, kw_only=True)
class NotificationRetry(Event, topic="notification.retry"):
    """Timer: one notifier failed to send a notification; it alone tries again."""

    notifier: str
    notification: dict[str, Any]  # routing.notify.Notification's fields


# Claims


@dataclass(frozen=True, kw_only=True)
class ClaimEvent(Event):
    claim_id: int
    number: str
    contact_id: int
    conversation_id: int | None
    channel_id: int


class ClaimFiled(ClaimEvent, topic="claim.filed", bus_only=True):
    pass


@dataclass(frozen=True, kw_only=True)
class ClaimStatusChanged(ClaimEvent, topic="claim.status_changed"):
    from_: str = key("from")
    to: str
    manager_id: int | None
    comment: str | None
    notify: bool = True  # False: the client is not told


@dataclass(frozen=True, kw_only=True)
class ClaimStepAdded(ClaimEvent, topic="claim.step_added", bus_only=True):
    step_id: int
    manager_id: int | None


@dataclass(frozen=True, kw_only=True)
class ClaimStepDone(ClaimEvent, topic="claim.step_done", bus_only=True):
    step_id: int
    manager_id: int | None


@dataclass(frozen=True, kw_only=True)
class ClaimUpdated(ClaimEvent, topic="claim.updated", bus_only=True):
    changed: dict[str, Any]  # field -> new value (the resolution: True)
    by: int | None


@dataclass(frozen=True, kw_only=True)
class ClaimRated(ClaimEvent, topic="claim.rated", bus_only=True):
    rating: int | None


# Calls


@dataclass(frozen=True, kw_only=True)
class CallEvent(Event):
    """The call as events carry it, with the contact card a manager's screen shows."""

    call_id: int
    channel_id: int
    direction: str
    state: str
    from_: str = key("from")  # as the provider sent them
    to: str
    number: str | None  # the client's, in E.164
    contact_id: int | None
    conversation_id: int | None
    manager_id: int | None
    contact: dict[str, Any] | None


@dataclass(frozen=True, kw_only=True)
class CallRinging(CallEvent, topic="call.ringing"):
    manager_ids: tuple[int, ...] = ()  # whose screens pop


@dataclass(frozen=True, kw_only=True)
class CallAnswered(CallEvent, topic="call.answered"):
    manager_ids: tuple[int, ...] = ()


@dataclass(frozen=True, kw_only=True)
class CallEnded(CallEvent, topic="call.ended", bus_only=True):
    wait_seconds: int | None
    talk_seconds: int | None
    end_reason: str | None
    forwarded: bool


@dataclass(frozen=True, kw_only=True)
class NumberBlocked(Event, topic="telephony.number_blocked", bus_only=True):
    number: str
    manager_id: int | None


# Tasks


@dataclass(frozen=True, kw_only=True)
class TaskEvent(Event):
    task_id: int
    kind: str
    status: str
    assignee_id: int | None
    contact_id: int | None
    conversation_id: int | None
    call_id: int | None
    phone: str | None
    count: int
    due_at: str


class TaskCreated(TaskEvent, topic="task.created", bus_only=True):
    pass


class TaskUpdated(TaskEvent, topic="task.updated", bus_only=True):
    pass


class TaskAssigned(TaskEvent, topic="task.assigned", bus_only=True):
    pass


@dataclass(frozen=True, kw_only=True)
class TaskClosed(TaskEvent, topic="task.closed", bus_only=True):
    """Closed by an answered call (`closed_by_call_id`) or by a manager (whose id is
    written even when unknown, as null)."""

    closed_by_call_id: int | None = omitted_when_none()
    closed_by_manager_id: int | None = None

    def payload(self) -> dict[str, Any]:
        out = super().payload()
        if self.closed_by_call_id is not None:
            del out["closed_by_manager_id"]
        return out


@dataclass(frozen=True, kw_only=True)
class TaskOverdue(TaskEvent, topic="task.overdue", bus_only=True):
    overdue_at: str


@dataclass(frozen=True, kw_only=True)
class TaskDue(Event, topic="task.due"):
    """Timer: the task's due time; `due_at` None checks it whatever its due time."""

    task_id: int
    due_at: str | None = None
