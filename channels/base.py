"""What every channel shares: the hub context and committed ingest.

`HubContext` holds the running hub's shared parts as typed fields, each built once
by the composition root (`hub.context.build_context`); nothing is added to it
later under a string key. It lives here, in channels/, because channels are the
lowest layer that uses it; so its field types come from channels/ or below
(storage, intake, routing). The parts of higher layers are typed by what channels
see of them: the Telegram bots of bots/ as `UpdateProcessor` (a protocol of
channels/telegram), the inbox's sign-in limits as the two `RateLimiter`s of
storage/ it is made of. The channel kinds' own parts (bot registry, form and line
caches, the call journal) are imported for typing only: their modules import
this one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError

from intake.batch import ingest_batch
from intake.ingest import IntakeConfig, ingest
from intake.schemas import InboundMessage, IngestResult
from routing.engine import RoutingEngine
from storage.blobs import BlobStore
from storage.bus import EventBus
from storage.db import Database
from storage.errors import HubError
from storage.ratelimit import RateLimiter

if TYPE_CHECKING:
    from channels.telegram.bots import BotRegistry
    from channels.telegram.webhook import UpdateProcessor
    from channels.telephony.config import SetupCache
    from channels.telephony.journal import CallBatcher
    from channels.webform.service import FormCache

log = logging.getLogger(__name__)

# A channel's key: in URLs (/forms/{key}, /webhooks/.../{key}) and on the command line.
CHANNEL_KEY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")

INGEST_ATTEMPTS = 5


@dataclass
class HubContext:
    """The running hub's shared parts, built once by the composition root."""

    db: Database
    blobs: BlobStore
    bus: EventBus
    secret: str
    # The Telegram bots' clients and send limits, one per channel.
    bots: BotRegistry
    # Web forms' configurations, by key (read through to the database).
    forms: FormCache
    # Phone lines' configurations and secrets, by key.
    phone_lines: SetupCache
    # Call events recorded with group commit through the call journal.
    calls: CallBatcher
    intake: IntakeConfig = field(default_factory=IntakeConfig)
    # One routing engine for the worker, the API and the call journal (tests swap
    # in one on their own clock, and a call journal on it).
    routing: RoutingEngine = field(default_factory=RoutingEngine)
    forms_rate_limiter: RateLimiter | None = None
    # The inbox's sign-in limits: per account and per client address.
    login_account_limiter: RateLimiter | None = None
    login_ip_limiter: RateLimiter | None = None
    public_url: str | None = None
    batcher: IngestBatcher | None = None
    # Who handles a client bot's updates; None: intake alone, without a conversation.
    client_bot: UpdateProcessor | None = None
    # Who handles a managers' bot's updates; None: they are dropped.
    manager_bot: UpdateProcessor | None = None


def error_response(exc: HubError, headers: dict[str, str] | None = None) -> JSONResponse:
    """The hub's error body for a HubError, with its own headers and any the caller adds."""
    return JSONResponse(
        {"error": exc.code, "detail": exc.detail},
        status_code=exc.status_code,
        headers={**(headers or {}), **(exc.headers or {})},
    )


async def ingest_committed(context: HubContext, message: InboundMessage) -> IngestResult:
    """Ingest and return only after the commit (through the context's batcher if it has one)."""
    if context.batcher is not None:
        return await context.batcher.submit(message)
    return await ingest_alone(context.db, message, context.intake)


async def ingest_alone(db: Database, message: InboundMessage, config: IntakeConfig) -> IngestResult:
    """Ingest one message in its own transaction.

    A concurrent duplicate or a race on a new identity shows up as an
    IntegrityError; running again finds what the other transaction stored.
    """
    for attempt in range(INGEST_ATTEMPTS):
        try:
            async with db.transaction() as session:
                return await ingest(session, message, config)
        except IntegrityError:
            if attempt == INGEST_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


class ShuttingDown(HubError):
    status_code = 503
    code = "shutting_down"

    def __init__(self) -> None:
        super().__init__("the hub is shutting down; send again shortly")


class IngestBatcher:
    """Group commit for inbound messages.

    Requests queue their messages; a few committer tasks each take whatever has
    queued up (at most `max_batch`) and store it with `ingest_batch` in one
    transaction. Under light load a batch is one message and nothing waits; under
    heavy load one transaction carries many. If a batch fails as a whole (a race
    with another process on a new identity, say), each of its messages is
    retried alone, so one message never costs another its answer.
    """

    def __init__(
        self, db: Database, config: IntakeConfig, *, committers: int = 1, max_batch: int = 64
    ) -> None:
        self.db = db
        self.config = config
        self.committers = committers
        self.max_batch = max_batch
        self.gather_turns = 4
        self._queue: asyncio.Queue[tuple[InboundMessage, asyncio.Future[IngestResult]]] = (
            asyncio.Queue()
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False

    async def submit(self, message: InboundMessage) -> IngestResult:
        if self._closed:
            raise ShuttingDown()
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._commit_loop(), name=f"ingest-committer-{n}")
                for n in range(self.committers)
            ]
        future: asyncio.Future[IngestResult] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((message, future))
        # Shielded: a client that goes away does not take its message with it.
        return await asyncio.shield(future)

    async def close(self) -> None:
        """Finish what is queued, then stop the committers; later submits are refused."""
        self._closed = True
        if self._tasks:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), timeout=30)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        while not self._queue.empty():  # not stored in time: the caller must hear so
            _, future = self._queue.get_nowait()
            if not future.done():
                future.set_exception(ShuttingDown())

    async def _commit_loop(self) -> None:
        while True:
            batch = [await self._queue.get()]
            # Requests already read from their sockets reach the queue within a loop
            # turn or two: wait those turns so one transaction carries them all.
            for _ in range(self.gather_turns):
                await asyncio.sleep(0)
                if self._queue.empty():
                    break
                while len(batch) < self.max_batch and not self._queue.empty():
                    batch.append(self._queue.get_nowait())
            try:
                await self._commit(batch)
            except Exception:  # never let the committer die
                log.exception("ingest batch of %s failed", len(batch))
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _commit(
        self, batch: list[tuple[InboundMessage, asyncio.Future[IngestResult]]]
    ) -> None:
        messages = [message for message, _ in batch]
        outcomes: list[IngestResult | BaseException]
        try:
            async with self.db.transaction() as session:
                outcomes = list(await ingest_batch(session, messages, self.config))
        except Exception:
            outcomes = [await self._alone(message) for message in messages]
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)

    async def _alone(self, message: InboundMessage) -> IngestResult | BaseException:
        try:
            return await ingest_alone(self.db, message, self.config)
        except Exception as exc:
            return exc
