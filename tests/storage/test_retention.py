"""Retention: rows past their period go, in small batches; recent ones stay, and a
redelivered Telegram update inside the window is still recognised as handled."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from hub.maintenance import Maintenance, retention_of
from hub.settings import Settings
from storage.db import Database
from storage.models import (
    ManagerSession,
    ManagerTelegramCode,
    OutboxEvent,
    OutboxStatus,
    TelegramUpdate,
)
from storage.retention import Retention, prune
from storage.telegram_repository import TelegramRepository
from storage.types import utcnow
from tests.factories import create_channel, create_manager

DAY = timedelta(days=1)
_tokens = itertools.count(1)


def _hash() -> str:
    return hashlib.sha256(f"token-{next(_tokens)}".encode()).hexdigest()


async def _updates(db: Database, channel_id: int, ages: dict[int, timedelta]) -> None:
    now = utcnow()
    async with db.transaction() as session:
        for update_id, age in ages.items():
            session.add(
                TelegramUpdate(channel_id=channel_id, update_id=update_id, created_at=now - age)
            )


async def _session(
    db: Database, manager_id: int, *, expires: timedelta, revoked: timedelta | None = None
) -> int:
    """A sign-in that expires (or expired: negative) `expires` from now, revoked ago."""
    now = utcnow()
    row = ManagerSession(
        token_hash=_hash(),
        manager_id=manager_id,
        expires_at=now + expires,
        last_seen_at=now - 60 * DAY,
        revoked_at=None if revoked is None else now - revoked,
        created_at=now - 60 * DAY,
    )
    async with db.transaction() as session:
        session.add(row)
        await session.flush()
        return row.id


async def _event(db: Database, status: str, processed_ago: timedelta | None) -> int:
    now = utcnow()
    row = OutboxEvent(
        topic="test.retention",
        payload={},
        status=status,
        due_at=now - 60 * DAY,
        created_at=now - 60 * DAY,
        processed_at=None if processed_ago is None else now - processed_ago,
    )
    async with db.transaction() as session:
        session.add(row)
        await session.flush()
        return row.id


async def _ids(db: Database, column: object) -> set[object]:
    async with db.read() as session:
        return set(await session.scalars(select(column)))  # type: ignore[call-overload]


async def test_old_rows_go_and_recent_ones_stay(db: Database) -> None:
    channel = await create_channel(db, kind="telegram")
    manager = await create_manager(db)
    await _updates(db, channel.id, {1: 30 * DAY, 2: 8 * DAY, 3: 6 * DAY, 4: timedelta(hours=1)})
    long_expired = await _session(db, manager.id, expires=-31 * DAY)
    long_revoked = await _session(db, manager.id, expires=20 * DAY, revoked=40 * DAY)
    lately_expired = await _session(db, manager.id, expires=-29 * DAY)
    lately_revoked = await _session(db, manager.id, expires=-40 * DAY + 50 * DAY, revoked=DAY)
    live = await _session(db, manager.id, expires=7 * DAY)
    old_done = await _event(db, OutboxStatus.DONE, 15 * DAY)
    recent_done = await _event(db, OutboxStatus.DONE, 13 * DAY)
    old_parked = await _event(db, OutboxStatus.PARKED, None)
    old_pending = await _event(db, OutboxStatus.PENDING, None)
    stale = await create_manager(db)
    async with db.transaction() as session:
        session.add_all(
            [
                ManagerTelegramCode(
                    manager_id=manager.id, code_hash=_hash(), expires_at=utcnow() + DAY
                ),
                ManagerTelegramCode(
                    manager_id=stale.id, code_hash=_hash(), expires_at=utcnow() - DAY
                ),
            ]
        )

    counts = await prune(db, Retention(), utcnow())

    assert counts == {
        "telegram_updates": 2,
        "manager_sessions": 2,
        "outbox_events": 1,
        "manager_telegram_codes": 1,
    }
    assert await _ids(db, TelegramUpdate.update_id) == {3, 4}
    assert await _ids(db, ManagerSession.id) == {lately_expired, lately_revoked, live}
    assert long_expired not in await _ids(db, ManagerSession.id)
    assert long_revoked not in await _ids(db, ManagerSession.id)
    assert await _ids(db, OutboxEvent.id) == {recent_done, old_parked, old_pending}
    assert old_done not in await _ids(db, OutboxEvent.id)
    assert await _ids(db, ManagerTelegramCode.manager_id) == {manager.id}

    # A second pass finds nothing more to do.
    assert set((await prune(db, Retention(), utcnow())).values()) == {0}


async def test_a_redelivered_update_inside_the_window_is_still_recognised(db: Database) -> None:
    channel = await create_channel(db, kind="telegram")
    await _updates(db, channel.id, {10: 6 * DAY, 11: 8 * DAY})

    await prune(db, Retention(telegram_updates=7 * DAY), utcnow())

    async with db.read() as session:
        handled = await TelegramRepository(session).handled_updates(
            [(channel.id, 10), (channel.id, 11)]
        )
    assert handled == {(channel.id, 10)}
    # Recording it again (what a redelivered webhook does) is refused as a duplicate.
    with pytest.raises(IntegrityError):
        async with db.transaction() as session:
            await TelegramRepository(session).record_update(channel.id, 10)


async def test_many_rows_go_in_small_batches(db: Database) -> None:
    channel = await create_channel(db, kind="telegram")
    await _updates(db, channel.id, {n: (10 + n) * DAY for n in range(11)} | {99: DAY})

    counts = await prune(db, Retention(batch=3), utcnow())

    assert counts["telegram_updates"] == 11
    assert await _ids(db, TelegramUpdate.update_id) == {99}


def test_telegram_updates_are_kept_longer_than_telegrams_redelivery() -> None:
    assert Settings().retention_telegram_updates_days == 7
    assert retention_of(Settings()) == Retention(
        telegram_updates=7 * DAY, sessions=30 * DAY, outbox_done=14 * DAY
    )
    with pytest.raises(ValueError, match="at least one day"):
        Retention(telegram_updates=timedelta(hours=12))
    with pytest.raises(ValueError):
        Settings(retention_telegram_updates_days=0.5)


async def test_the_workers_maintenance_prunes_on_start_and_stops(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    channel = await create_channel(db, kind="telegram")
    await _updates(db, channel.id, {1: 3 * DAY, 2: timedelta(hours=2)})
    monkeypatch.setenv("OMNIHUB_RETENTION_TELEGRAM_UPDATES_DAYS", "2")
    stop = asyncio.Event()
    service = asyncio.create_task(Maintenance(db, Settings()).run(stop))

    async def pruned() -> None:
        while True:
            async with db.read() as session:
                left = await session.scalar(select(func.count()).select_from(TelegramUpdate))
            if left == 1:
                return
            await asyncio.sleep(0.05)

    await asyncio.wait_for(pruned(), timeout=10)
    stop.set()
    await asyncio.wait_for(service, timeout=10)
    assert await _ids(db, TelegramUpdate.update_id) == {2}


async def test_a_zero_interval_turns_pruning_off(db: Database) -> None:
    channel = await create_channel(db, kind="telegram")
    await _updates(db, channel.id, {1: 30 * DAY})

    await asyncio.wait_for(
        Maintenance(db, Settings(prune_interval_seconds=0)).run(asyncio.Event()), timeout=5
    )

    assert await _ids(db, TelegramUpdate.update_id) == {1}
