"""intake.ingest(): every channel's input enters the hub through here, the same way."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from intake.contacts import resolve_contact
from intake.identities import IdentityValue, normalize
from intake.ingest_repository import BulkIntakeRepository
from intake.rows import (
    NAME_LENGTH,
    Placed,
    attachment_values,
    clip,
    fit_key,
    language_of,
    store_placed,
    thread_key_of,
)
from intake.schemas import AttachmentIn, InboundMessage, IngestResult, UpdateHandled
from storage.models import Attachment
from storage.telegram_repository import TelegramRepository
from storage.types import utcnow


@dataclass(frozen=True, slots=True)
class IntakeConfig:
    default_region: str = "RU"
    # The largest file a manager may attach to a reply (the page's and the API's limit).
    reply_file_max_bytes: int = 25 * 1024 * 1024


async def ingest(
    session: AsyncSession, message: InboundMessage, config: IntakeConfig = IntakeConfig()
) -> IngestResult:
    """Store one inbound message with its contact, conversation and lead; never commits.

    Idempotent on (channel, external id): a message seen before returns the first
    result with `duplicate=True`. A concurrent duplicate surfaces as an
    IntegrityError at flush; the boundary retries and then finds the first one.
    Raises InvalidInput for identities that cannot be normalised, and UpdateHandled
    for a message whose Telegram update a bot dialogue handled.
    """
    if message.unless_update_handled is not None:
        handled = await TelegramRepository(session).handled_updates(
            {(message.channel_id, message.unless_update_handled)}
        )
        if handled:
            raise UpdateHandled()
    bulk = BulkIntakeRepository(session)
    key = (message.channel_id, fit_key(message.external_id))
    seen = await bulk.seen_messages({key})
    if key in seen:
        return IngestResult(*seen[key], duplicate=True)
    external_id = key[1]

    resolution = await resolve_contact(
        session,
        normalized(message, config),
        name=clip(message.contact_name, NAME_LENGTH),
        language=language_of(message.contact_language),
    )
    placed = Placed(message, external_id, resolution.contact.id)
    if message.thread_key is not None:
        thread = (message.channel_id, thread_key_of(message, external_id))
        placed.conversation_id = (await bulk.open_threads({thread})).get(thread, 0)
    await store_placed(bulk, [placed], utcnow())
    return placed.result()


def attachment_rows(message_id: int, files: Iterable[AttachmentIn]) -> list[Attachment]:
    """Attachment rows for files already in the blob store, fitted to their columns."""
    return [Attachment(**values) for values in attachment_values(message_id, files, utcnow())]


def normalized(message: InboundMessage, config: IntakeConfig) -> list[IdentityValue]:
    """The message's identities normalised, without repeats, in one order."""
    values: dict[tuple[str, str], IdentityValue] = {}
    for identity in message.identities:
        value = normalize(identity.kind, identity.value, config.default_region)
        values[(value.kind, value.value)] = value
    # One order everywhere, so concurrent transactions take row locks in the same order.
    return [values[key] for key in sorted(values)]
