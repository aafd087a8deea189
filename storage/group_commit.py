"""Group commit: requests that arrive together share one transaction.

A request queues its item and waits for its answer. While items are queued, committer
tasks (at most `committers`: one on SQLite, whose single writer gains nothing from
more; a few on PostgreSQL) wait a loop turn or few for the requests already read from
their sockets, then commit what has queued up (at most `max_batch` items) with the
batch function in one transaction. At rest each item commits alone at once; under load
one transaction carries many. A committer ends when the queue is empty, so nothing
runs between bursts and nothing needs stopping unless the hub wants to drain.

Contract:
- `submit` returns only after the commit that stored its item (or raises its error).
- The batch function stores all its items in one transaction and returns one outcome
  per item, in order: a result, or the error that refused that item alone (the others
  are committed). If it raises, nothing was stored, and each item is stored again by
  the single function in its own transaction (which does its own retries), so one
  item never costs another its answer.
- Shielded: a caller that goes away takes neither its item nor the others' with it.
- After `close` begins, `submit` is refused with ShuttingDown (503); `close` waits
  until what is queued is committed (at most CLOSE_TIMEOUT; the rest is answered
  with ShuttingDown).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from storage.errors import HubError

log = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")

CLOSE_TIMEOUT = 30.0


class ShuttingDown(HubError):
    status_code = 503
    code = "shutting_down"

    def __init__(self) -> None:
        super().__init__("the hub is shutting down; send again shortly")


class GroupCommit(Generic[Item, Result]):
    """Commits concurrent items in shared transactions; see the module's contract."""

    def __init__(
        self,
        batch: Callable[[Sequence[Item]], Awaitable[Sequence[Result | BaseException]]],
        single: Callable[[Item], Awaitable[Result]],
        *,
        committers: int = 1,
        max_batch: int = 64,
        gather_turns: int = 1,
    ) -> None:
        self._batch = batch
        self._single = single
        self.committers = committers
        self.max_batch = max_batch
        # How many loop turns a committer waits for more requests, while more keep coming.
        self.gather_turns = gather_turns
        self._pending: list[tuple[Item, asyncio.Future[Result]]] = []
        self._committers: set[asyncio.Task[None]] = set()
        self._closed = False

    async def submit(self, item: Item) -> Result:
        """The item's result once the transaction that stored it has committed."""
        if self._closed:
            raise ShuttingDown()
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if len(self._committers) < self.committers:
            self._committers.add(asyncio.create_task(self._commit_loop(), name="group-commit"))
        # Shielded: a caller that goes away does not take its item with it.
        return await asyncio.shield(future)

    async def close(self) -> None:
        """Commit what is queued, then stop; later submits are refused. What is not
        stored within CLOSE_TIMEOUT is answered with ShuttingDown."""
        self._closed = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drain(), timeout=CLOSE_TIMEOUT)
        pending, self._pending = self._pending, []
        for _, future in pending:  # not stored in time: the caller must hear so
            if not future.done():
                future.set_exception(ShuttingDown())

    async def _drain(self) -> None:
        while self._committers:
            await asyncio.wait(set(self._committers))

    async def _commit_loop(self) -> None:
        # Runs while items are queued; while this task is in the set, queued items have
        # a committer (it leaves the set in the same step as it finds the queue empty).
        try:
            while self._pending:
                await self._gather()
                batch = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
                try:
                    await self._commit(batch)
                except BaseException:  # cancelled by close(): nobody may wait forever
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(ShuttingDown())
                    raise
        finally:
            task = asyncio.current_task()
            if task is not None:
                self._committers.discard(task)

    async def _gather(self) -> None:
        # Requests already read from their sockets queue up within a loop turn or two:
        # wait those turns so one transaction carries them all.
        for _ in range(self.gather_turns):
            queued = len(self._pending)
            await asyncio.sleep(0)
            if len(self._pending) in (queued, 0) or len(self._pending) >= self.max_batch:
                break

    async def _commit(self, batch: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        try:
            outcomes = await self._outcomes([item for item, _ in batch])
        except Exception as exc:  # a bug: answer every caller rather than leave one waiting
            log.exception("group commit of %s items failed", len(batch))
            outcomes = [exc] * len(batch)
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)

    async def _outcomes(self, items: list[Item]) -> list[Result | BaseException]:
        try:
            return list(await self._batch(items))
        except Exception:
            return [await self._alone(item) for item in items]

    async def _alone(self, item: Item) -> Result | BaseException:
        try:
            return await self._single(item)
        except Exception as exc:
            return exc
