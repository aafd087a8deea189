"""Outbound delivery: managers' replies leave through the channel the client came by.

Each message is sent at most once. A worker claims due messages in a short
transaction (status `sending`, with a lease) and commits before it talks to the
outside world; the outcome is recorded in a second transaction. A temporary
failure puts the message back in the queue with a backoff; a permanent one, or
too many attempts, marks it failed. If a worker dies between the two
transactions, nobody can know whether the server took the message: when the
lease runs out the message is marked failed ("outcome unknown") instead of being
sent again, and a manager decides.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import Database
from storage.delivery_repository import DeliveryRepository
from storage.events import MessageFailed, MessageSent
from storage.models import Message, MessageStatus
from storage.outbox import emit
from storage.types import utcnow

log = logging.getLogger(__name__)


class TemporaryFailure(Exception):
    """Try again later (a 4xx reply, a connection that failed).

    `retry_after` (seconds), when the other side said how long to wait (Telegram's 429),
    is the delay before the next attempt instead of the exponential backoff.
    """

    def __init__(self, *args: object, retry_after: float | None = None) -> None:
        super().__init__(*args)
        self.retry_after = retry_after


class PermanentFailure(Exception):
    """Never try again (a 5xx reply, a recipient that does not exist)."""


@dataclass(slots=True)
class Delivered:
    """What the sender reports; `record` runs in the transaction that marks it sent."""

    detail: str = ""
    meta: dict[str, object] = field(default_factory=dict)


class Sender(Protocol):
    async def send(self, db: Database, message_id: int) -> Delivered:
        """Deliver one message; raise TemporaryFailure or PermanentFailure."""
        ...

    async def record(self, session: AsyncSession, message: Message, delivered: Delivered) -> None:
        """Remember channel-specific facts of a delivered message."""
        ...


@dataclass
class DeliveryOptions:
    max_attempts: int = 8
    base_backoff_seconds: float = 30.0
    max_backoff_seconds: float = 3600.0
    lease_seconds: float = 300.0
    batch_size: int = 20
    poll_seconds: float = 2.0
    concurrency: int = 8


class DeliveryWorker:
    def __init__(
        self, db: Database, senders: Mapping[str, Sender], options: DeliveryOptions | None = None
    ) -> None:
        self.db = db
        self.senders = dict(senders)
        self.options = options or DeliveryOptions()
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    def backoff(self, attempts: int) -> float:
        delay = self.options.base_backoff_seconds * 2 ** max(attempts - 1, 0)
        return min(delay, self.options.max_backoff_seconds) * random.uniform(0.8, 1.2)

    async def run_once(self) -> int:
        """Deliver what is due now; returns how many messages were attempted."""
        if not self.senders:
            return 0
        await self._expire_leases()
        now = utcnow()
        async with self.db.transaction() as session:
            claimed = await DeliveryRepository(session).claim(
                self.senders.keys(),
                now,
                now + timedelta(seconds=self.options.lease_seconds),
                self.options.batch_size,
            )
        if not claimed:
            return 0
        limit = asyncio.Semaphore(self.options.concurrency)

        async def one(message_id: int, kind: str) -> None:
            async with limit:
                await self._deliver(message_id, self.senders[kind])

        await asyncio.gather(*(one(message_id, kind) for message_id, kind in claimed))
        return len(claimed)

    async def drain(self, max_rounds: int = 50) -> int:
        total = 0
        for _ in range(max_rounds):
            done = await self.run_once()
            total += done
            if not done:
                break
        return total

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                busy = await self.run_once()
            except Exception:
                log.exception("delivery round failed")
                busy = 0
            if busy:
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    _first(self._wake.wait(), stop.wait()), self.options.poll_seconds
                )

    async def _deliver(self, message_id: int, sender: Sender) -> None:
        try:
            delivered = await sender.send(self.db, message_id)
        except PermanentFailure as exc:
            await self._finish(message_id, None, failure=str(exc), permanent=True)
        except TemporaryFailure as exc:
            await self._finish(
                message_id, None, failure=str(exc), permanent=False, retry_after=exc.retry_after
            )
        except Exception as exc:  # a bug or an unexpected error: retried like a temporary one
            log.exception("delivery of message %s failed", message_id)
            await self._finish(message_id, None, failure=f"{type(exc).__name__}: {exc}")
        else:
            await self._finish(message_id, delivered, sender)

    async def _finish(
        self,
        message_id: int,
        delivered: Delivered | None,
        sender: Sender | None = None,
        *,
        failure: str | None = None,
        permanent: bool = False,
        retry_after: float | None = None,
    ) -> None:
        async with self.db.transaction() as session:
            message = await DeliveryRepository(session).leased(message_id)
            if message is None:
                return
            now = utcnow()
            refs = {
                "conversation_id": message.conversation_id,
                "message_id": message.id,
                "channel_id": message.channel_id,
            }
            if delivered is not None:
                message.status = MessageStatus.SENT
                message.sent_at = now
                message.deliver_after = None
                message.error = None
                if sender is not None:
                    await sender.record(session, message, delivered)
                emit(session, MessageSent(**refs))
                return
            out_of_attempts = message.delivery_attempts >= self.options.max_attempts
            message.error = (failure or "delivery failed")[:2000]
            if permanent or out_of_attempts:
                message.status = MessageStatus.FAILED
                message.deliver_after = None
                emit(session, MessageFailed(**refs, reason=message.error))
            else:
                message.status = MessageStatus.QUEUED
                delay = (
                    max(0.0, retry_after)
                    if retry_after is not None
                    else self.backoff(message.delivery_attempts)
                )
                message.deliver_after = now + timedelta(seconds=delay)

    async def _expire_leases(self) -> None:
        async with self.db.transaction() as session:
            for message in await DeliveryRepository(session).expired_leases(utcnow()):
                message.status = MessageStatus.FAILED
                message.deliver_after = None
                message.error = (
                    "delivery was interrupted; whether the server took the message is "
                    "unknown, so it was not sent again"
                )
                emit(
                    session,
                    MessageFailed(
                        conversation_id=message.conversation_id,
                        message_id=message.id,
                        channel_id=message.channel_id,
                        reason=message.error,
                    ),
                )


async def _first(*waits: object) -> None:
    tasks = [asyncio.ensure_future(w) for w in waits]  # type: ignore[call-overload]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
