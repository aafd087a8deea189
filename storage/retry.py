"""Running a unit of work again when a concurrent transaction won a race on a unique key.

Two transactions that both find no row for a key (a message's external id, a new
contact's identity, a call, a channel's key) both insert it; the one that commits
second fails with an IntegrityError. Its work is not wrong, only late: run it again in
a fresh transaction and it finds the winner's row. This module is the one place that
loop lives.

Contract: `work` is safe to run more than once (it looks before it inserts), and each
attempt runs in its own transaction, so a failed attempt leaves nothing behind. The
last attempt's IntegrityError propagates; any other error propagates at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import Database

T = TypeVar("T")

# Each retry finds at least one more winner's row; more than a few in a row means the
# work is not finding what it collides with, which retrying will not fix.
CONFLICT_ATTEMPTS = 5


async def retry_on_conflict(
    attempt: Callable[[], Awaitable[T]], *, attempts: int = CONFLICT_ATTEMPTS
) -> T:
    """Await `attempt()` (which opens its own transaction) until it does not lose a race."""
    for number in range(1, attempts + 1):
        try:
            return await attempt()
        except IntegrityError:
            if number == attempts:
                raise
    raise AssertionError("attempts must be at least 1")


async def in_transaction(
    db: Database,
    work: Callable[[AsyncSession], Awaitable[T]],
    *,
    attempts: int = CONFLICT_ATTEMPTS,
) -> T:
    """`work` in a transaction of its own, committed; run again in a fresh one on a conflict."""

    async def attempt() -> T:
        async with db.transaction() as session:
            return await work(session)

    return await retry_on_conflict(attempt, attempts=attempts)
