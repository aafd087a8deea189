"""The queries of the reply composer: where a reply can go, who can be mentioned, and the
attachments behind the timeline's download links."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Attachment, Channel, Conversation, Identity, Manager, Message


class ComposerRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def conversation_channel(self, conversation_id: int) -> tuple[Conversation, Channel]:
        """The conversation with its own channel; KeyError when there is none."""
        row = (
            await self.session.execute(
                select(Conversation, Channel)
                .join(Channel, Channel.id == Conversation.channel_id)
                .where(Conversation.id == conversation_id)
            )
        ).first()
        if row is None:
            raise KeyError(conversation_id)
        return row[0], row[1]

    async def reachable_identities(
        self, contact_id: int, kinds: Collection[str]
    ) -> list[tuple[str, str]]:
        """The contact's identities of these kinds not known to be unreachable, newest first."""
        rows = await self.session.execute(
            select(Identity.kind, Identity.value)
            .where(
                Identity.contact_id == contact_id,
                Identity.kind.in_(list(kinds)),
                Identity.unreachable_at.is_(None),
            )
            .order_by(Identity.id.desc())
        )
        return [(str(kind), str(value)) for kind, value in rows.all()]

    async def contact_channels(self, contact_id: int, kind: str) -> Sequence[Channel]:
        """Active channels of `kind` the contact has conversations in, the latest first."""
        latest = func.max(Conversation.id)
        rows = await self.session.execute(
            select(Channel, latest)
            .join(Conversation, Conversation.channel_id == Channel.id)
            .where(
                Conversation.contact_id == contact_id,
                Channel.kind == kind,
                Channel.is_active.is_(True),
            )
            .group_by(Channel.id)
            .order_by(latest.desc())
        )
        return [row[0] for row in rows.all()]

    async def active_channels(self, kind: str) -> Sequence[Channel]:
        """Every active channel of `kind`, the oldest first."""
        rows = await self.session.scalars(
            select(Channel)
            .where(Channel.kind == kind, Channel.is_active.is_(True))
            .order_by(Channel.id)
        )
        return rows.all()

    async def active_managers(
        self, *, ids: Collection[int] | None = None, limit: int = 1000, inactive: bool = False
    ) -> Sequence[tuple[int, str]]:
        """Active managers (id, name) by name: all of them (up to `limit`), or those of `ids`;
        `inactive`: the deactivated ones too."""
        query = select(Manager.id, Manager.name)
        if not inactive:
            query = query.where(Manager.is_active.is_(True))
        if ids is not None:
            query = query.where(Manager.id.in_(list(ids)))
        rows = await self.session.execute(query.order_by(Manager.name, Manager.id).limit(limit))
        return [(int(manager_id), str(name)) for manager_id, name in rows.all()]

    async def attachment(self, attachment_id: int) -> tuple[Attachment, int] | None:
        """An attachment with the conversation of its message."""
        row = (
            await self.session.execute(
                select(Attachment, Message.conversation_id)
                .join(Message, Message.id == Attachment.message_id)
                .where(Attachment.id == attachment_id)
            )
        ).first()
        return (row[0], int(row[1])) if row is not None else None
