"""The call journal as managers read it, the blocklist, and how a PBX names a manager.

Services flush, never commit.
"""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from intake.calls.events import NUMBER_LENGTH, blocklist_key, client_number
from intake.calls.repository import CallFilters, CallRepository
from intake.journal import Page, decode_cursor, page_of
from storage.errors import Conflict, InvalidInput, NotFound
from storage.events import NumberBlocked
from storage.models import BlockedNumber, Call, CallDirection, CallState, Manager
from storage.outbox import emit

CURSOR_KIND = "call"


def check_call_filters(filters: CallFilters, region: str) -> CallFilters:
    """Known directions and states; the number in E.164 (InvalidInput otherwise)."""
    if filters.direction is not None and filters.direction not in set(CallDirection):
        raise InvalidInput("direction is inbound or outbound", code="invalid_direction")
    unknown = sorted(set(filters.states) - {state.value for state in CallState})
    if unknown:
        raise InvalidInput(f"unknown call state(s): {', '.join(unknown)}", code="invalid_state")
    if filters.number is not None:
        number = client_number(filters.number, region)
        if number is None:
            raise InvalidInput(f"invalid phone number {filters.number!r}", code="invalid_phone")
        filters = replace(filters, number=number)
    return filters


async def list_calls(
    session: AsyncSession, filters: CallFilters, *, cursor: str | None, limit: int
) -> Page[Call]:
    """Calls newest first, with an opaque cursor."""
    after_id = decode_cursor(CURSOR_KIND, cursor) if cursor else None
    rows = await CallRepository(session).list_calls(filters, after_id, limit + 1)
    return page_of(CURSOR_KIND, list(rows), limit, lambda row: row.id)


async def get_call(session: AsyncSession, call_id: int) -> Call:
    call = await CallRepository(session).get_call(call_id)
    if call is None:
        raise NotFound(f"no call {call_id}")
    return call


async def block_number(
    session: AsyncSession, raw: str, *, reason: str, manager_id: int | None, region: str
) -> BlockedNumber:
    """Block a number (E.164 when it is one): its calls are rejected where the provider
    can, and never become contacts, leads or callbacks. 409 when it is blocked already."""
    number = blocklist_key(raw, region)
    if number is None:
        raise InvalidInput("the number is empty", code="invalid_phone")
    repo = CallRepository(session)
    if await repo.blocked_number(number) is not None:
        raise Conflict(f"{number} is blocked already", code="already_blocked")
    blocked = BlockedNumber(number=number, reason=reason[:200], created_by_id=manager_id)
    session.add(blocked)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:
        raise Conflict(f"{number} is blocked already", code="already_blocked") from exc
    emit(session, NumberBlocked(number=number, manager_id=manager_id))
    return blocked


async def unblock_number(session: AsyncSession, raw: str, *, region: str) -> str:
    number = blocklist_key(raw, region)
    if number is None or not await CallRepository(session).unblock(number):
        raise NotFound(f"{raw!r} is not blocked")
    return number


async def blocked_numbers(session: AsyncSession) -> list[BlockedNumber]:
    return await CallRepository(session).blocked_numbers()


async def set_manager_line(
    session: AsyncSession,
    manager_id: int,
    *,
    extension: str | None,
    phone: str | None,
    region: str,
) -> Manager:
    """How the PBX names the manager: an extension or SIP login, and their phone number."""
    manager = await session.get(Manager, manager_id)
    if manager is None:
        raise NotFound(f"no manager {manager_id}")
    extension = (extension or "").strip() or None
    if extension is not None and len(extension) > NUMBER_LENGTH:
        raise InvalidInput("the extension is too long", code="invalid_extension")
    normalized = None
    if phone is not None and phone.strip():
        normalized = client_number(phone, region)
        if normalized is None:
            raise InvalidInput(f"invalid phone number {phone!r}", code="invalid_phone")
    manager.extension = extension
    manager.phone = normalized
    await session.flush()
    return manager
