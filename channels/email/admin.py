"""Setting mailboxes up and looking after them: add, show status, retry the quarantine."""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from channels.base import CHANNEL_KEY, HubContext
from channels.email.config import EmailChannelConfig, EmailSecrets, config_of, sealed
from channels.email.service import EmailIntake, Mailbox, Taken
from storage.crypto import SecretBox
from storage.email_repository import EmailRepository
from storage.errors import Conflict, InvalidInput, NotFound
from storage.models import Channel, ChannelKind, QuarantineStatus
from storage.repositories import ChannelRepository


async def add_email_channel(
    session: AsyncSession,
    box: SecretBox,
    *,
    key: str,
    title: str,
    config: EmailChannelConfig,
    secrets: EmailSecrets,
) -> Channel:
    if not CHANNEL_KEY.match(key):
        raise InvalidInput("the key must be lowercase letters, digits, - or _", code="bad_key")
    repo = ChannelRepository(session)
    if await repo.get_by_key(key) is not None:
        raise Conflict(f"a channel with key {key!r} exists", code="channel_exists")
    return await repo.add(
        key=key,
        kind=ChannelKind.EMAIL,
        title=title,
        config=config.model_dump(mode="json"),
        secrets=sealed(secrets, box),
    )


@dataclass(frozen=True, slots=True)
class MailboxStatus:
    status: str
    last_error: str | None
    last_fetch_at: datetime | None
    last_uid: int | None
    open_quarantine: int
    duplicates: int  # mail dropped as a repeat of a Message-ID taken before


async def mailbox_status(session: AsyncSession, channel: Channel) -> MailboxStatus:
    repo = EmailRepository(session)
    state = await repo.mailbox_state(channel.id)
    quarantined = await repo.quarantined(channel.id, QuarantineStatus.OPEN)
    return MailboxStatus(
        status=channel.status,
        last_error=channel.last_error,
        last_fetch_at=state.last_fetch_at if state else None,
        last_uid=state.last_uid if state else None,
        open_quarantine=len(quarantined),
        duplicates=state.duplicates if state else 0,
    )


def public_config(channel: Channel) -> dict[str, Any]:
    """The configuration as the API shows it: never a password."""
    return config_of(channel).model_dump(mode="json")


async def retry_quarantined(context: HubContext, item_id: int) -> Taken:
    """Take a quarantined message in again (after a fix); it leaves the quarantine if it works."""
    async with context.db.read() as session:
        item = await EmailRepository(session).quarantined_item(item_id)
        if item is None:
            raise NotFound(f"no quarantined email {item_id}")
        if item.status == QuarantineStatus.RELEASED:
            raise Conflict("this email was already taken in", code="already_released")
        channel = await ChannelRepository(session).get(item.channel_id)
        assert channel is not None
        raw_sha256, uid, uidvalidity = item.raw_sha256, item.uid, item.uidvalidity
    raw = gzip.decompress(await context.blobs.get(raw_sha256))
    mailbox = Mailbox(channel.id, channel.key, config_of(channel))
    taken = await EmailIntake(context).take(mailbox, raw, uid=uid, uidvalidity=uidvalidity)
    if taken.message_id is not None:
        async with context.db.transaction() as session:
            await EmailRepository(session).release(item_id, taken.message_id)
    return taken
