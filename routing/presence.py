"""Presence: online, away or offline; lapses to offline when heartbeats stop."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from storage.errors import InvalidInput, NotFound
from storage.events import PresenceChanged
from storage.models import Manager, Presence
from storage.outbox import emit

HEARTBEAT_TTL_SECONDS = 120


async def set_presence(
    session: AsyncSession,
    manager_id: int,
    presence: Presence | str,
    *,
    now: datetime,
    ttl_seconds: int = HEARTBEAT_TTL_SECONDS,
) -> Manager:
    """Set a manager's presence; online and away last `ttl_seconds` unless renewed.

    Going online emits `manager.presence_changed`, which routes what waits in the
    manager's queues.
    """
    try:
        value = Presence(presence)
    except ValueError as exc:
        raise InvalidInput(
            "presence is one of online, away, offline", code="invalid_presence"
        ) from exc
    manager = await session.get(Manager, manager_id)
    if manager is None:
        raise NotFound(f"no manager {manager_id}")
    lapsed = manager.presence_expires_at is not None and manager.presence_expires_at <= now
    # A lapsed heartbeat is offline already: coming back online is a change that routes.
    before = Presence.OFFLINE.value if lapsed else manager.presence
    manager.presence = value
    manager.presence_expires_at = (
        None if value is Presence.OFFLINE else now + timedelta(seconds=ttl_seconds)
    )
    if before != value:
        emit(session, PresenceChanged(manager_id=manager_id, from_=before, to=value.value))
    return manager


async def keep_presence(
    session: AsyncSession,
    manager_id: int,
    presence: Presence | str,
    *,
    now: datetime,
    ttl_seconds: int = HEARTBEAT_TTL_SECONDS,
) -> Manager:
    """A workspace tab's heartbeat: `set_presence`, but no write while the same state still
    has more than half its time to run (every open tab beats; the row changes at most once
    per half-TTL)."""
    manager = await session.get(Manager, manager_id)
    if manager is None:
        raise NotFound(f"no manager {manager_id}")
    fresh = manager.presence_expires_at is not None and manager.presence_expires_at > now + (
        timedelta(seconds=ttl_seconds / 2)
    )
    if manager.presence == presence and (fresh or presence == Presence.OFFLINE):
        return manager
    return await set_presence(session, manager_id, presence, now=now, ttl_seconds=ttl_seconds)
