"""The whole job: requests answered AND routed per second, until the backlog is empty.

A request's answer is only half of what the hub does for it: the outbox events it wrote
(routing, notifications, live updates) are handled afterwards, by the worker in the
serving process or in a process of its own. A hub that answers fast and leaves a
growing backlog would look fast in the answered rate alone, so every channel benchmark
also reports the sustained rate:

    sustained = 2xx answers of the whole run / (empty backlog - first request)

counting every answer from the first request on (warmup and the requests finished
after the measured window included), and measuring until no outbox event that is due
is left pending. Timers that fall due later (SLA, forward-after-idle) are not backlog.
Before the load the hub gets staff to route to (`seed_staff`: managers online in one
queue, the default queue of every channel), so routing makes real assignments.

The bare baselines have nothing to route: their sustained rate is their answered rate.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import func, select, update

from bench.load import LoadResult, run_load
from storage.db import Database
from storage.models import (
    Channel,
    Conversation,
    Manager,
    OutboxEvent,
    OutboxStatus,
    Presence,
    Queue,
    QueueMember,
    Strategy,
)
from storage.types import utcnow

T = TypeVar("T")
STAFF = 20  # managers online in the benchmark's queue
DRAIN_TIMEOUT = 600.0  # seconds the backlog may take to empty before the run is a failure


class HarnessError(Exception):
    """The benchmark itself could not run: a server did not start, a database failed."""


class BacklogNotEmpty(HarnessError):
    """The outbox still held due events when the drain timeout passed."""


def sqlite_url(data_dir: Path) -> str:
    """The database `omnihub serve` uses in `data_dir` when no URL is set."""
    return f"sqlite+aiosqlite:///{(data_dir / 'omnihub.db').resolve()}"


@dataclass
class Sustained:
    """The whole run of one hub measurement, from its first request to its empty backlog."""

    answered: int  # 2xx answers, the whole run
    seconds: float  # first request to empty backlog
    drain_seconds: float  # last answer to empty backlog
    backlog: int  # due events pending when the load stopped
    parked: int  # events the worker gave up on (failed handlers)
    assigned: int  # conversations with a manager at the end

    @property
    def rate(self) -> float:
        return self.answered / self.seconds if self.seconds else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "requests_per_s": round(self.rate, 1),
            "answered": self.answered,
            "seconds": round(self.seconds, 3),
            "drain_seconds": round(self.drain_seconds, 3),
            "backlog_at_stop": self.backlog,
            "parked": self.parked,
            "assigned": self.assigned,
        }

    def line(self) -> str:
        return (
            f"sustained {self.rate:9.1f} req/s  backlog {self.backlog} events, drained in "
            f"{self.drain_seconds:.1f} s  assigned {self.assigned}  parked {self.parked}"
        )


async def _with_db(database_url: str, work: Callable[[Database], Awaitable[T]]) -> T:
    db = Database(database_url, pool_size=1)
    try:
        return await work(db)
    finally:
        await db.dispose()


async def _backlog(db: Database) -> int:
    async with db.read() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(OutboxEvent)
            .where(OutboxEvent.status == OutboxStatus.PENDING, OutboxEvent.due_at <= utcnow())
        )
    return int(count or 0)


async def _counts(db: Database) -> tuple[int, int]:
    async with db.read() as session:
        parked = await session.scalar(
            select(func.count())
            .select_from(OutboxEvent)
            .where(OutboxEvent.status == OutboxStatus.PARKED)
        )
        assigned = await session.scalar(
            select(func.count())
            .select_from(Conversation)
            .where(Conversation.assignee_id.is_not(None))
        )
    return int(parked or 0), int(assigned or 0)


async def _drain(db: Database, within: float, poll: float) -> tuple[int, float]:
    """(due events pending now, perf_counter() when none was left)."""
    first = await _backlog(db)
    pending, deadline = first, time.perf_counter() + within
    while pending:
        if time.perf_counter() > deadline:
            raise BacklogNotEmpty(f"{pending} outbox events still pending after {within:.0f} s")
        await asyncio.sleep(poll)
        pending = await _backlog(db)
    return first, time.perf_counter()


async def empty_backlog(
    database_url: str, within: float = DRAIN_TIMEOUT, poll: float = 0.05
) -> tuple[int, float]:
    """Wait until no due outbox event is pending: (pending at the call, perf_counter() when
    it emptied)."""
    return await _with_db(database_url, lambda db: _drain(db, within, poll))


def wait_for_empty_backlog(
    database_url: str, within: float = DRAIN_TIMEOUT, poll: float = 0.05
) -> tuple[int, float]:
    """`empty_backlog` from synchronous code."""
    return asyncio.run(empty_backlog(database_url, within, poll))


async def _seed_staff(db: Database, managers: int) -> None:
    far = utcnow() + timedelta(days=1)
    async with db.transaction() as session:
        queue = Queue(key="bench", name="Бенчмарк", strategy=Strategy.EVENLY)
        staff = [
            Manager(
                email=f"bench{n}@bench.example.ru",
                name=f"Менеджер {n}",
                presence=Presence.ONLINE,
                presence_expires_at=far,
                capacity=1_000_000,  # the load never waits for a free manager
                languages=[],
            )
            for n in range(managers)
        ]
        session.add(queue)
        session.add_all(staff)
        await session.flush()
        session.add_all(
            QueueMember(queue_id=queue.id, manager_id=m.id, position=i) for i, m in enumerate(staff)
        )
        await session.execute(update(Channel).values(default_queue_id=queue.id))


async def add_staff(database_url: str, managers: int = STAFF) -> None:
    """Managers online in one queue, the default queue of every channel there is now."""
    await _with_db(database_url, lambda db: _seed_staff(db, managers))


def seed_staff(database_url: str, managers: int = STAFF) -> None:
    """`add_staff` from synchronous code."""
    asyncio.run(add_staff(database_url, managers))


def finish(database_url: str, result: LoadResult, timeout: float = DRAIN_TIMEOUT) -> Sustained:
    """After a load has stopped: wait for the backlog to empty and say what the run sustained."""
    stopped = time.perf_counter()
    backlog, drained = wait_for_empty_backlog(database_url, timeout)
    parked, assigned = asyncio.run(_with_db(database_url, _counts))
    return Sustained(
        answered=result.answered,
        seconds=drained - result.started,
        drain_seconds=drained - stopped,
        backlog=backlog,
        parked=parked,
        assigned=assigned,
    )


def run_whole(
    base_url: str, database_url: str, *, drain_timeout: float = DRAIN_TIMEOUT, **load: Any
) -> tuple[LoadResult, Sustained]:
    """`run_load` against a hub that starts with an empty backlog, then `finish`."""
    wait_for_empty_backlog(database_url, drain_timeout)
    result = run_load(base_url, **load)
    return result, finish(database_url, result, drain_timeout)


def measure_load(
    base_url: str,
    where: str,
    database_url: str | None = None,
    unit: str = "req/s",
    **load: Any,
) -> tuple[LoadResult, Sustained | None]:
    """One closed-loop run, printed as it ends; against a hub (its `database_url`) also
    until the hub's backlog is empty."""
    sustained = None
    if database_url is None:
        result = run_load(base_url, **load)
    else:
        result, sustained = run_whole(base_url, database_url, **load)
    print(f"  {where:26} {result.line().replace('req/s', unit)}", flush=True)
    if sustained is not None:
        print(f"  {'':26} {sustained.line().replace('req/s', unit)}", flush=True)
    for sample in result.error_samples:
        print(f"    error: {sample}", flush=True)
    return result, sustained
