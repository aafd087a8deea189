"""The outbox: durable events written with the change, handled by workers after commit.

`emit()` adds an event (one of storage.events' catalogue) to the caller's
transaction: a rollback drops it. Workers claim due events with a lease (`FOR UPDATE
SKIP LOCKED` on PostgreSQL, so any number of workers share the table), parse each
row into its event type once, run that type's handlers in a transaction that also
marks the event done, and on failure retry with exponential backoff until the event
is parked with its error (a row whose topic or payload does not parse fails too).

The lease is short and renewed by a heartbeat while the worker works on its
events (PostgreSQL; SQLite's one writer is the worker's own transaction meanwhile): a
worker that dies (killed, its machine gone) stops renewing, and another
worker takes its events once the lease runs out, seconds later. A worker sleeps
between rounds until a commit that wrote events wakes it: in its own process
directly, from other processes through PostgreSQL's NOTIFY (`Database.listen_outbox`);
the poll interval is only the fallback.

Some events go first (`WorkerOptions.first_events`: routing's, so a new conversation
reaches its manager without waiting behind the backlog of everything else): a worker
claims and handles them in a lane of their own, beside the lane of the rest, each lane
with its own rounds (PostgreSQL; SQLite's one writer would make them take turns, and one
round there handles its routing events first anyway). `run_once` handles one round of
each lane, the first lane's first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.bus import HeldMessages
from storage.db import OUTBOX_FLAG, Database
from storage.events import CATALOGUE, Event, parse
from storage.models import OutboxEvent, OutboxStatus
from storage.models.base import table_of
from storage.sql import among
from storage.types import utcnow

log = logging.getLogger(__name__)

E = TypeVar("E", bound=Event)

Handler = Callable[[AsyncSession, E, int], Awaitable[None]]
"""A handler of events of type E: the worker's session, the event, the outbox row's id."""

Handlers = Mapping[type[Event], Sequence[Handler[Any]]]
"""A handler table: an event type to its handlers, in order; `Event` gets every event."""


@dataclass(frozen=True)
class BatchHandler(Generic[E]):
    """A handler that also takes many events of its type at once.

    The worker hands it all the events of its type that it claimed in one round, in
    one transaction (`many`, with each event's row id, in id order); where an event must
    be handled alone (after a failure), or where a caller has one event, it is called
    as a plain handler (`each`). Both must leave the same result.
    """

    each: Handler[E]
    many: Callable[[AsyncSession, Sequence[tuple[E, int]]], Awaitable[None]]

    async def __call__(self, session: AsyncSession, event: E, event_id: int) -> None:
        await self.each(session, event, event_id)


class _HandlerFailed(Exception):
    """A handler raised during an optimistic batch; the batch is redone event by event."""


def emit(session: AsyncSession, event: Event, *, due_at: datetime | None = None) -> OutboxEvent:
    """Write an event in the session's transaction; `due_at` makes it a timer."""
    row = OutboxEvent(
        topic=event.topic,
        payload=event.payload(),
        due_at=due_at or utcnow(),
        status=OutboxStatus.PENDING,
        attempts=0,
    )
    session.add(row)
    session.info[OUTBOX_FLAG] = True
    return row


def event_row(event: Event, *, due_at: datetime | None = None, now: datetime) -> dict[str, Any]:
    """An outbox row's values, for writers that insert events with Core statements."""
    return {
        "topic": event.topic,
        "payload": event.payload(),
        "status": OutboxStatus.PENDING,
        "due_at": due_at or now,
        "attempts": 0,
        "created_at": now,
    }


async def emit_many(session: AsyncSession, events: Sequence[Event]) -> None:
    """Write many events at once, in the session's transaction."""
    if not events:
        return
    now = utcnow()
    await session.execute(
        insert(table_of(OutboxEvent)), [event_row(event, now=now) for event in events]
    )
    session.info[OUTBOX_FLAG] = True


@dataclass
class WorkerOptions:
    batch_size: int = 100
    # SQLite: the worker's transactions hold the one write lock that every answer
    # waits for, so a round takes as many events as its handlers got through in about
    # this long in the rounds before (between `min_round` and `batch_size`).
    write_lock_seconds: float = 0.05
    min_round: int = 8
    # Renewed every heartbeat while the events are worked on: a dead worker's events
    # wait at most this long (plus a poll) for another worker.
    lease_seconds: float = 6.0
    heartbeat_seconds: float = 2.0
    max_attempts: int = 8
    backoff_base_seconds: float = 2.0
    backoff_max_seconds: float = 3600.0
    poll_interval_seconds: float = 1.0
    keep_done_seconds: float = 7 * 24 * 3600.0
    # Events handled one per transaction on PostgreSQL (see run_once).
    solo_events: frozenset[type[Event]] = frozenset()
    # Of those, events whose handling is done again from the event if it is lost: their
    # transactions commit without waiting for the disk (`Database.transaction`).
    redoable_events: frozenset[type[Event]] = frozenset()
    # Events claimed and handled in a lane of their own, ahead of the rest (see the
    # module's text); none: one lane for every event.
    first_events: frozenset[type[Event]] = frozenset()


@dataclass(frozen=True, slots=True)
class Claimed:
    """An event as its claim returned it: what handling it needs, without reading it again."""

    id: int
    topic: str
    payload: dict[str, Any]


@dataclass(eq=False)
class Lane:
    """Events a worker claims and handles in rounds of their own: only these topics (none
    named: any), never those."""

    name: str
    only: tuple[str, ...]
    never: tuple[str, ...]
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)


class OutboxWorker:
    """Claims due events and dispatches them to handlers by event type (`Event` gets every
    event)."""

    def __init__(
        self,
        db: Database,
        handlers: Handlers,
        options: WorkerOptions | None = None,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.handlers = handlers
        self.options = options or WorkerOptions()
        self.clock = clock
        # SQLite has one writer, which the lanes would only take turns at: one lane (a
        # round's routing events are handled first in it anyway, see _run_claimed).
        first = sorted(kind.topic for kind in self.options.first_events) if not db.is_sqlite else []
        self.lanes: list[Lane] = (
            [Lane("first", tuple(first), ()), Lane("rest", (), tuple(first))]
            if first
            else [Lane("all", (), ())]
        )
        db.on_outbox_commit(self.wake)
        # Seconds the handlers held the write lock per event, smoothed over the rounds.
        self._held_per_event: float | None = None
        self._held = 0.0

    def wake(self) -> None:
        for lane in self.lanes:
            lane.wakeup.set()

    def backoff(self, attempts: int) -> float:
        base = self.options.backoff_base_seconds * (2 ** max(attempts - 1, 0))
        delay = min(base, self.options.backoff_max_seconds)
        return float(delay * random.uniform(0.8, 1.2))

    async def claim(self) -> list[int]:
        """Lease up to one batch of due events to this worker (of every lane)."""
        claimed: list[int] = []
        for lane in self.lanes:
            claimed += [event.id for event in await self._claim(lane)]
        return claimed

    async def _claim(self, lane: Lane) -> list[Claimed]:
        """One statement: the lane's due events chosen (skipping those another worker is
        claiming on PostgreSQL), leased and returned with their topics and payloads, in
        the order they are due."""
        now = self.clock()
        due = select(OutboxEvent.id).where(
            OutboxEvent.status == OutboxStatus.PENDING,
            OutboxEvent.due_at <= now,
            or_(OutboxEvent.locked_until.is_(None), OutboxEvent.locked_until < now),
        )
        if lane.only:
            due = due.where(OutboxEvent.topic.in_(lane.only))
        if lane.never:
            due = due.where(OutboxEvent.topic.not_in(lane.never))
        due = due.order_by(OutboxEvent.due_at, OutboxEvent.id).limit(self.round_size())
        if not self.db.is_sqlite:
            due = due.with_for_update(skip_locked=True)
        # A claim lost in a crash leaves its events due and unclaimed, to be claimed again:
        # its commit need not wait for the disk (nor keep a new conversation waiting).
        async with self.db.transaction(redoable=True, background=True) as session:
            rows = await session.execute(
                update(OutboxEvent)
                .where(OutboxEvent.id.in_(due.scalar_subquery()))
                .values(
                    locked_until=now + timedelta(seconds=self.options.lease_seconds),
                    attempts=OutboxEvent.attempts + 1,
                )
                .returning(
                    OutboxEvent.due_at, OutboxEvent.id, OutboxEvent.topic, OutboxEvent.payload
                )
                .execution_options(synchronize_session=False)
            )
            claimed = sorted(rows, key=lambda row: (row.due_at, row.id))
        return [Claimed(row.id, row.topic, row.payload) for row in claimed]

    def round_size(self) -> int:
        """How many events the next round claims (see WorkerOptions.write_lock_seconds)."""
        per_event = self._held_per_event
        if not self.db.is_sqlite or per_event is None or per_event <= 0:
            return self.options.batch_size
        fits = int(self.options.write_lock_seconds / per_event)
        return max(self.options.min_round, min(self.options.batch_size, fits))

    def _note_round(self, events: int) -> None:
        held, self._held = self._held, 0.0
        if events and held > 0:
            per_event = held / events
            previous = self._held_per_event
            self._held_per_event = (
                per_event if previous is None else 0.5 * previous + 0.5 * per_event
            )

    async def run_once(self) -> int:
        """Handle one batch of due events of each lane (the first lane's first); returns
        how many were claimed."""
        handled = 0
        for lane in self.lanes:
            handled += await self._round(lane)
        return handled

    async def _round(self, lane: Lane) -> int:
        """Handle one batch of the lane's due events; returns how many were claimed.

        The batch first runs in one transaction. If a handler fails, that work is
        rolled back and the batch runs again with a savepoint per event, so the
        failing event rolls back only its own writes and its failure (next attempt
        or parking) commits with the others' success. Handlers therefore run at
        least once, as with any outbox: they must tolerate a repeat.
        """
        claimed = await self._claim(lane)
        if not claimed:
            return 0
        if self.db.is_sqlite:
            # One writer, which this worker's own transactions hold while they work:
            # a renewal could only wait for them.
            await self._run_claimed(claimed)
            self._note_round(len(claimed))
            return len(claimed)
        ids = [event.id for event in claimed]
        heartbeat = asyncio.create_task(self._heartbeat(ids))
        try:
            await self._run_claimed(claimed)
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
        return len(claimed)

    async def renew(self, ids: Sequence[int]) -> None:
        """Extend the lease of these claimed events that are still being worked on."""
        until = self.clock() + timedelta(seconds=self.options.lease_seconds)
        # A renewal lost in a crash is a lease that runs out, as the crash's own would.
        async with self.db.transaction(redoable=True) as session:
            await session.execute(
                update(OutboxEvent)
                .where(
                    self._among(ids),
                    OutboxEvent.status == OutboxStatus.PENDING,
                    OutboxEvent.locked_until.is_not(None),
                )
                .values(locked_until=until)
                .execution_options(synchronize_session=False)
            )

    async def _heartbeat(self, ids: list[int]) -> None:
        while True:
            await asyncio.sleep(self.options.heartbeat_seconds)
            try:
                await self.renew(ids)
            except Exception:
                # The next beat tries again; past the lease, another worker takes over.
                log.warning("outbox lease renewal failed", exc_info=True)

    async def _run_claimed(self, claimed: list[Claimed]) -> None:
        # Row-locking handlers (routing's, the `solo` events) get transactions of their own
        # where several workers write at once: locks held across a batch would deadlock
        # workers. Such a type with a batch handler has all its events in one transaction,
        # the handler taking them together (and locking in its own order); the others one
        # transaction each. Every other event goes in one shared transaction, where the
        # batch handlers also take all the events of their type together.
        solo = self.options.solo_events if not self.db.is_sqlite else frozenset()
        kinds = [(event, CATALOGUE.get(event.topic)) for event in claimed]
        batched: dict[type[Event], list[Claimed]] = {}
        for event, kind in kinds:
            if kind is not None and kind in solo and self._batches(kind):
                batched.setdefault(kind, []).append(event)
        for kind, events in batched.items():
            await self._run(events, redoable=kind in self.options.redoable_events)
        rest = [(event, kind) for event, kind in kinds if kind not in batched]
        shared = [event for event, kind in rest if kind not in solo]
        if shared:
            await self._run(shared)
        for event, kind in rest:
            if kind is not None and kind in solo:
                await self._run([event], redoable=kind in self.options.redoable_events)

    def _among(self, ids: Sequence[int]) -> ColumnElement[bool]:
        return among(OutboxEvent.id, ids, postgresql=not self.db.is_sqlite)

    def _batches(self, kind: type[Event]) -> bool:
        return any(isinstance(h, BatchHandler) for h in self.handlers.get(kind, ()))

    async def _run(self, claimed: list[Claimed], *, redoable: bool = False) -> None:
        # Live updates the handlers publish are sent after the commit, together: the
        # transaction never waits for the bus, and what rolls back announces nothing.
        held = HeldMessages()
        # The events as claimed, in id order: nothing to read again.
        events = sorted(claimed, key=lambda event: event.id)
        try:
            with held.collecting():
                async with self.db.transaction(redoable=redoable, background=True) as session:
                    await self._timed(self._handle_together_first(session, events))
        except Exception:
            # A handler failed, or its writes did when the round flushed or committed
            # (a unique violation): each event's writes then flush in its own savepoint,
            # the events read again (a failure is recorded on the row).
            held.clear()
            with held.collecting():
                async with self.db.transaction(redoable=redoable, background=True) as session:
                    rows = await session.scalars(
                        select(OutboxEvent)
                        .where(self._among([event.id for event in events]))
                        .order_by(OutboxEvent.id)
                    )
                    await self._timed(self._handle_isolated(session, rows.all(), held=held))
        await held.release()

    async def _timed(self, work: Awaitable[None]) -> None:
        locked_at = time.monotonic()  # SQLite: the write lock is this transaction's now
        try:
            await work
        finally:
            self._held += time.monotonic() - locked_at

    async def _handle_together_first(self, session: AsyncSession, events: list[Claimed]) -> None:
        """The round's events in one go: the batch handlers with all the events of their
        type, then every other handler event by event; any failure fails the round."""
        try:
            await self._handle_together(session, events)
            for event in events:
                await self._dispatch(session, event, batch_handled=True)
        except Exception as exc:
            raise _HandlerFailed from exc
        await self._mark_done(session, [event.id for event in events])

    async def _handle_isolated(
        self, session: AsyncSession, rows: Sequence[OutboxEvent], *, held: HeldMessages
    ) -> None:
        """Each pending event in a savepoint of its own: a failing one rolls back only its
        own writes and has its failure recorded."""
        done: list[int] = []
        for event in rows:
            if event.status != OutboxStatus.PENDING:
                continue  # another worker finished it after this one's lease ran out
            mark = held.mark()
            try:
                async with session.begin_nested():
                    await self._dispatch(session, event)
                done.append(event.id)
            except Exception as exc:
                held.drop_from(mark)  # its live updates rolled back with its writes
                log.exception("outbox event %s (%s) failed", event.id, event.topic)
                await session.refresh(event)  # the savepoint's rollback expired it
                self._record_failure(event, exc)
        await self._mark_done(session, done)

    async def _mark_done(self, session: AsyncSession, done: list[int]) -> None:
        if done:
            await session.execute(
                update(OutboxEvent)
                # One parked meanwhile by a worker that took over an expired lease stays so.
                .where(self._among(done), OutboxEvent.status == OutboxStatus.PENDING)
                .values(
                    status=OutboxStatus.DONE,
                    processed_at=self.clock(),
                    locked_until=None,
                    last_error=None,
                )
                .execution_options(synchronize_session=False)
            )

    async def _dispatch(
        self, session: AsyncSession, row: Claimed | OutboxEvent, *, batch_handled: bool = False
    ) -> None:
        """Parse the row into its event (once) and run the handlers of its type (but the
        batch handlers, when `_handle_together` ran them already)."""
        event = parse(row.topic, row.payload)
        for handler in (*self.handlers.get(type(event), ()), *self.handlers.get(Event, ())):
            if batch_handled and isinstance(handler, BatchHandler):
                continue
            await handler(session, event, row.id)

    async def _handle_together(self, session: AsyncSession, rows: Sequence[Claimed]) -> None:
        """Each batch handler with all the events of its type, before any other handler."""
        by_kind: dict[type[Event], list[tuple[Event, int]]] = {}
        for row in rows:
            kind = CATALOGUE.get(row.topic)
            if kind is not None and self._batches(kind):
                by_kind.setdefault(kind, []).append((parse(row.topic, row.payload), row.id))
        for kind, group in by_kind.items():
            for handler in self.handlers.get(kind, ()):
                if isinstance(handler, BatchHandler):
                    await handler.many(session, group)

    def _record_failure(self, event: OutboxEvent, exc: BaseException) -> None:
        error = f"{type(exc).__name__}: {exc}"[:4000]
        event.last_error = error
        event.locked_until = None
        if event.attempts >= self.options.max_attempts:
            event.status = OutboxStatus.PARKED
            log.error(
                "outbox event %s (%s) parked after %s attempts: %s",
                event.id,
                event.topic,
                event.attempts,
                error,
            )
        else:
            event.due_at = self.clock() + timedelta(seconds=self.backoff(event.attempts))

    async def drain(self, max_rounds: int = 100) -> int:
        """Handle due events until none is left (tests and one-shot runs)."""
        total = 0
        for _ in range(max_rounds):
            handled = await self.run_once()
            total += handled
            if handled == 0:
                break
        return total

    async def purge_done(self) -> int:
        cutoff = self.clock() - timedelta(seconds=self.options.keep_done_seconds)
        async with self.db.transaction(background=True) as session:
            result = await session.execute(
                delete(OutboxEvent).where(
                    OutboxEvent.status == OutboxStatus.DONE, OutboxEvent.processed_at < cutoff
                )
            )
        return int(getattr(result, "rowcount", 0) or 0)

    async def run(self, stop: asyncio.Event) -> None:
        """Loop until `stop` is set: handle due events, then sleep until woken or polled."""
        log.info("outbox worker started")
        listener = asyncio.ensure_future(self.db.listen_outbox(self.wake, stop))
        try:
            await self._loop(stop)
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
        log.info("outbox worker stopped")

    async def _loop(self, stop: asyncio.Event) -> None:
        await asyncio.gather(*(self._lane_loop(lane, stop) for lane in self.lanes))

    async def _lane_loop(self, lane: Lane, stop: asyncio.Event) -> None:
        last_purge = 0.0
        loop = asyncio.get_running_loop()
        purges = lane is self.lanes[-1]
        while not stop.is_set():
            # Cleared before looking, not after: a commit during this round keeps it set.
            lane.wakeup.clear()
            try:
                handled = await self._round(lane)
                if purges and loop.time() - last_purge > 3600:
                    last_purge = loop.time()
                    await self.purge_done()
            except Exception:
                # The database may be briefly unreachable; never let the loop die.
                log.exception("outbox worker iteration failed")
                handled = 0
            if handled:
                continue
            waiters = [
                asyncio.ensure_future(lane.wakeup.wait()),
                asyncio.ensure_future(stop.wait()),
            ]
            await asyncio.wait(
                waiters,
                timeout=self.options.poll_interval_seconds,
                return_when=asyncio.FIRST_COMPLETED,
            )
            for waiter in waiters:
                waiter.cancel()
