"""The PostgreSQL pool hands out live connections: one that sat idle is checked with
one round trip, and a dead one is replaced before anybody's transaction uses it."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import sys
import time
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

import storage.db
import storage.sqlite_inline
from storage.db import Database


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_a_connection_killed_while_idle_is_replaced_before_use(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storage.db, "PING_AFTER_IDLE_SECONDS", 0.2)
    database = Database(db_url, pool_size=1)
    try:
        async with database.transaction() as session:
            first = await session.scalar(text("SELECT pg_backend_pid()"))
        killer = await asyncpg.connect(_dsn(db_url))
        try:
            assert await killer.fetchval("SELECT pg_terminate_backend($1)", first)
        finally:
            await killer.close()
        await asyncio.sleep(0.3)
        async with database.transaction() as session:
            second = await session.scalar(text("SELECT pg_backend_pid()"))
        assert second != first
    finally:
        await database.dispose()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_only_a_connection_that_sat_idle_is_pinged(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storage.db, "PING_AFTER_IDLE_SECONDS", 0.2)
    database = Database(db_url, pool_size=1)
    queries: list[str] = []
    try:
        conn = await database.engine.connect()
        raw = await conn.get_raw_connection()
        raw.driver_connection.add_query_logger(lambda record: queries.append(record.query))
        await conn.close()
        async with database.transaction() as session:
            await session.execute(text("SELECT 1"))
        assert queries == ["BEGIN;", "COMMIT;"], "used a moment ago: no ping"
        await asyncio.sleep(0.3)
        async with database.transaction() as session:
            await session.execute(text("SELECT 1"))
        assert queries[2:] == [";", "BEGIN;", "COMMIT;"], "idle: one empty query first"
    finally:
        await database.dispose()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_a_redoable_transaction_does_not_wait_for_the_disk(db_url: str) -> None:
    database = Database(db_url, pool_size=1)
    try:
        async with database.transaction(redoable=True) as session:
            assert await session.scalar(text("SHOW synchronous_commit")) == "off"
            await session.execute(text("CREATE TABLE redone (n int)"))
            await session.execute(text("INSERT INTO redone VALUES (1)"))
        async with database.transaction() as session:
            assert await session.scalar(text("SHOW synchronous_commit")) == "on"
            assert await session.scalar(text("SELECT count(*) FROM redone")) == 1
    finally:
        await database.dispose()


HOLD_THE_LOCK = """
import sqlite3, sys, time
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN IMMEDIATE")
connection.execute("INSERT INTO counted (n) VALUES (1)")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
connection.execute("COMMIT")
"""


async def test_waiting_for_another_process_s_write_lock_does_not_stop_the_loop(
    tmp_path: Path,
) -> None:
    """Another process (the worker beside `serve`) holds SQLite's write lock: a writer
    here waits for it while the event loop goes on serving everything else."""
    path = tmp_path / "hub.db"
    database = Database(f"sqlite+aiosqlite:///{path}")
    try:
        async with database.transaction() as session:
            await session.execute(text("CREATE TABLE counted (n integer)"))
        holder = await asyncio.create_subprocess_exec(
            sys.executable, "-c", HOLD_THE_LOCK, str(path), "0.6", stdout=asyncio.subprocess.PIPE
        )
        assert holder.stdout is not None
        assert await holder.stdout.readline() == b"locked\n"
        ticks: list[float] = []

        async def tick() -> None:
            while True:
                ticks.append(time.monotonic())
                await asyncio.sleep(0.01)

        ticker = asyncio.create_task(tick())
        started = time.monotonic()
        async with database.transaction() as session:
            await session.execute(text("INSERT INTO counted (n) VALUES (2)"))  # BEGINs
            waited = time.monotonic() - started
        ticker.cancel()
        assert await holder.wait() == 0
        assert waited > 0.3, "the other process held the lock: this writer had to wait"
        during = [t for t in ticks if started <= t <= started + waited]
        assert len(during) > 10, f"the loop stalled: {len(during)} ticks in {waited:.2f} s"
        gaps = [b - a for a, b in itertools.pairwise(during)]
        assert max(gaps) < 0.2, f"the loop stalled for {max(gaps):.3f} s"
        async with database.read() as session:
            assert await session.scalar(text("SELECT sum(n) FROM counted")) == 3
    finally:
        await database.dispose()


async def test_a_writer_gives_up_on_a_lock_held_past_its_timeout(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    cursor = sqlite3.connect(path, isolation_level=None)
    try:
        cursor.execute("CREATE TABLE counted (n integer)")
        cursor.execute("BEGIN IMMEDIATE")
        waiting = sqlite3.connect(path, isolation_level=None, timeout=0)
        started = time.monotonic()
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            await storage.sqlite_inline.begin_immediate(waiting.cursor(), give_up_after=0.2)
        assert 0.2 <= time.monotonic() - started < 1.0
        waiting.close()
    finally:
        cursor.close()


async def test_background_work_lets_a_waiting_writer_of_another_process_go_first(
    tmp_path: Path,
) -> None:
    """While another process waits for the write lock (its answers do), the outbox
    worker's next transaction waits for it to have gone, and never for long."""
    path = tmp_path / "hub.db"
    database = Database(f"sqlite+aiosqlite:///{path}")
    other = storage.sqlite_inline.Writers(str(path))  # the other process's view
    try:
        async with database.transaction() as session:
            await session.execute(text("CREATE TABLE counted (n integer)"))

        async def begin(*, background: bool) -> float:
            started = time.monotonic()
            async with database.transaction(background=background) as session:
                await session.execute(text("INSERT INTO counted (n) VALUES (1)"))
                return time.monotonic() - started

        assert await begin(background=True) < 0.1, "nobody waits: at once"
        with other.waiting():
            assert await begin(background=False) < 0.1, "answers do not give way"
            gave_way = await begin(background=True)
        assert storage.sqlite_inline.GIVE_WAY_SECONDS <= gave_way < 1.0, (
            "a waiter that never goes is given way to for a bounded time only"
        )

        async def stop_waiting_soon() -> None:
            with other.waiting():
                await asyncio.sleep(0.1)

        waiter = asyncio.create_task(stop_waiting_soon())
        await asyncio.sleep(0)
        waited = await begin(background=True)
        await waiter
        assert 0.09 <= waited < storage.sqlite_inline.GIVE_WAY_SECONDS
    finally:
        other.close()
        await database.dispose()
