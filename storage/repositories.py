"""Repositories for storage-level records that every layer reads (channels)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Channel


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
        return channel
