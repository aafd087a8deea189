"""Repositories for storage-level records that every layer reads (channels)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.events import ChannelChanged
from storage.models import Attachment, Channel
from storage.outbox import emit


class ChannelRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get_by_key(self, key: str, kind: str | None = None) -> Channel | None:
        query = select(Channel).where(Channel.key == key)
        if kind is not None:
            query = query.where(Channel.kind == kind)
        return (await self.session.scalars(query)).first()

    async def list(self, kind: str | None = None) -> Sequence[Channel]:
        query = select(Channel).order_by(Channel.kind, Channel.key)
        if kind is not None:
            query = query.where(Channel.kind == kind)
        return (await self.session.scalars(query)).all()

    async def get(self, channel_id: int) -> Channel | None:
        return await self.session.get(Channel, channel_id)

    async def set_status(
        self, channel_id: int, status: str, error: str | None, activity_at: datetime | None = None
    ) -> None:
        """Record how the channel's connection to the outside world is doing."""
        values: dict[str, Any] = {"status": status, "last_error": error}
        if activity_at is not None:
            values["last_activity_at"] = activity_at
        await self.session.execute(
            update(Channel)
            .where(Channel.id == channel_id)
            .values(**values)
            .execution_options(synchronize_session=False)
        )

    async def add(
        self, *, key: str, kind: str, title: str, config: dict[str, Any], secrets: str | None = None
    ) -> Channel:
        channel = Channel(
            key=key,
            kind=kind,
            title=title,
            config=config,
            secrets=secrets,
            is_active=True,
            status="ok",
        )
        self.session.add(channel)
        await self.session.flush()
        self.changed(channel)
        return channel

    async def set_active(self, channel: Channel, active: bool) -> None:
        """Enable or disable a channel; a disabled one is not polled and takes nothing in."""
        if channel.is_active != active:
            channel.is_active = active
            self.changed(channel)

    async def change(
        self, channel: Channel, *, title: str | None = None, config: dict[str, Any] | None = None
    ) -> None:
        """Give a channel a new title or configuration (checked by its kind beforehand)."""
        if title is not None:
            channel.title = title
        if config is not None and config != channel.config:
            channel.config = config
            self.changed(channel)

    def changed(self, channel: Channel) -> None:
        """Tell every process, once this transaction commits, that the channel changed."""
        emit(self.session, ChannelChanged(channel_id=channel.id, kind=channel.kind))


async def attachments_of(session: AsyncSession, message_id: int) -> Sequence[Attachment]:
    """A message's attachments, in the order they were added."""
    return (
        await session.scalars(
            select(Attachment).where(Attachment.message_id == message_id).order_by(Attachment.id)
        )
    ).all()
