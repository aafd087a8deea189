"""The outbound delivery queue: messages with status queued/sending, claimed with a lease."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Channel, Message, MessageDirection, MessageStatus


class DeliveryRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.locking = session.get_bind().dialect.name != "sqlite"

    async def claim(
        self, kinds: Collection[str], now: datetime, lease_until: datetime, limit: int
    ) -> list[tuple[int, str]]:
        """Take due queued messages of these channel kinds: status sending, leased, counted."""
        query = (
            select(Message.id, Channel.kind)
            .join(Channel, Channel.id == Message.channel_id)
            .where(
                Message.status == MessageStatus.QUEUED,
                Message.direction == MessageDirection.OUTBOUND,
                (Message.deliver_after.is_(None)) | (Message.deliver_after <= now),
                Channel.kind.in_(list(kinds)),
            )
            .order_by(Message.id)
            .limit(limit)
        )
        if self.locking:
            query = query.with_for_update(of=Message, skip_locked=True)
        rows = [(int(r[0]), str(r[1])) for r in (await self.session.execute(query)).all()]
        if rows:
            await self.session.execute(
                update(Message)
                .where(Message.id.in_([r[0] for r in rows]))
                .values(
                    status=MessageStatus.SENDING,
                    deliver_after=lease_until,
                    delivery_attempts=Message.delivery_attempts + 1,
                )
                .execution_options(synchronize_session=False)
            )
        return rows

    async def expired_leases(self, now: datetime, limit: int = 100) -> Sequence[Message]:
        """Messages whose sender stopped mid-delivery (a crash): outcome unknown."""
        query = (
            select(Message)
            .where(Message.status == MessageStatus.SENDING, Message.deliver_after < now)
            .order_by(Message.id)
            .limit(limit)
        )
        if self.locking:
            query = query.with_for_update(skip_locked=True)
        return (await self.session.scalars(query)).all()

    async def leased(self, message_id: int) -> Message | None:
        """The message if it is still ours to finish (status sending)."""
        query = select(Message).where(
            Message.id == message_id, Message.status == MessageStatus.SENDING
        )
        if self.locking:
            query = query.with_for_update()
        return (await self.session.scalars(query)).first()
