"""The PostgreSQL pool hands out live connections: one that sat idle is checked with
one round trip, and a dead one is replaced before anybody's transaction uses it."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

import storage.db
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
