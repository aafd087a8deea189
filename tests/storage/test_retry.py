"""storage.retry: a unit of work that lost a race on a unique key runs again, a few times
at most; other errors are not retried."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError

from storage.retry import CONFLICT_ATTEMPTS, retry_on_conflict


def _conflict() -> IntegrityError:
    return IntegrityError("INSERT ...", None, Exception("duplicate key"))


class TestRetryOnConflict:
    async def test_runs_again_until_the_race_is_not_lost(self) -> None:
        calls: list[int] = []

        async def attempt() -> str:
            calls.append(1)
            if len(calls) < 3:
                raise _conflict()
            return "found the winner's row"

        assert await retry_on_conflict(attempt) == "found the winner's row"
        assert len(calls) == 3

    async def test_the_last_conflict_propagates(self) -> None:
        calls: list[int] = []

        async def attempt() -> None:
            calls.append(1)
            raise _conflict()

        with pytest.raises(IntegrityError):
            await retry_on_conflict(attempt)
        assert len(calls) == CONFLICT_ATTEMPTS

    async def test_other_errors_are_not_retried(self) -> None:
        calls: list[int] = []

        async def attempt() -> None:
            calls.append(1)
            raise ValueError("not a race")

        with pytest.raises(ValueError):
            await retry_on_conflict(attempt)
        assert len(calls) == 1
