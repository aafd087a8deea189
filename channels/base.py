"""What every channel shares: the hub context, the Channel protocol, committed ingest."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Protocol

from fastapi import APIRouter
from sqlalchemy.exc import IntegrityError

from intake.ingest import IntakeConfig, ingest
from intake.schemas import InboundMessage, IngestResult
from storage.blobs import BlobStore
from storage.bus import EventBus
from storage.db import Database
from storage.models import ChannelKind
from storage.ratelimit import RateLimiter

INGEST_ATTEMPTS = 5


@dataclass
class HubContext:
    """The running hub's shared parts, built once by the composition root."""

    db: Database
    blobs: BlobStore
    bus: EventBus
    secret: str
    intake: IntakeConfig = field(default_factory=IntakeConfig)
    forms_rate_limiter: RateLimiter | None = None
    public_url: str | None = None
    extras: dict[str, object] = field(default_factory=dict)


class Channel(Protocol):
    """A channel kind: its inbound HTTP endpoints (if any) under the hub's app."""

    kind: ClassVar[ChannelKind]

    def router(self) -> APIRouter: ...


async def ingest_committed(context: HubContext, message: InboundMessage) -> IngestResult:
    """Ingest in its own transaction and return only after the commit.

    A concurrent duplicate or a race on a new identity shows up as an
    IntegrityError; running again finds what the other transaction stored.
    """
    for attempt in range(INGEST_ATTEMPTS):
        try:
            async with context.db.transaction() as session:
                return await ingest(session, message, context.intake)
        except IntegrityError:
            if attempt == INGEST_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")
