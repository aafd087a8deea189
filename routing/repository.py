"""The queries routing needs, safe with many workers.

These serve decisions taken one conversation at a time (retries, managers coming
online, transfers, people acting); new conversations are routed in batches
(`routing.batch`). A decision takes few round trips: the conversation's row comes
locked with its contact, channel, lead, default queue and the rules' version; the
queue's members come with their open-conversation counts and absences, read without
locks; and everything the decision writes goes in one statement on PostgreSQL
(`record`).

The members are not locked: a worker would otherwise hold every member of the queue
until it commits, and the locks themselves cost more than the rest of the reading.
The decision is written only if the chosen manager's row is still the version that
was read (PostgreSQL's xmin; every assignment writes the manager's row), else
nothing is written and the decision is taken again (`RowChanged`). So no manager
gets more than capacity, whatever the number of workers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from copy import copy
from dataclasses import dataclass, fields
from datetime import datetime
from itertools import islice
from typing import Any, ClassVar

from sqlalchemy import (
    CTE,
    BigInteger,
    BindParameter,
    Column,
    ColumnElement,
    Executable,
    Exists,
    FromClause,
    Row,
    Select,
    String,
    Table,
    Update,
    any_,
    bindparam,
    cast,
    func,
    insert,
    inspect,
    literal,
    literal_column,
    null,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, aliased
from sqlalchemy.orm.attributes import set_committed_value

from storage.db import OUTBOX_FLAG
from storage.events import Decided
from storage.models import (
    Assignment,
    Channel,
    Contact,
    Conversation,
    ConversationStatus,
    Lead,
    Manager,
    ManagerAbsence,
    Message,
    MessageDirection,
    OutboxEvent,
    Queue,
    QueueMember,
    RoutingRule,
    RoutingState,
)
from storage.models.base import Base, table_of
from storage.outbox import event_row
from storage.types import UTCDateTime, utcnow

# A manager row's version: its xmin changes with every write of the row.
_VERSION: ColumnElement[str] = literal_column("managers.xmin::text", String())


_AT = bindparam("at", type_=UTCDateTime())


def _absent_at(
    at: BindParameter[datetime],
    manager_id: ColumnElement[int] | InstrumentedAttribute[int] = Manager.id,
) -> Exists:
    return (
        select(ManagerAbsence.id)
        .where(
            ManagerAbsence.manager_id == manager_id,
            ManagerAbsence.starts_at <= at,
            ManagerAbsence.ends_at > at,
        )
        .exists()
    )


class RowChanged(Exception):
    """A row the decision was based on changed before the decision was written; nothing
    was written: decide again."""


@dataclass
class Members:
    """A queue's members: (manager id, position) in queue order, their rows (with their
    versions on PostgreSQL), open conversations per manager, and who is absent."""

    order: list[tuple[int, int]]
    managers: dict[int, ManagerState]
    load: dict[int, int]
    absent: set[int]


@dataclass(frozen=True)
class DecisionEvent:
    """An outbox event written with a decision, due at `due_at` (a timer) or now; its
    stored JSON gets the decision's `assignment_id`."""

    event: Decided
    due_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ManagerState:
    """What routing reads of a manager to decide: a row, lighter than an ORM object."""

    id: int
    is_active: bool
    presence: str
    presence_expires_at: datetime | None
    capacity: int
    languages: list[str] | None
    working_hours: dict[str, Any] | None
    last_assigned_at: datetime | None
    # The row's version when it was read without a lock (PostgreSQL): the decision is
    # written only if the row is still that version (see `record`).
    version: str | None = None


# A column to select.
Selected = ColumnElement[Any] | InstrumentedAttribute[Any]

# The columns ManagerState is read from, in its fields' order (the version apart).
_MANAGER_STATE: tuple[InstrumentedAttribute[Any], ...] = tuple(
    getattr(Manager, f.name) for f in fields(ManagerState)[:-1]
)


@dataclass(frozen=True, slots=True)
class RowRef:
    """A row to change by its id where nothing of it was read; with `version`, only if it
    is still that version (see `ManagerState.version`)."""

    entity: type[Base]
    id: int
    version: str | None = None


@dataclass(eq=False)
class DecisionRow:
    """A row a decision reads, as plain values (the ORM costs more than the reading): its
    fields are columns of `entity`, of the same names. Values set on it after it was read
    are its pending changes, which `record` writes with the decision (`save_pending`
    where no decision is written)."""

    entity: ClassVar[type[Base]]

    id: int

    def __post_init__(self) -> None:
        self._as_read = self._values()

    def _values(self) -> dict[str, object]:
        return {f.name: copy(getattr(self, f.name)) for f in fields(self)}

    def pending(self) -> dict[str, object]:
        """The values set since it was read or written."""
        return {
            name: getattr(self, name)
            for name, value in self._as_read.items()
            if getattr(self, name) != value
        }

    def written(self, values: dict[str, object]) -> None:
        """`values` were written to its row: they are now what it holds as read (those of
        its fields)."""
        for name, value in values.items():
            if name in self._as_read:
                setattr(self, name, value)
        self._as_read = self._values()

    @classmethod
    def columns(cls) -> list[InstrumentedAttribute[Any]]:
        """The columns it is read from, in its fields' order."""
        return [getattr(cls.entity, f.name) for f in fields(cls)]


@dataclass(eq=False)
class ConversationRow(DecisionRow):
    entity = Conversation

    contact_id: int
    channel_id: int
    status: str
    routing_state: str
    assignee_id: int | None
    queue_id: int | None
    priority: str
    tags: list[str]
    waiting_reason: str | None
    first_response_at: datetime | None
    assigned_at: datetime | None
    last_outbound_at: datetime | None


@dataclass(eq=False)
class ContactRow(DecisionRow):
    entity = Contact

    name: str | None
    company: str | None
    language: str | None
    owner_id: int | None
    attributes: dict[str, Any]


@dataclass(eq=False)
class ChannelRow(DecisionRow):
    entity = Channel

    kind: str
    key: str
    default_queue_id: int | None


@dataclass(eq=False)
class LeadRow(DecisionRow):
    entity = Lead

    assignee_id: int | None
    form_fields: dict[str, Any]


@dataclass(frozen=True, slots=True)
class QueueState:
    """What routing reads of a queue."""

    id: int
    name: str
    strategy: str
    is_active: bool
    respect_member_hours: bool
    forward_after_seconds: int | None
    retry_seconds: int
    sla: dict[str, Any]
    working_hours: dict[str, Any] | None
    supervisor_id: int | None
    sla_breach_action: str


# The columns QueueState is read from, in its fields' order.
QUEUE_STATE = tuple(getattr(Queue, f.name) for f in fields(QueueState))

# Where a change is made: a row read for the decision, a loaded ORM object, or a row
# known by its id only.
Target = DecisionRow | RowRef | Conversation | Contact | Lead


@dataclass(frozen=True, slots=True)
class _Change:
    entity: type[Base]
    id: int
    values: dict[str, object]
    obj: DecisionRow | Base | None  # what was read of the row: it gets the values written
    version: str | None = None

    @property
    def table(self) -> Table:
        return table_of(self.entity)

    def column(self, key: str) -> Column[Any]:
        """The table's column of the attribute `key`."""
        return self.table.c[inspect(self.entity).column_attrs[key].columns[0].name]


def pending_changes(obj: Base) -> dict[str, object]:
    """The column attributes set on a loaded ORM object since it was loaded or written."""
    state = inspect(obj)
    if not state.modified:
        return {}
    values = {}
    for attr in state.mapper.column_attrs:
        if state.attrs[attr.key].history.has_changes():
            values[attr.key] = getattr(obj, attr.key)
    return values


class RoutingRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.locking = session.get_bind().dialect.name != "sqlite"
        self._leads: dict[int, Lead | LeadRow | None] = {}
        self._contacts: dict[int, Contact | ContactRow] = {}
        self._channels: dict[int, Channel | ChannelRow] = {}
        self._queues: dict[int, Queue | QueueState] = {}
        self._read: list[DecisionRow] = []
        self.rules_version: tuple[object, ...] = ()

    async def lock_for_decision(self, conversation_id: int, at: datetime) -> ConversationRow | None:
        """The conversation row-locked, as `lock_conversation` gives it, but as plain rows
        (its contact, channel, lead and default queue too) read without the ORM.

        What is set on these rows is written by `record`, or by `save_pending`.
        """
        rows = await self._rows(
            self._decision_query(), {"conversation_id": conversation_id, "at": at}
        )
        if not rows:
            return None
        values = iter(rows[0])
        conversation = ConversationRow(*islice(values, len(fields(ConversationRow))))
        contact = ContactRow(*islice(values, len(fields(ContactRow))))
        channel = ChannelRow(*islice(values, len(fields(ChannelRow))))
        lead_values = tuple(islice(values, len(fields(LeadRow))))
        queue_values = tuple(islice(values, len(QUEUE_STATE)))
        self.rules_version = tuple(values)
        # The lead and the default queue are outer joins: all NULL when there is none.
        lead = LeadRow(*lead_values) if lead_values[0] is not None else None
        self._leads[conversation_id] = lead
        self._contacts[contact.id] = contact
        self._channels[channel.id] = channel
        if queue_values[0] is not None:
            self._queues[queue_values[0]] = QueueState(*queue_values)
        self._read += [conversation, contact, *([lead] if lead is not None else [])]
        return conversation

    async def save_pending(self) -> None:
        """Write what was set on the rows read for the decision and not yet written."""
        for row in self._read:
            values = row.pending()
            if values:
                change = _Change(row.entity, row.id, values, row)
                await self.session.execute(_update_of(change))
                self._committed(change)

    async def lock_conversation(self, conversation_id: int) -> Conversation | None:
        """The conversation, row-locked until commit (SQLite has one writer anyway).

        Its contact, channel, lead and default queue come in the same round trip, so
        the decision that follows reads them from here instead of asking again; so
        does the rules' version (`rules_version`), which tells whether rules parsed
        earlier still hold.
        """
        query = self._conversation_query()
        row = (await self.session.execute(query, {"conversation_id": conversation_id})).first()
        if row is None:
            return None
        self.rules_version = (row[5], row[6], row[7])
        self._leads[conversation_id] = row[3]
        # Held here: the session's identity map only keeps weak references.
        self._contacts[row[1].id] = row[1]
        self._channels[row[2].id] = row[2]
        if row[4] is not None:
            self._queues[row[4].id] = row[4]
        conversation: Conversation = row[0]
        return conversation

    async def _rows(
        self, statement: Executable, parameters: Mapping[str, object], *, autoflush: bool = True
    ) -> Sequence[Row[Any]]:
        """The rows of a statement of plain columns, on the session's connection (no ORM
        objects). Pending changes are flushed first, as the session would."""
        if autoflush and (self.session.new or self.session.dirty):
            await self.session.flush()
        connection = await self.session.connection()
        return (await connection.execute(statement, parameters)).all()

    def _conversation_query(self) -> Select[Any]:
        return self._conversation_select([Conversation, Contact, Channel, Lead, Queue])

    def _decision_query(self) -> Select[Any]:
        return self._conversation_select(
            [
                *ConversationRow.columns(),
                *ContactRow.columns(),
                *ChannelRow.columns(),
                *LeadRow.columns(),
                *QUEUE_STATE,
            ]
        )

    def _conversation_select(
        self, columns: Sequence[type[Base] | InstrumentedAttribute[Any]]
    ) -> Select[Any]:
        """The conversation (locked) with its contact, channel, lead and default queue
        (`columns` of them), then the rules' version (three columns)."""
        query = (
            select(
                *columns,
                select(func.count(RoutingRule.id)).scalar_subquery(),
                select(func.max(RoutingRule.updated_at)).scalar_subquery(),
                select(func.sum(RoutingRule.id)).scalar_subquery(),
            )
            .select_from(Conversation)
            .join(Contact, Contact.id == Conversation.contact_id)
            .join(Channel, Channel.id == Conversation.channel_id)
            .outerjoin(Lead, Lead.conversation_id == Conversation.id)
            .outerjoin(Queue, Queue.id == Channel.default_queue_id)
            .where(Conversation.id == bindparam("conversation_id"))
        )
        return query.with_for_update(of=Conversation) if self.locking else query

    async def lock_managers(
        self, manager_ids: Sequence[int], at: datetime
    ) -> tuple[dict[int, ManagerState], set[int]]:
        """Managers row-locked in id order (one order everywhere: no deadlocks), and
        which of them are absent at `at`, in one round trip."""
        if not manager_ids:
            return {}, set()
        query = self._managers_query()
        parameters = {"ids": sorted(set(manager_ids)), "at": at}
        rows = await self._rows(query, parameters)
        width = len(_MANAGER_STATE)
        managers = {row[0]: ManagerState(*row[:width]) for row in rows}
        return managers, {row[0] for row in rows if row[width]}

    async def members(self, queue_id: int, at: datetime) -> Members:
        """The queue's members with their open-conversation counts and absences, in one
        round trip, without locks: `record` checks the chosen one's version."""
        rows = await self._rows(self._members_query(), {"queue_id": queue_id, "at": at})
        width = len(_MANAGER_STATE) + 1
        position, count, away = width, width + 1, width + 2
        managers = {row[0]: ManagerState(*row[:width]) for row in rows}
        order = sorted(((row[0], int(row[position])) for row in rows), key=lambda m: (m[1], m[0]))
        load = {row[0]: int(row[count]) for row in rows}
        absent = {row[0] for row in rows if row[away]}
        return Members(order, managers, load, absent)

    def _managers_query(self) -> Select[Any]:
        if self.locking:  # an array parameter: one statement whatever the number of ids
            ids = Manager.id == any_(bindparam("ids", type_=ARRAY(BigInteger)))
        else:
            ids = Manager.id.in_(bindparam("ids", expanding=True))
        query = select(*self._state_columns(), _absent_at(_AT)).where(ids).order_by(Manager.id)
        return query.with_for_update(of=Manager) if self.locking else query

    def _state_columns(self) -> list[Selected]:
        """The columns of ManagerState. On PostgreSQL an empty language list comes as
        NULL: one JSON value less to decode per manager."""
        if not self.locking:
            return list(_MANAGER_STATE)
        return [
            func.nullif(Manager.languages, literal_column("'[]'::jsonb")).label("languages")
            if column is Manager.languages
            else column
            for column in _MANAGER_STATE
        ]

    def _members_query(self) -> Select[Any]:
        member, join, columns = self._member_source()
        return (
            select(*columns)
            .select_from(QueueMember)
            .join(member, join)
            .where(QueueMember.queue_id == bindparam("queue_id"))
            .order_by(member.c.id)
        )

    def _member_source(self) -> tuple[FromClause, ColumnElement[bool], list[Selected]]:
        """How a queue member's manager row is joined to its `QueueMember` row, and the
        member's columns: its ManagerState columns and version, its position in the
        queue, its open conversations and whether it is absent at `at`.

        On PostgreSQL each member's row is looked up by its id (a lateral subquery, kept
        one by OFFSET 0): a queue's members are few, the managers many, and the planner
        would rather scan them all.
        """
        if self.locking:
            member: FromClause = (
                select(*self._state_columns(), _VERSION.label("version"))
                .where(Manager.id == QueueMember.manager_id)
                .offset(literal_column("0"))
                .lateral("member")
            )
            join: ColumnElement[bool] = true()
        else:
            member = select(*_MANAGER_STATE, null().label("version")).subquery("member")
            join = member.c.id == QueueMember.manager_id
        counted = aliased(Conversation)  # never the outer query's conversation
        open_count = (
            select(func.count())
            .select_from(counted)
            .where(
                counted.assignee_id == member.c.id,
                counted.status != ConversationStatus.CLOSED,
            )
            .scalar_subquery()
        )
        return (
            member,
            join,
            [
                *member.c,
                QueueMember.position,
                open_count,
                _absent_at(_AT, member.c.id),
            ],
        )

    async def channel(self, channel_id: int) -> Channel | ChannelRow:
        channel = self._channels.get(channel_id) or await self.session.get(Channel, channel_id)
        assert channel is not None
        return channel

    async def contact(self, contact_id: int) -> Contact | ContactRow:
        contact = self._contacts.get(contact_id) or await self.session.get(Contact, contact_id)
        assert contact is not None
        return contact

    async def queue(self, queue_id: int) -> Queue | QueueState | None:
        return self._queues.get(queue_id) or await self.session.get(Queue, queue_id)

    async def queues_of(self, manager_id: int) -> list[int]:
        rows = await self.session.scalars(
            select(QueueMember.queue_id).where(QueueMember.manager_id == manager_id)
        )
        return [int(q) for q in rows]

    async def active_rules(self) -> Sequence[RoutingRule]:
        rows = await self.session.scalars(
            select(RoutingRule)
            .where(RoutingRule.is_active.is_(True))
            .order_by(RoutingRule.position, RoutingRule.id)
        )
        return rows.all()

    async def first_inbound_text(self, conversation_id: int) -> str:
        text = await self.session.scalar(
            select(Message.text)
            .where(
                Message.conversation_id == conversation_id,
                Message.direction == MessageDirection.INBOUND,
            )
            .order_by(Message.id)
            .limit(1)
        )
        return text or ""

    async def lead_of(self, conversation_id: int) -> Lead | LeadRow | None:
        if conversation_id not in self._leads:
            self._leads[conversation_id] = (
                await self.session.scalars(
                    select(Lead).where(Lead.conversation_id == conversation_id)
                )
            ).first()
        return self._leads[conversation_id]

    async def current_assignment(self, conversation_id: int) -> Assignment | None:
        return (
            await self.session.scalars(
                select(Assignment)
                .where(Assignment.conversation_id == conversation_id, Assignment.ended_at.is_(None))
                .order_by(Assignment.id.desc())
                .limit(1)
            )
        ).first()

    async def end_assignments(self, conversation_id: int, at: datetime) -> None:
        await self.session.execute(
            update(Assignment)
            .where(Assignment.conversation_id == conversation_id, Assignment.ended_at.is_(None))
            .values(ended_at=at)
            .execution_options(synchronize_session=False)
        )

    async def waiting_conversations(self, queue_ids: Sequence[int] | None, limit: int) -> list[int]:
        """Conversations nobody could take yet, oldest first.

        Routing them one after another in one transaction would take a conversation's
        lock while holding managers' locks (the reverse of `route()`'s order): so they
        are all locked here first, before any manager, and the ones another worker is
        routing right now are skipped (that worker decides them).
        """
        query = (
            select(Conversation.id)
            .where(
                Conversation.routing_state.in_([RoutingState.WAITING, RoutingState.NEW]),
                Conversation.status != ConversationStatus.CLOSED,
                Conversation.assignee_id.is_(None),
            )
            .order_by(Conversation.id)
            .limit(limit)
        )
        if queue_ids is not None:
            query = query.where(
                or_(Conversation.queue_id.in_(list(queue_ids)), Conversation.queue_id.is_(None))
            )
        if self.locking:
            query = query.with_for_update(skip_locked=True)
        return [int(c) for c in await self.session.scalars(query)]

    async def record(
        self,
        assignment: dict[str, object],
        changes: Sequence[tuple[Target, dict[str, object]]],
        events: Sequence[DecisionEvent],
        *,
        end_open_of: int | None,
        at: datetime,
    ) -> int:
        """Write a decision: the new assignment row (ending the conversation's open ones
        when `end_open_of` is given), the `changes` to loaded objects (with any changes
        still pending on them), and outbox events carrying the new assignment's id.
        Returns that id.

        One statement on PostgreSQL (data-modifying CTEs). A change to a `RowRef` with
        a version is a condition of the whole: if the row is no longer that version,
        nothing is written and `RowChanged` is raised. The objects (and the session's
        own objects of the same rows) then hold what was written as their committed
        state: the session's flush has nothing to do.
        """
        now = utcnow()
        row = {"created_at": now, "detail": {}, "explanation": "", **assignment}
        updates = []
        entity: type[Base]
        obj: DecisionRow | Base | None
        for target, decided in changes:
            version = None
            if isinstance(target, RowRef):
                entity, values, obj = target.entity, dict(decided), None
                version = target.version if self.locking else None  # SQLite: one writer
            elif isinstance(target, DecisionRow):
                entity, values, obj = target.entity, {**target.pending(), **decided}, target
            else:
                entity, values, obj = type(target), {**pending_changes(target), **decided}, target
            if values:
                if "updated_at" in inspect(entity).column_attrs:
                    values["updated_at"] = now
                updates.append(_Change(entity, target.id, values, obj, version))
        rows = [event_row(e.event, due_at=e.due_at, now=now) for e in events]
        write = self._record_in_one if self.locking else self._record_in_order
        with self.session.no_autoflush:  # the pending changes go in these statements
            assignment_id = await write(row, updates, rows, end_open_of, at)
        if assignment_id is None:
            raise RowChanged
        for change in updates:
            self._committed(change)
        if rows:
            self.session.info[OUTBOX_FLAG] = True
        return assignment_id

    def _committed(self, change: _Change) -> None:
        """The values of a written change become the committed state of the object it was
        made on, and of the session's own object of that row if it has one."""
        targets = []
        if isinstance(change.obj, DecisionRow):
            change.obj.written(change.values)
        elif change.obj is not None:
            targets.append(change.obj)
        key = inspect(change.entity).identity_key_from_primary_key((change.id,))
        mapped = self.session.identity_map.get(key)
        if mapped is not None and mapped is not change.obj:
            targets.append(mapped)
        for target in targets:
            for name, value in change.values.items():
                set_committed_value(target, name, value)

    async def _record_in_order(
        self,
        row: dict[str, object],
        updates: list[_Change],
        rows: list[dict[str, Any]],
        end_open_of: int | None,
        at: datetime,
    ) -> int:
        """SQLite: one writer, in process; plain statements one after another cost little."""
        assignments = table_of(Assignment)
        if end_open_of is not None:
            await self.end_assignments(end_open_of, at)
        inserted = await self.session.execute(
            insert(assignments).values(row).returning(assignments.c.id)
        )
        assignment_id = int(inserted.scalar_one())
        for change in updates:
            await self.session.execute(_update_of(change))
        if rows:
            await self.session.execute(
                insert(table_of(OutboxEvent)),
                [{**r, "payload": {**r["payload"], "assignment_id": assignment_id}} for r in rows],
            )
        return assignment_id

    async def _record_in_one(
        self,
        row: dict[str, object],
        updates: list[_Change],
        events: list[dict[str, Any]],
        end_open_of: int | None,
        at: datetime,
    ) -> int | None:
        """The new assignment's id; None if a versioned row changed (nothing written)."""
        statement = _record_statement(row, updates, events, end_open_of)
        parameters = {f"a_{key}": value for key, value in row.items()}
        for n, change in enumerate(updates):
            parameters[f"u{n}_id"] = change.id
            if change.version is not None:
                parameters[f"u{n}_version"] = change.version
            parameters.update({f"u{n}_{key}": value for key, value in change.values.items()})
        for n, event in enumerate(events):
            parameters.update({f"e{n}_{key}": value for key, value in event.items()})
        if end_open_of is not None:
            parameters.update(end_conversation_id=end_open_of, end_at=at)
        rows = await self._rows(statement, parameters, autoflush=False)
        return int(rows[0][0]) if rows else None


def _record_statement(
    row: dict[str, object],
    updates: list[_Change],
    events: list[dict[str, Any]],
    end_open_of: int | None,
) -> Select[tuple[int]]:
    """A decision's writes as one PostgreSQL statement of data-modifying CTEs, with bound
    parameters named a_* (the assignment), u<n>_* (updated rows), e<n>_* (events).

    Versioned updates go first; every other write happens only if they all found their
    row at its version. (Under a lock another transaction held, PostgreSQL checks the
    condition again on the row as that transaction left it.)
    """
    assignments = table_of(Assignment)
    outbox = table_of(OutboxEvent)
    changed: list[CTE | None] = [None] * len(updates)
    guards: list[Exists] = []
    for n, change in sorted(enumerate(updates), key=lambda c: c[1].version is None):
        table = change.table
        columns = {}
        for key in change.values:
            column = change.column(key)
            columns[column.name] = bindparam(f"u{n}_{key}", type_=column.type)
        update_row = update(table).where(table.c.id == bindparam(f"u{n}_id")).values(columns)
        if change.version is None:
            update_row = update_row.where(*guards)
        else:
            update_row = update_row.where(
                literal_column(f"{table.name}.xmin::text") == bindparam(f"u{n}_version")
            )
        written = changed[n] = update_row.returning(literal(1)).cte(f"changed_{n}")
        if change.version is not None:
            # The versioned ones come first: the writes after them depend on them.
            guards.append(select(literal(1)).select_from(written).exists())
    values = select(*(bindparam(f"a_{key}", type_=assignments.c[key].type) for key in row)).where(
        *guards
    )
    new = (
        insert(assignments)
        .from_select(list(row), values)
        .returning(assignments.c.id)
        .cte("new_assignment")
    )
    ctes = [cte for cte in changed if cte is not None]
    if end_open_of is not None:
        # The same snapshot: the row inserted above is not among those it ends.
        ended = (
            update(assignments)
            .where(
                assignments.c.conversation_id == bindparam("end_conversation_id"),
                assignments.c.ended_at.is_(None),
                *guards,
            )
            .values(ended_at=bindparam("end_at", type_=UTCDateTime()))
            .returning(assignments.c.id)
        )
        ctes.append(ended.cte("ended"))
    names = ["topic", "payload", "status", "due_at", "attempts", "created_at"]
    for n, event in enumerate(events):
        assert set(event) == set(names)
        payload = cast(
            bindparam(f"e{n}_payload", type_=JSONB).op("||")(
                func.jsonb_build_object(literal("assignment_id"), new.c.id)
            ),
            JSONB,
        )
        source = select(
            *(
                payload
                if name == "payload"
                else bindparam(f"e{n}_{name}", type_=outbox.c[name].type)
                for name in names
            )
        ).select_from(new)
        ctes.append(
            insert(outbox).from_select(names, source).returning(literal(1)).cte(f"event_{n}")
        )
    return select(new.c.id).add_cte(*ctes)


def _update_of(change: _Change) -> Update:
    table = change.table
    columns = {change.column(key).name: value for key, value in change.values.items()}
    return update(table).where(table.c.id == change.id).values(columns)
