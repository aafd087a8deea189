"""FastAPI dependencies of the managers' API: the hub context, sessions and who is calling.

A caller proves who they are with `Authorization: Bearer omh_...` (scripts, ERP
and 1C integrations) or with the `omnihub_session` cookie the web UI gets from
`POST /api/v1/auth/login`: a server-side session (intake.sessions, 12 hours,
revocable), whose state-changing requests pass the CSRF checks of inbox.sessions.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from channels.base import HubContext
from inbox.sessions import SESSION_COOKIE, check_csrf
from intake.accounts import authenticate_token, get_manager, record_token_use, token_use_due
from intake.journal import Actor
from intake.sessions import find_session, record_session_use
from storage.errors import Forbidden, InvalidInput, Unauthorized
from storage.models import ManagerRole
from storage.types import utcnow


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller: a manager (by cookie or their own token) or an operator's token."""

    manager_id: int | None
    token_id: int | None
    role: str
    # The manager_sessions row when signed in by cookie.
    session_id: int | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == ManagerRole.ADMIN

    @property
    def actor(self) -> Actor:
        return Actor(manager_id=self.manager_id, token_id=self.token_id)


# C0 controls and DEL: PostgreSQL cannot take a NUL at all (a 500 where SQLite answers),
# and no filter, key or id has a use for the others.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


async def refuse_control_characters(request: Request) -> None:
    """422 `invalid_characters` before any work: a control character in the query string or
    the path, or a NUL anywhere in a JSON body (its other text may hold newlines and tabs).

    Every API router depends on it, so both databases see the same requests.
    """
    named = [("query", name, value) for name, value in request.query_params.multi_items()]
    named += [("path", name, str(value)) for name, value in request.path_params.items()]
    for where, name, value in named:
        if _CONTROL.search(name) or _CONTROL.search(value):
            raise InvalidInput(
                f"{where} parameter {name!r} contains control characters",
                code="invalid_characters",
            )
    if request.method in ("GET", "HEAD", "DELETE", "OPTIONS"):
        return
    # JSON can only spell a NUL as the escape \u0000: parse only when it is there.
    body = await request.body()
    if b"\\u0000" not in body:
        return
    try:
        document = json.loads(body)
    except ValueError:
        return  # FastAPI answers a body that is not JSON itself
    if any("\x00" in text for text in _strings(document)):
        raise InvalidInput("the body contains a NUL character", code="invalid_characters")


def get_context(request: Request) -> HubContext:
    context: HubContext = request.app.state.context
    return context


ContextDep = Annotated[HubContext, Depends(get_context)]


async def read_session(request: Request, context: ContextDep) -> AsyncIterator[AsyncSession]:
    """A read-only session for this request (never waits for writers on SQLite). When it
    began is kept (`request.state.read_at`, wall clock): a page's live stream asks with it
    whether a change came after the page's read (inbox.web.live)."""
    request.state.read_at = time.time()
    async with context.db.read() as session:
        yield session


ReadSessionDep = Annotated[AsyncSession, Depends(read_session)]


def unauthorized(detail: str) -> Unauthorized:
    return Unauthorized(detail)


async def _token_principal(context: HubContext, session: AsyncSession, token: str) -> Principal:
    api_token = await authenticate_token(session, token, touch=False)
    if api_token is None:
        raise unauthorized("invalid or revoked API token")
    role: str = ManagerRole.ADMIN
    if api_token.manager_id is not None:
        manager = await get_manager(session, api_token.manager_id)
        if manager is None or not manager.is_active:
            raise unauthorized("the token's manager is deactivated")
        role = manager.role
    now = utcnow()
    if token_use_due(api_token, now):
        async with context.db.transaction() as write:
            await record_token_use(write, api_token.id, now)
    return Principal(manager_id=api_token.manager_id, token_id=api_token.id, role=role)


async def get_principal(
    request: Request, context: ContextDep, session: ReadSessionDep
) -> Principal:
    """The authenticated caller; 401 with `WWW-Authenticate: Bearer` otherwise.

    A Bearer header wins over the cookie and is never second-guessed by it.
    """
    authorization = request.headers.get("authorization")
    if authorization is not None:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthorized("expected 'Authorization: Bearer <token>'")
        return await _token_principal(context, session, token.strip())
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        now = utcnow()
        signed_in = await find_session(session, cookie, now)
        if signed_in is None:
            raise unauthorized("the session expired or was ended; log in again")
        await check_csrf(request, context, cookie)
        if signed_in.seen_due(now):
            async with context.db.transaction() as write:
                await record_session_use(write, signed_in.session_id, now)
        return Principal(
            manager_id=signed_in.manager_id,
            token_id=None,
            role=signed_in.role,
            session_id=signed_in.session_id,
        )
    raise unauthorized("authentication required")


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def require_admin(principal: PrincipalDep) -> Principal:
    """The caller, if an administrator (tokens without a manager are the operator's)."""
    if not principal.is_admin:
        raise Forbidden("administrators only", code="admin_required")
    return principal


AdminDep = Annotated[Principal, Depends(require_admin)]

# The refusals of the checks below, for routes to declare (inbox.answers).
ADMIN_REQUIRED = Forbidden(code="admin_required")
NO_MANAGER = Forbidden(code="no_manager")


def require_self_or_admin(principal: Principal, manager_id: int) -> None:
    """403 unless the caller is an administrator or the manager `manager_id` themself."""
    if not principal.is_admin and principal.manager_id != manager_id:
        raise Forbidden("administrators, or the manager themself", code="forbidden")


def caller_manager(principal: Principal) -> int:
    """The calling manager's id; 403 for an operator's token (it has no manager)."""
    if principal.manager_id is None:
        raise Forbidden("only a manager can do this (the token has no manager)", code="no_manager")
    return principal.manager_id
