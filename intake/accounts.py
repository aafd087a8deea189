"""Managers and API tokens: who may use the hub, and how they prove it.

Passwords are kept as argon2id hashes, computed in a small thread pool of their
own: a flood of sign-ins queues there instead of taking the event loop's CPU,
the default executor's threads or the database's connections. API tokens are random ("omh_" + 43
characters), shown once and stored as their sha256: a token is found by the hash
of what the caller presents, so no stored secret is ever compared byte by byte.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import secrets
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from intake.identities import normalize_email
from storage.db import Database
from storage.errors import Conflict, InvalidInput, NotFound
from storage.models import ApiToken, Manager, ManagerRole
from storage.types import utcnow

TOKEN_PREFIX = "omh_"
TOKEN_PREFIX_LENGTH = 12
# Writing last_used_at on every request would turn each read into a write.
TOKEN_USE_RESOLUTION = timedelta(minutes=1)

_hasher = PasswordHasher()
# Verified against when the email is unknown, so both answers take as long.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def _yield_cpu_to_requests() -> None:
    # argon2 runs its lanes in threads of its own, which inherit this thread's nice
    # value on Linux: under a flood of sign-ins every other request still gets the CPU.
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)


# argon2 takes tens of milliseconds of CPU and 64 MiB per hash by design: at most
# half the cores hash at once, whatever the number of sign-ins waiting.
_PASSWORD_POOL = ThreadPoolExecutor(
    max_workers=max(1, min(4, (os.cpu_count() or 2) // 2)),
    thread_name_prefix="omnihub-password",
    initializer=_yield_cpu_to_requests,
)


def hash_password(password: str) -> str:
    """An argon2id hash of `password` (salted; different on every call)."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True when `password` matches `password_hash`; a malformed hash never matches."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def hash_password_async(password: str) -> str:
    """`hash_password` in the password pool, off the event loop."""
    return await asyncio.get_running_loop().run_in_executor(_PASSWORD_POOL, hash_password, password)


async def password_matches(password_hash: str | None, password: str) -> bool:
    """`verify_password` in the password pool; without a hash, as slow and always False."""
    loop = asyncio.get_running_loop()
    if password_hash is None:
        await loop.run_in_executor(_PASSWORD_POOL, verify_password, _DUMMY_HASH, password)
        return False
    return await loop.run_in_executor(_PASSWORD_POOL, verify_password, password_hash, password)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class AccountRepository:
    """The queries on managers and API tokens."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get_manager(self, manager_id: int) -> Manager | None:
        return await self.session.get(Manager, manager_id)

    async def manager_by_email(self, email: str) -> Manager | None:
        result = await self.session.scalars(select(Manager).where(Manager.email == email))
        return result.first()

    async def list_managers(self, *, include_inactive: bool) -> Sequence[Manager]:
        query = select(Manager).order_by(Manager.name, Manager.id)
        if not include_inactive:
            query = query.where(Manager.is_active.is_(True))
        return (await self.session.scalars(query)).all()

    async def get_token(self, token_id: int) -> ApiToken | None:
        return await self.session.get(ApiToken, token_id)

    async def active_token_by_hash(self, token_hash: str) -> ApiToken | None:
        result = await self.session.scalars(
            select(ApiToken).where(ApiToken.token_hash == token_hash, ApiToken.revoked_at.is_(None))
        )
        return result.first()

    async def touch_token(self, token_id: int, now: datetime) -> bool:
        """Set last_used_at unless another request did within the resolution."""
        result = await self.session.execute(
            update(ApiToken)
            .where(
                ApiToken.id == token_id,
                or_(
                    ApiToken.last_used_at.is_(None),
                    ApiToken.last_used_at <= now - TOKEN_USE_RESOLUTION,
                ),
            )
            .values(last_used_at=now)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0))


async def create_manager(
    session: AsyncSession,
    *,
    email: str,
    name: str,
    role: ManagerRole | str,
    password: str | None,
) -> Manager:
    """Add a manager; Conflict when the (normalised) email is taken, InvalidInput on a bad role."""
    try:
        role = ManagerRole(role)
    except ValueError as exc:
        allowed = ", ".join(r.value for r in ManagerRole)
        raise InvalidInput(
            f"unknown role {role!r}; one of: {allowed}", code="invalid_role"
        ) from exc
    normalized = normalize_email(email)
    name = name.strip()
    if not name:
        raise InvalidInput("name is empty", code="invalid_name")
    if password is not None and not password:
        raise InvalidInput("password is empty", code="invalid_password")
    repo = AccountRepository(session)
    if await repo.manager_by_email(normalized) is not None:
        raise Conflict(f"a manager with email {normalized} exists", code="manager_exists")
    manager = Manager(
        email=normalized,
        name=name,
        role=role.value,
        password_hash=hash_password(password) if password is not None else None,
        is_active=True,
    )
    session.add(manager)
    await session.flush()
    return manager


async def authenticate_manager(db: Database, email: str, password: str) -> Manager | None:
    """The active manager with this email and password, else None.

    The manager is read in a short read session that is closed before the password
    is checked, so sign-ins waiting for the hash hold no database connection.
    """
    try:
        normalized = normalize_email(email)
    except InvalidInput:
        normalized = None
    manager = None
    if normalized is not None:
        async with db.read() as session:
            manager = await AccountRepository(session).manager_by_email(normalized)
    if manager is None or not manager.is_active:
        await password_matches(None, password)
        return None
    if not await password_matches(manager.password_hash, password):
        return None
    return manager


async def set_password_hash(session: AsyncSession, manager_id: int, password_hash: str) -> None:
    """Store a new password hash (from `hash_password_async`); NotFound without the manager."""
    manager = await AccountRepository(session).get_manager(manager_id)
    if manager is None:
        raise NotFound(f"manager {manager_id} not found")
    manager.password_hash = password_hash
    await session.flush()


async def get_manager(session: AsyncSession, manager_id: int) -> Manager | None:
    return await AccountRepository(session).get_manager(manager_id)


async def list_managers(
    session: AsyncSession, *, include_inactive: bool = True
) -> Sequence[Manager]:
    """Every manager, by name."""
    return await AccountRepository(session).list_managers(include_inactive=include_inactive)


async def create_api_token(
    session: AsyncSession, *, name: str, manager_id: int | None = None
) -> tuple[str, ApiToken]:
    """A new token and its row; the plain token is returned here and nowhere else.

    A token without a manager acts as an administrator (the operator's CLI makes those).
    """
    name = name.strip()
    if not name:
        raise InvalidInput("token name is empty", code="invalid_name")
    repo = AccountRepository(session)
    if manager_id is not None and await repo.get_manager(manager_id) is None:
        raise NotFound(f"manager {manager_id} not found")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        name=name,
        token_hash=hash_token(token),
        prefix=token[:TOKEN_PREFIX_LENGTH],
        manager_id=manager_id,
    )
    session.add(row)
    await session.flush()
    return token, row


def token_use_due(api_token: ApiToken, now: datetime | None = None) -> bool:
    """Whether last_used_at is stale enough to be worth a write."""
    now = now or utcnow()
    last = api_token.last_used_at
    return last is None or now - last >= TOKEN_USE_RESOLUTION


async def authenticate_token(
    session: AsyncSession, token: str, *, touch: bool = True, now: datetime | None = None
) -> ApiToken | None:
    """The unrevoked token matching `token`, else None.

    With `touch`, records the use (at most once a minute; needs a write session).
    Callers on a read session pass `touch=False` and call `record_token_use` in a
    transaction when `token_use_due` says so.
    """
    token = token.strip()
    if not token.startswith(TOKEN_PREFIX) or len(token) > 256:
        return None
    api_token = await AccountRepository(session).active_token_by_hash(hash_token(token))
    if api_token is None:
        return None
    now = now or utcnow()
    if touch and token_use_due(api_token, now):
        await record_token_use(session, api_token.id, now)
        api_token.last_used_at = now
    return api_token


async def record_token_use(
    session: AsyncSession, token_id: int, now: datetime | None = None
) -> None:
    """Set the token's last_used_at unless it was set less than a minute ago."""
    await AccountRepository(session).touch_token(token_id, now or utcnow())


async def revoke_api_token(session: AsyncSession, token_id: int) -> ApiToken:
    """Revoke a token (idempotent); NotFound when it does not exist."""
    api_token = await AccountRepository(session).get_token(token_id)
    if api_token is None:
        raise NotFound(f"API token {token_id} not found")
    if api_token.revoked_at is None:
        api_token.revoked_at = utcnow()
        await session.flush()
    return api_token
