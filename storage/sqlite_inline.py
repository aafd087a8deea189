"""SQLite for the async engine without a thread hop per call.

aiosqlite runs every DBAPI call on a helper thread; an ingest makes a few dozen
calls (cursor, execute, fetch, close for each statement), and each hop costs
more than the SQLite work it carries (WAL pages in memory, no fsync per commit).
This shim offers aiosqlite's connection interface to SQLAlchemy's aiosqlite
dialect (through `async_creator`) but runs sqlite3 inline on the event loop.

Blocking is bounded: the hub's own writers queue on one pooled connection, and the
write lock that another process holds (`omnihub worker` beside `serve`, or a second
answering process) is waited for without blocking the loop. SQLite's busy handler
would sleep in the calling thread, here the event loop, for up to 100 ms at a time,
and keep sleeping while the other process takes the lock again and again between its
naps: every request of the process waited with it, for seconds under load. A writer
connection therefore fails BEGIN IMMEDIATE at once when the lock is taken
(busy_timeout 0) and tries again after short asyncio sleeps, so the loop keeps
reading requests (which the group commit then stores together) while it waits.

Polling alone is not fair: the outbox worker commits one transaction after another,
and an answering process that polls between them rarely finds the lock free. So a
writer that is waiting says so, by a shared `flock` on a file beside the database
(`-writers`), and background work (`giving_way()`: the outbox worker) looks at that
file before it begins and lets those waiting go first, for at most GIVE_WAY_SECONDS.
Answers wait for at most one of the worker's transactions, which the worker keeps
short (storage.outbox).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextvars import ContextVar
from typing import Any

BEGIN_IMMEDIATE = "BEGIN IMMEDIATE"
# The waits between attempts at the write lock: short, since the other process's
# transactions are short, and growing only a little, so that a writer that has waited
# is not outrun for long by one that keeps taking the lock again.
LOCK_RETRY_FIRST_SECONDS = 0.0005
LOCK_RETRY_MAX_SECONDS = 0.004
_BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
# How long background work lets waiting writers of other processes go first.
GIVE_WAY_SECONDS = 0.25

_GIVING_WAY: ContextVar[bool] = ContextVar("omnihub_sqlite_giving_way", default=False)


@contextlib.contextmanager
def giving_way() -> Iterator[None]:
    """Transactions begun inside let writers of other processes that wait go first."""
    token = _GIVING_WAY.set(True)
    try:
        yield
    finally:
        _GIVING_WAY.reset(token)


class Writers:
    """The processes waiting for one database's write lock, seen through `flock` on a
    file beside it: each waiting process holds a shared lock while it waits."""

    def __init__(self, database: str) -> None:
        self._fd = os.open(f"{database}-writers", os.O_RDWR | os.O_CREAT, 0o600)

    @contextlib.contextmanager
    def waiting(self) -> Iterator[None]:
        fcntl.flock(self._fd, fcntl.LOCK_SH)  # never blocks: nobody holds it exclusively
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def others_waiting(self) -> bool:
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        return False

    def close(self) -> None:
        os.close(self._fd)


def _busy(exc: sqlite3.OperationalError) -> bool:
    return getattr(exc, "sqlite_errorcode", None) in _BUSY_CODES or "locked" in str(exc)


async def begin_immediate(
    cursor: sqlite3.Cursor, give_up_after: float, writers: Writers | None = None
) -> None:
    """Take the write lock, yielding to the event loop while another process holds it
    (and, inside `giving_way()`, first letting the writers that wait go)."""
    started = time.monotonic()
    delay = LOCK_RETRY_FIRST_SECONDS
    if writers is not None and _GIVING_WAY.get():
        while writers.others_waiting() and time.monotonic() - started < GIVE_WAY_SECONDS:
            await asyncio.sleep(delay)
            delay = min(delay * 2, LOCK_RETRY_MAX_SECONDS)
        delay = LOCK_RETRY_FIRST_SECONDS
    try:
        cursor.execute(BEGIN_IMMEDIATE)
        return
    except sqlite3.OperationalError as exc:
        if not _busy(exc):
            raise
    with writers.waiting() if writers is not None else contextlib.nullcontext():
        while True:
            await asyncio.sleep(delay)
            delay = min(delay * 2, LOCK_RETRY_MAX_SECONDS)
            try:
                cursor.execute(BEGIN_IMMEDIATE)
                return
            except sqlite3.OperationalError as exc:
                if not _busy(exc) or time.monotonic() - started >= give_up_after:
                    raise


class InlineCursor:
    __slots__ = ("_cursor", "_lock_timeout", "_writers")

    def __init__(
        self,
        cursor: sqlite3.Cursor,
        lock_timeout: float | None = None,
        writers: Writers | None = None,
    ) -> None:
        self._cursor = cursor
        # Set on writer connections: BEGIN IMMEDIATE waits for the lock asynchronously.
        self._lock_timeout = lock_timeout
        self._writers = writers

    async def __aenter__(self) -> InlineCursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value

    async def execute(self, sql: str, parameters: Sequence[Any] = ()) -> InlineCursor:
        if self._lock_timeout is not None and sql == BEGIN_IMMEDIATE:
            await begin_immediate(self._cursor, self._lock_timeout, self._writers)
        else:
            self._cursor.execute(sql, parameters)
        return self

    async def executemany(self, sql: str, seq: Iterable[Sequence[Any]]) -> InlineCursor:
        self._cursor.executemany(sql, seq)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(size if size is not None else self._cursor.arraysize)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()


class _RunNow:
    """Stands in for aiosqlite's request queue: runs the function at once."""

    def put_nowait(self, item: tuple[asyncio.Future[Any], Callable[[], Any]]) -> None:
        future, function = item
        try:
            future.set_result(function())
        except Exception as exc:
            future.set_exception(exc)


class InlineConnection:
    def __init__(
        self,
        connection: sqlite3.Connection,
        lock_timeout: float | None = None,
        writers: Writers | None = None,
    ) -> None:
        self._conn = connection
        self._lock_timeout = lock_timeout
        self._writers = writers
        self._connection: sqlite3.Connection | None = connection
        self._tx = _RunNow()

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    def cursor(self) -> InlineCursor:
        return InlineCursor(self._conn.cursor(), self._lock_timeout, self._writers)

    async def commit(self) -> None:
        self._conn.commit()

    async def rollback(self) -> None:
        self._conn.rollback()

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._conn.create_function(*args, **kwargs)

    async def close(self) -> None:
        self.stop()

    def stop(self) -> None:
        if self._connection is not None:
            self._connection = None
            self._conn.close()
            if self._writers is not None:
                self._writers.close()


def inline_creator(path: str, timeout: float = 30.0, *, writer: bool = False) -> Callable[[], Any]:
    """An `async_creator` for create_async_engine("sqlite+aiosqlite://", ...).

    `writer`: the connection begins its transactions with BEGIN IMMEDIATE, and waits
    for the write lock without blocking the loop (at most `timeout`); its busy timeout
    must then be 0 (`storage.db` sets it so), so that SQLite itself never sleeps.
    """

    async def connect() -> InlineConnection:
        connection = sqlite3.connect(
            path,
            timeout=timeout,
            check_same_thread=False,
        )
        if not writer:
            return InlineConnection(connection)
        # The writers of a file database meet at the file beside it (in memory: alone).
        writers = Writers(path) if path != ":memory:" and not path.startswith("file:") else None
        return InlineConnection(connection, timeout, writers)

    return connect
