"""Managers' sign-in sessions, kept on the server so that they can be ended.

The browser holds a random token (256 bits); the table keeps its sha256, so a
leaked table cannot be replayed. A session lasts `SESSION_LIFETIME` from sign-in
and ends earlier on logout, on "sign out everywhere", when the manager changes
the password and when an administrator deactivates the manager.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from intake.accounts import hash_token
from storage.models import Manager, ManagerSession
from storage.types import utcnow

SESSION_LIFETIME = timedelta(hours=12)
# Writing last_seen_at on every request would turn each read into a write.
SEEN_RESOLUTION = timedelta(minutes=1)
MAX_SESSION_TOKEN = 256


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A live session and its manager's role."""

    session_id: int
    manager_id: int
    role: str
    last_seen_at: datetime

    def seen_due(self, now: datetime) -> bool:
        """Whether last_seen_at is stale enough to be worth a write."""
        return now - self.last_seen_at >= SEEN_RESOLUTION


class SessionRepository:
    """The queries on manager_sessions."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def live(self, token_hash: str, now: datetime) -> SignedIn | None:
        row = (
            await self.session.execute(
                select(ManagerSession.id, Manager.id, Manager.role, ManagerSession.last_seen_at)
                .join(Manager, Manager.id == ManagerSession.manager_id)
                .where(
                    ManagerSession.token_hash == token_hash,
                    ManagerSession.revoked_at.is_(None),
                    ManagerSession.expires_at > now,
                    Manager.is_active.is_(True),
                )
            )
        ).first()
        return SignedIn(row[0], row[1], row[2], row[3]) if row is not None else None

    async def touch(self, session_id: int, now: datetime) -> None:
        await self.session.execute(
            update(ManagerSession)
            .where(
                ManagerSession.id == session_id,
                ManagerSession.last_seen_at <= now - SEEN_RESOLUTION,
            )
            .values(last_seen_at=now)
            .execution_options(synchronize_session=False)
        )

    async def revoke(
        self, now: datetime, *, token_hash: str | None = None, manager_id: int | None = None
    ) -> int:
        query = update(ManagerSession).where(ManagerSession.revoked_at.is_(None))
        if token_hash is not None:
            query = query.where(ManagerSession.token_hash == token_hash)
        if manager_id is not None:
            query = query.where(ManagerSession.manager_id == manager_id)
        result = await self.session.execute(
            query.values(revoked_at=now).execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0) or 0)


def _valid_shape(token: str) -> bool:
    return 0 < len(token) <= MAX_SESSION_TOKEN


async def open_session(
    session: AsyncSession,
    manager_id: int,
    *,
    user_agent: str | None = None,
    ip: str | None = None,
    now: datetime | None = None,
) -> str:
    """Start a session for the manager; returns the token for the cookie (shown only here)."""
    now = now or utcnow()
    token = secrets.token_urlsafe(32)
    session.add(
        ManagerSession(
            token_hash=hash_token(token),
            manager_id=manager_id,
            created_at=now,
            last_seen_at=now,
            expires_at=now + SESSION_LIFETIME,
            user_agent=user_agent[:300] if user_agent else None,
            ip=ip[:64] if ip else None,
        )
    )
    await session.flush()
    return token


async def find_session(
    session: AsyncSession, token: str, now: datetime | None = None
) -> SignedIn | None:
    """The live session of `token`: not revoked, not expired, its manager active; else None."""
    if not _valid_shape(token):
        return None
    return await SessionRepository(session).live(hash_token(token), now or utcnow())


async def record_session_use(
    session: AsyncSession, session_id: int, now: datetime | None = None
) -> None:
    """Set last_seen_at unless it was set less than a minute ago."""
    await SessionRepository(session).touch(session_id, now or utcnow())


async def end_session(session: AsyncSession, token: str) -> bool:
    """Revoke the session of `token` (idempotent); True when one was live."""
    if not _valid_shape(token):
        return False
    return await SessionRepository(session).revoke(utcnow(), token_hash=hash_token(token)) > 0


async def end_manager_sessions(session: AsyncSession, manager_id: int) -> int:
    """Revoke every live session of the manager ("sign out everywhere"); how many there were."""
    return await SessionRepository(session).revoke(utcnow(), manager_id=manager_id)
