"""Engines and sessions for SQLite (embedded) and PostgreSQL (scale-out).

The boundary that starts the work owns the transaction: `Database.transaction()`
commits on success and rolls back on error; services below only flush.

SQLite allows one writer at a time. Rather than letting concurrent writers spin
in SQLite's busy handler (sleeps of up to 100 ms each), writes go through one
connection that begins with BEGIN IMMEDIATE, so writers queue fairly on the
async pool; reads use their own connections and never wait for writers (WAL).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.util.concurrency import await_

from storage.sqlite_inline import giving_way, inline_creator

OUTBOX_FLAG = "omnihub.outbox_written"
# The PostgreSQL channel on which a commit that wrote outbox events wakes the workers.
OUTBOX_CHANNEL = "omnihub_outbox"
_NOTIFY_OUTBOX = text(f"NOTIFY {OUTBOX_CHANNEL}")
LISTEN_RETRY_SECONDS = 1.0

log = logging.getLogger(__name__)


async def _first_of(*events: asyncio.Event) -> None:
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


async def _listen_once(dsn: str, callback: Callable[[], None], stop: asyncio.Event) -> None:
    """LISTEN until `stop` or until the connection is lost."""
    lost = asyncio.Event()

    def notified(*_args: object) -> None:
        callback()

    connection = await asyncpg.connect(dsn)
    try:
        connection.add_termination_listener(lambda _connection: lost.set())
        await connection.add_listener(OUTBOX_CHANNEL, notified)
        callback()  # whatever was committed before listening is looked at now
        await _first_of(stop, lost)
    finally:
        with contextlib.suppress(Exception):
            await connection.close(timeout=2)


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


def json_dumps(value: Any) -> str:
    """JSON columns keep Cyrillic as it is: shorter rows, less work than \\u escapes."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _sqlite_pragmas(dbapi_connection: Any, _record: Any, *, writer: bool = False) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    # A writer waits for another process's write lock in the event loop, not in SQLite's
    # busy handler, which would sleep in the loop's thread (storage.sqlite_inline).
    cursor.execute("PRAGMA busy_timeout=0" if writer else "PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_engine(url: URL, *, writer: bool, pool_size: int) -> AsyncEngine:
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=60,
        json_serializer=json_dumps,
        async_creator=inline_creator(url.database or ":memory:", timeout=30, writer=writer),
    )

    @event.listens_for(engine.sync_engine, "connect")
    def on_connect(dbapi_connection: Any, record: Any) -> None:
        _sqlite_pragmas(dbapi_connection, record, writer=writer)
        # Let SQLAlchemy, not the driver, decide when a transaction begins.
        dbapi_connection.isolation_level = None

    @event.listens_for(engine.sync_engine, "begin")
    def on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if writer else "BEGIN")

    return engine


# A connection used this recently is taken as alive without a ping: under load, the
# pool hands out connections checked in a moment ago, and a ping would be one more
# round trip on every transaction. (One that died meanwhile fails its statement;
# SQLAlchemy then replaces the whole pool, and the work is retried by its caller.)
PING_AFTER_IDLE_SECONDS = 1.0


def _note_checkin(_dbapi_connection: Any, record: Any) -> None:
    record.info["checked_in_at"] = time.monotonic()


def _ping_on_checkout(_dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """Make sure a pooled PostgreSQL connection that sat idle is alive before use.

    An empty query is one round trip; pool_pre_ping would take three (BEGIN, the
    ping, ROLLBACK). A dead connection is replaced by the pool and the checkout retried.
    """
    checked_in = record.info.get("checked_in_at")
    if checked_in is not None and time.monotonic() - checked_in < PING_AFTER_IDLE_SECONDS:
        return
    try:
        await_(proxy.driver_connection.fetchrow(";"))
    except Exception as exc:
        raise DisconnectionError(f"pooled connection is dead: {exc}") from exc


def _postgres_engine(
    url: URL, *, pool_size: int, echo: bool, server_settings: dict[str, str] | None = None
) -> AsyncEngine:
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        json_serializer=json_dumps,
        echo=echo,
        connect_args={"server_settings": server_settings} if server_settings else {},
    )
    event.listen(engine.sync_engine, "checkout", _ping_on_checkout)
    event.listen(engine.sync_engine, "checkin", _note_checkin)
    return engine


class Database:
    """The hub's database: a write path and a read path over one URL."""

    def __init__(self, url: str | URL, *, pool_size: int = 10, echo: bool = False) -> None:
        self.url = make_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        self._on_outbox: list[Callable[[], None]] = []
        if self.is_sqlite:
            database = self.url.database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            self.engine = _sqlite_engine(self.url, writer=True, pool_size=1)
            self.read_engine = _sqlite_engine(self.url, writer=False, pool_size=4)
        else:
            self.engine = _postgres_engine(self.url, pool_size=pool_size, echo=echo)
            self.read_engine = self.engine
        self._writer = async_sessionmaker(self.engine, expire_on_commit=False)
        self._reader = async_sessionmaker(self.read_engine, expire_on_commit=False)
        self._pool_size, self._echo = pool_size, echo
        self._redoable: async_sessionmaker[AsyncSession] | None = None
        self._redoable_engine: AsyncEngine | None = None

    @property
    def dialect(self) -> str:
        return self.url.get_backend_name()

    def on_outbox_commit(self, callback: Callable[[], None]) -> None:
        """Call `callback` after each commit that wrote outbox events (wakes the worker)."""
        self._on_outbox.append(callback)

    @asynccontextmanager
    async def transaction(
        self, *, redoable: bool = False, background: bool = False
    ) -> AsyncIterator[AsyncSession]:
        """A session in a write transaction: committed on success, rolled back on error.

        `redoable`: the work will be done again if it is lost, because what asked for it
        stays due until this very transaction marks it done (an outbox event). On
        PostgreSQL its commit then does not wait for the write-ahead log to reach the
        disk (synchronous_commit off, on connections of their own): a crash may lose
        the last fraction of a second of such transactions, whole, never half of one,
        and never once a later durable commit has followed them. SQLite's WAL mode
        with synchronous=NORMAL already commits this way.

        `background`: work nobody waits for (the outbox worker's). On SQLite it lets the
        writers of other processes that wait for the write lock (answers) go first.
        """
        maker = self._writer if not redoable or self.is_sqlite else self._redoable_sessions()
        polite = giving_way() if background and self.is_sqlite else contextlib.nullcontext()
        with polite:
            async with maker() as session, session.begin():
                yield session
                if session.info.get(OUTBOX_FLAG) and not self.is_sqlite:
                    # Delivered at commit (never for a rollback) to the workers LISTENing
                    # in other processes: they wake at once instead of at their next poll.
                    await session.execute(_NOTIFY_OUTBOX)
        if session.info.pop(OUTBOX_FLAG, False):
            for callback in self._on_outbox:
                callback()

    async def listen_outbox(self, callback: Callable[[], None], stop: asyncio.Event) -> None:
        """Call `callback` whenever another process commits outbox events, until `stop`.

        PostgreSQL only (LISTEN on a connection of its own, opened again if it is lost);
        on SQLite, where the writers share this process, `on_outbox_commit` serves.
        """
        if self.is_sqlite:
            return
        dsn = self.url.set(drivername="postgresql").render_as_string(hide_password=False)
        while not stop.is_set():
            try:
                await _listen_once(dsn, callback, stop)
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("outbox notifications unavailable, polling meanwhile: %s", exc)
            if not stop.is_set():
                await _sleep_unless(stop, LISTEN_RETRY_SECONDS)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for reading; never writes, never waits for writers on SQLite."""
        async with self._reader() as session, session.begin():
            yield session

    def _redoable_sessions(self) -> async_sessionmaker[AsyncSession]:
        if self._redoable is None:
            self._redoable_engine = _postgres_engine(
                self.url,
                pool_size=self._pool_size,
                echo=self._echo,
                server_settings={"synchronous_commit": "off"},
            )
            self._redoable = async_sessionmaker(self._redoable_engine, expire_on_commit=False)
        return self._redoable

    async def dispose(self) -> None:
        if self._redoable_engine is not None:
            await self._redoable_engine.dispose()
        await self.engine.dispose()
        if self.read_engine is not self.engine:
            await self.read_engine.dispose()
