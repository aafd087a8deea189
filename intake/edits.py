"""Clients editing what they wrote: the stored message takes the new text, keeps the old."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from intake.ingest_repository import IntakeRepository
from storage.events import MessageEdited
from storage.outbox import emit

MAX_EDITS = 50


@dataclass(frozen=True, slots=True)
class EditResult:
    message_id: int | None
    changed: bool


async def record_edit(
    session: AsyncSession,
    channel_id: int,
    external_id: str,
    *,
    text: str,
    edited_at: datetime,
) -> EditResult:
    """Give the stored message (channel, external id) its edited text; the text it had goes
    to `meta["edits"]` with the time it was replaced. Never commits.

    Idempotent: an edit at a time already recorded (a redelivery) changes nothing.
    `message_id` is None when no such message is stored.
    """
    message = await IntakeRepository(session).find_message(channel_id, external_id)
    if message is None:
        return EditResult(None, False)
    stamp = edited_at.isoformat()
    edits = list(message.meta.get("edits", []))
    if message.meta.get("edited_at") == stamp or any(e.get("replaced_at") == stamp for e in edits):
        return EditResult(message.id, False)
    edits.append({"text": message.text, "replaced_at": stamp})
    message.meta = {**message.meta, "edits": edits[-MAX_EDITS:], "edited_at": stamp}
    message.text = text
    emit(
        session,
        MessageEdited(
            conversation_id=message.conversation_id, message_id=message.id, channel_id=channel_id
        ),
    )
    await session.flush()
    return EditResult(message.id, True)
