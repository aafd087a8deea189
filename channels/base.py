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

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastapi.responses import JSONResponse

from intake.batch import ingest_batch
from intake.ingest import IntakeConfig, ingest
from intake.schemas import InboundMessage, IngestResult
from routing.engine import RoutingEngine
from storage.blobs import BlobStore
from storage.bus import EventBus
from storage.db import Database
from storage.errors import HubError
from storage.group_commit import GroupCommit
from storage.ratelimit import RateLimiter
from storage.retry import in_transaction

if TYPE_CHECKING:
    from channels.telegram.bots import BotRegistry
    from channels.telegram.webhook import UpdateProcessor
    from channels.telephony.config import SetupCache
    from channels.telephony.journal import CallBatcher
    from channels.webform.service import FormCache

# A channel's key: in URLs (/forms/{key}, /webhooks/.../{key}) and on the command line.
CHANNEL_KEY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


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
    return await in_transaction(db, lambda session: ingest(session, message, config))


class IngestBatcher(GroupCommit[InboundMessage, IngestResult]):
    """Group commit for inbound messages (storage.group_commit's contract).

    A batch is stored with `ingest_batch`, which refuses a message that does not fit
    alone and commits the others; a batch that fails as a whole (a race with another
    process on a new identity, say) is taken again message by message with
    `ingest_alone`.
    """

    def __init__(
        self, db: Database, config: IntakeConfig, *, committers: int = 1, max_batch: int = 64
    ) -> None:
        self.db = db
        self.config = config
        super().__init__(
            self._ingest_batch,
            self._ingest_alone,
            committers=committers,
            max_batch=max_batch,
            gather_turns=4,
        )

    async def _ingest_batch(
        self, messages: Sequence[InboundMessage]
    ) -> Sequence[IngestResult | BaseException]:
        async with self.db.transaction() as session:
            return await ingest_batch(session, messages, self.config)

    async def _ingest_alone(self, message: InboundMessage) -> IngestResult:
        return await ingest_alone(self.db, message, self.config)
