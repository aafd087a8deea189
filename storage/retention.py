"""Retention: rows that would grow without bound are deleted once nobody needs them.

- `telegram_updates`: the handled update ids a redelivered update is recognised by.
  Telegram redelivers for 24 hours at most; they are kept longer (7 days by default),
  so a retried webhook inside that window is still skipped.
- `manager_sessions`: sign-ins that ended (revoked or expired) long enough ago; kept a
  while after the end so "where am I signed in" and audits can still see them.
- `outbox_events`: events handled (done) long enough ago. Pending and parked events
  are never touched: parked ones wait for an operator.
- `manager_telegram_codes`: one-time link codes past their expiry (nobody can use them).

Each table is emptied in small batches, each its own short background transaction, so
that on SQLite the write lock is never held for long and answering processes go first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Select, and_, delete, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import Database
from storage.models import (
    ManagerSession,
    ManagerTelegramCode,
    OutboxEvent,
    OutboxStatus,
    TelegramUpdate,
)
from storage.models.base import table_of

DEFAULT_BATCH = 500


@dataclass(frozen=True, slots=True)
class Retention:
    """How long each kind of row is kept (after its end, for sessions)."""

    telegram_updates: timedelta = timedelta(days=7)
    sessions: timedelta = timedelta(days=30)
    outbox_done: timedelta = timedelta(days=14)
    batch: int = DEFAULT_BATCH

    def __post_init__(self) -> None:
        if self.telegram_updates < timedelta(days=1):
            # Telegram redelivers an unanswered update for up to 24 hours.
            raise ValueError("telegram updates must be kept at least one day")
        if self.batch < 1:
            raise ValueError("the batch must hold at least one row")


# One batch: delete up to `limit` old rows as of `now`; the number deleted.
Batch = Callable[[AsyncSession, datetime, int], Awaitable[int]]


async def _telegram_updates(session: AsyncSession, cutoff: datetime, limit: int) -> int:
    table = table_of(TelegramUpdate)
    keys = list(
        await session.execute(
            select(table.c.channel_id, table.c.update_id)
            .where(table.c.created_at < cutoff)
            .order_by(table.c.created_at)
            .limit(limit)
        )
    )
    if not keys:
        return 0
    await session.execute(
        delete(table).where(
            tuple_(table.c.channel_id, table.c.update_id).in_([tuple(k) for k in keys])
        )
    )
    return len(keys)


async def _delete_ids(
    session: AsyncSession, model: type[ManagerSession | OutboxEvent], query: Select[int]
) -> int:
    ids = list(await session.scalars(query))
    if not ids:
        return 0
    await session.execute(delete(model).where(model.id.in_(ids)))
    return len(ids)


async def _sessions(session: AsyncSession, cutoff: datetime, limit: int) -> int:
    ended = or_(
        ManagerSession.expires_at < cutoff,
        and_(ManagerSession.revoked_at.is_not(None), ManagerSession.revoked_at < cutoff),
    )
    return await _delete_ids(
        session, ManagerSession, select(ManagerSession.id).where(ended).limit(limit)
    )


async def _outbox_done(session: AsyncSession, cutoff: datetime, limit: int) -> int:
    query = (
        select(OutboxEvent.id)
        .where(OutboxEvent.status == OutboxStatus.DONE, OutboxEvent.processed_at < cutoff)
        .limit(limit)
    )
    return await _delete_ids(session, OutboxEvent, query)


async def _telegram_codes(session: AsyncSession, cutoff: datetime, limit: int) -> int:
    table = table_of(ManagerTelegramCode)
    managers = list(
        await session.scalars(
            select(table.c.manager_id).where(table.c.expires_at < cutoff).limit(limit)
        )
    )
    if not managers:
        return 0
    await session.execute(delete(table).where(table.c.manager_id.in_(managers)))
    return len(managers)


async def prune(db: Database, retention: Retention, now: datetime) -> dict[str, int]:
    """Delete what `retention` no longer keeps as of `now`; the rows deleted per table."""
    plan: list[tuple[str, Batch, datetime]] = [
        ("telegram_updates", _telegram_updates, now - retention.telegram_updates),
        ("manager_sessions", _sessions, now - retention.sessions),
        ("outbox_events", _outbox_done, now - retention.outbox_done),
        ("manager_telegram_codes", _telegram_codes, now),
    ]
    counts: dict[str, int] = {}
    for name, batch, cutoff in plan:
        total = 0
        while True:
            async with db.transaction(background=True) as session:
                deleted = await batch(session, cutoff, retention.batch)
            total += deleted
            if deleted < retention.batch:
                break
            await asyncio.sleep(0)  # let the other writers of this process have a turn
        counts[name] = total
    return counts
