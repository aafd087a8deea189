"""The outbox: durable events written with the change, handled by workers after commit.

`emit()` adds an event to the caller's transaction: a rollback drops it. Workers
claim due events with a lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so any
number of workers share the table), run the topic's handlers in a transaction
that also marks the event done, and on failure retry with exponential backoff
until the event is parked with its error.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import OUTBOX_FLAG, Database
from storage.models import OutboxEvent, OutboxStatus
from storage.types import utcnow

log = logging.getLogger(__name__)

Handler = Callable[[AsyncSession, OutboxEvent], Awaitable[None]]


def emit(
    session: AsyncSession,
    topic: str,
    payload: dict[str, Any],
    *,
    due_at: datetime | None = None,
) -> OutboxEvent:
    """Write an event in the session's transaction; `due_at` makes it a timer."""
    event = OutboxEvent(
        topic=topic,
        payload=payload,
        due_at=due_at or utcnow(),
        status=OutboxStatus.PENDING,
        attempts=0,
    )
    session.add(event)
    session.info[OUTBOX_FLAG] = True
    return event


@dataclass
class WorkerOptions:
    batch_size: int = 50
    lease_seconds: float = 60.0
    max_attempts: int = 8
    backoff_base_seconds: float = 2.0
    backoff_max_seconds: float = 3600.0
    poll_interval_seconds: float = 1.0
    keep_done_seconds: float = 7 * 24 * 3600.0


class OutboxWorker:
    """Claims due events and dispatches them to handlers by topic (`*` gets every event)."""

    def __init__(
        self,
        db: Database,
        handlers: Mapping[str, Sequence[Handler]],
        options: WorkerOptions | None = None,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.handlers = handlers
        self.options = options or WorkerOptions()
        self.clock = clock
        self._wakeup = asyncio.Event()
        db.on_outbox_commit(self.wake)

    def wake(self) -> None:
        self._wakeup.set()

    def backoff(self, attempts: int) -> float:
        base = self.options.backoff_base_seconds * (2 ** max(attempts - 1, 0))
        delay = min(base, self.options.backoff_max_seconds)
        return float(delay * random.uniform(0.8, 1.2))

    async def claim(self) -> list[int]:
        """Lease up to one batch of due events to this worker."""
        now = self.clock()
        async with self.db.transaction() as session:
            query = (
                select(OutboxEvent.id)
                .where(
                    OutboxEvent.status == OutboxStatus.PENDING,
                    OutboxEvent.due_at <= now,
                    or_(OutboxEvent.locked_until.is_(None), OutboxEvent.locked_until < now),
                )
                .order_by(OutboxEvent.due_at, OutboxEvent.id)
                .limit(self.options.batch_size)
            )
            if not self.db.is_sqlite:
                query = query.with_for_update(skip_locked=True)
            ids = list((await session.scalars(query)).all())
            if ids:
                await session.execute(
                    update(OutboxEvent)
                    .where(OutboxEvent.id.in_(ids))
                    .values(
                        locked_until=now + timedelta(seconds=self.options.lease_seconds),
                        attempts=OutboxEvent.attempts + 1,
                    )
                )
        return ids

    async def _handle(self, event_id: int) -> None:
        try:
            async with self.db.transaction() as session:
                event = await session.get(OutboxEvent, event_id)
                if event is None or event.status != OutboxStatus.PENDING:
                    return
                for handler in (*self.handlers.get(event.topic, ()), *self.handlers.get("*", ())):
                    await handler(session, event)
                event.status = OutboxStatus.DONE
                event.processed_at = self.clock()
                event.locked_until = None
                event.last_error = None
        except Exception as exc:
            log.exception("outbox event %s failed", event_id)
            await self._record_failure(event_id, exc)

    async def _record_failure(self, event_id: int, exc: BaseException) -> None:
        error = f"{type(exc).__name__}: {exc}"[:4000]
        async with self.db.transaction() as session:
            event = await session.get(OutboxEvent, event_id)
            if event is None:
                return
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

    async def run_once(self) -> int:
        """Handle one batch of due events; returns how many were claimed."""
        ids = await self.claim()
        for event_id in ids:
            await self._handle(event_id)
        return len(ids)

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
        async with self.db.transaction() as session:
            result = await session.execute(
                delete(OutboxEvent).where(
                    OutboxEvent.status == OutboxStatus.DONE, OutboxEvent.processed_at < cutoff
                )
            )
        return int(getattr(result, "rowcount", 0) or 0)

    async def run(self, stop: asyncio.Event) -> None:
        """Loop until `stop` is set: handle due events, then sleep until woken or polled."""
        log.info("outbox worker started")
        last_purge = 0.0
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            try:
                handled = await self.run_once()
                if loop.time() - last_purge > 3600:
                    last_purge = loop.time()
                    await self.purge_done()
            except Exception:
                # The database may be briefly unreachable; never let the loop die.
                log.exception("outbox worker iteration failed")
                handled = 0
            if handled:
                continue
            self._wakeup.clear()
            waiters = [
                asyncio.ensure_future(self._wakeup.wait()),
                asyncio.ensure_future(stop.wait()),
            ]
            await asyncio.wait(
                waiters,
                timeout=self.options.poll_interval_seconds,
                return_when=asyncio.FIRST_COMPLETED,
            )
            for waiter in waiters:
                waiter.cancel()
        log.info("outbox worker stopped")
