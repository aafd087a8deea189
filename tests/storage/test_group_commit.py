"""storage.group_commit.GroupCommit on its own: batching, answers in order, the fallback to
one item at a time, and closing. The batchers built on it are tested with a real database
in tests/intake/test_batch.py and tests/channels/telephony/."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from storage.group_commit import GroupCommit, ShuttingDown


class Store:
    """A batch function that refuses negative items alone and fails whole on zero."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.singles: list[int] = []

    async def batch(self, items: Sequence[int]) -> list[int | BaseException]:
        self.batches.append(list(items))
        if 0 in items:
            raise RuntimeError("the whole batch failed")
        return [ValueError(f"refused {i}") if i < 0 else i * 10 for i in items]

    async def single(self, item: int) -> int:
        self.singles.append(item)
        if item == 0:
            raise RuntimeError("zero fails alone too")
        return item * 10


class TestGroupCommit:
    async def test_items_submitted_together_share_a_batch_and_get_their_own_results(
        self,
    ) -> None:
        store = Store()
        group = GroupCommit(store.batch, store.single, committers=1, max_batch=64)

        results = await asyncio.gather(*(group.submit(n) for n in range(1, 11)))

        assert results == [n * 10 for n in range(1, 11)]
        assert store.batches == [list(range(1, 11))]
        assert store.singles == []

    async def test_a_batch_holds_at_most_max_batch_items(self) -> None:
        store = Store()
        group = GroupCommit(store.batch, store.single, committers=1, max_batch=4)

        results = await asyncio.gather(*(group.submit(n) for n in range(1, 11)))

        assert results == [n * 10 for n in range(1, 11)]
        assert [len(batch) for batch in store.batches] == [4, 4, 2]

    async def test_a_refused_item_gets_its_error_and_the_others_their_results(self) -> None:
        store = Store()
        group = GroupCommit(store.batch, store.single)

        results = await asyncio.gather(
            *(group.submit(n) for n in (1, -2, 3)), return_exceptions=True
        )

        assert results[0] == 10 and results[2] == 30
        assert isinstance(results[1], ValueError)
        assert store.singles == []

    async def test_a_failed_batch_is_taken_again_one_item_at_a_time(self) -> None:
        store = Store()
        group = GroupCommit(store.batch, store.single)

        results = await asyncio.gather(
            *(group.submit(n) for n in (1, 0, 3)), return_exceptions=True
        )

        assert results[0] == 10 and results[2] == 30
        assert isinstance(results[1], RuntimeError)
        assert store.singles == [1, 0, 3]

    async def test_close_commits_what_is_queued_then_refuses(self) -> None:
        store = Store()
        group = GroupCommit(store.batch, store.single, committers=2)
        submits = [asyncio.ensure_future(group.submit(n)) for n in range(1, 31)]
        await asyncio.sleep(0)  # the requests queue up

        await group.close()

        assert sorted(item for batch in store.batches for item in batch) == list(range(1, 31))
        assert await asyncio.gather(*submits) == [n * 10 for n in range(1, 31)]
        with pytest.raises(ShuttingDown) as refused:
            await group.submit(99)
        assert refused.value.status_code == 503

    async def test_a_caller_that_goes_away_does_not_take_its_item_with_it(self) -> None:
        store = Store()
        group = GroupCommit(store.batch, store.single, committers=1)
        first = asyncio.ensure_future(group.submit(1))
        second = asyncio.ensure_future(group.submit(2))
        await asyncio.sleep(0)
        second.cancel()

        assert await first == 10
        await group.close()
        assert sorted(item for batch in store.batches for item in batch) == [1, 2]
