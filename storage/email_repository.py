"""The queries of the email channel: threading by Message-ID, checkpoints, the quarantine."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import (
    Conversation,
    EmailMessageId,
    Identity,
    Lead,
    MailboxState,
    Message,
    QuarantinedEmail,
    QuarantineStatus,
)
from storage.models.base import table_of
from storage.types import utcnow


@dataclass(frozen=True, slots=True)
class ThreadMatch:
    conversation_id: int
    thread_key: str
    contact_id: int
    status: str


class EmailRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def _insert_ids(self) -> Any:
        """INSERT into email_message_ids in the dialect that knows ON CONFLICT DO NOTHING."""
        dialect = self.session.get_bind().dialect.name
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        return insert(table_of(EmailMessageId)).on_conflict_do_nothing(
            index_elements=["channel_id", "message_id_header"]
        )

    # Threading

    def _threads(self) -> Any:
        return select(
            Conversation.id, Conversation.thread_key, Conversation.contact_id, Conversation.status
        )

    async def threads_of_headers(
        self, channel_id: int, headers: Collection[str]
    ) -> dict[str, ThreadMatch]:
        """The conversations of the Message-IDs the hub knows among these."""
        if not headers:
            return {}
        rows = await self.session.execute(
            self._threads()
            .add_columns(EmailMessageId.message_id_header)
            .join(EmailMessageId, EmailMessageId.conversation_id == Conversation.id)
            .where(
                EmailMessageId.channel_id == channel_id,
                EmailMessageId.message_id_header.in_(list(headers)),
            )
        )
        return {row[4]: ThreadMatch(row[0], row[1], row[2], row[3]) for row in rows}

    async def threads_of_conversations(self, ids: Collection[int]) -> dict[int, ThreadMatch]:
        if not ids:
            return {}
        rows = await self.session.execute(self._threads().where(Conversation.id.in_(list(ids))))
        return {row[0]: ThreadMatch(row[0], row[1], row[2], row[3]) for row in rows}

    async def threads_of_leads(
        self, channel_id: int, lead_ids: Collection[int]
    ) -> dict[int, ThreadMatch]:
        if not lead_ids:
            return {}
        rows = await self.session.execute(
            self._threads()
            .add_columns(Lead.id)
            .join(Lead, Lead.conversation_id == Conversation.id)
            .where(Lead.id.in_(list(lead_ids)), Conversation.channel_id == channel_id)
        )
        return {row[4]: ThreadMatch(row[0], row[1], row[2], row[3]) for row in rows}

    async def contacts_of_addresses(self, addresses: Collection[str]) -> dict[str, int]:
        if not addresses:
            return {}
        rows = await self.session.execute(
            select(Identity.value, Identity.contact_id).where(
                Identity.kind == "email", Identity.value.in_(list(addresses))
            )
        )
        return {row[0]: row[1] for row in rows}

    async def record_message_ids(
        self,
        channel_id: int,
        conversation_id: int,
        message_id: int | None,
        headers: Sequence[str],
        *,
        outbound: bool = False,
    ) -> None:
        """Remember Message-IDs of a conversation; one already known keeps its first owner."""
        await self._insert_id_rows(
            channel_id, [(conversation_id, message_id, h) for h in headers], outbound=outbound
        )

    async def record_message_ids_many(
        self, channel_id: int, rows: Sequence[tuple[int, int, str]]
    ) -> None:
        """Remember (conversation, message, Message-ID) of many inbound messages at once."""
        await self._insert_id_rows(channel_id, rows)

    async def _insert_id_rows(
        self,
        channel_id: int,
        rows: Sequence[tuple[int, int | None, str]],
        *,
        outbound: bool = False,
    ) -> None:
        if not rows:
            return
        now = utcnow()
        await self.session.execute(
            self._insert_ids(),
            [
                {
                    "channel_id": channel_id,
                    "conversation_id": conversation_id,
                    "message_id": message_id,
                    "message_id_header": header,
                    "outbound": outbound,
                    "created_at": now,
                }
                # One row per Message-ID: a statement may not conflict with itself.
                for conversation_id, message_id, header in {r[2]: r for r in rows}.values()
            ],
        )

    async def outbound_message_of_header(self, channel_id: int, header: str) -> Message | None:
        return (
            await self.session.scalars(
                select(Message)
                .join(EmailMessageId, EmailMessageId.message_id == Message.id)
                .where(
                    EmailMessageId.channel_id == channel_id,
                    EmailMessageId.message_id_header == header,
                    EmailMessageId.outbound.is_(True),
                )
            )
        ).first()

    # Checkpoints

    async def mailbox_state(self, channel_id: int) -> MailboxState | None:
        return await self.session.get(MailboxState, channel_id)

    async def save_checkpoint(
        self,
        channel_id: int,
        folder: str,
        uidvalidity: int,
        last_uid: int,
        now: datetime,
        duplicates: int = 0,
    ) -> None:
        """Move the checkpoint to `last_uid`; `duplicates` repeats found on the way are counted."""
        state = await self.session.get(MailboxState, channel_id, with_for_update=True)
        if state is None:
            state = MailboxState(channel_id=channel_id, folder=folder, last_uid=0)
            self.session.add(state)
        if state.uidvalidity != uidvalidity or state.folder != folder:
            state.uidvalidity, state.folder, state.last_uid = uidvalidity, folder, 0
        state.last_uid = max(state.last_uid, last_uid)
        state.last_fetch_at = now
        state.duplicates = (state.duplicates or 0) + duplicates

    async def take_lease(
        self, channel_id: int, folder: str, poller: str, now: datetime, until: datetime
    ) -> bool:
        """Become (or stay) the mailbox's one poller, unless another holds a live lease."""
        dialect = self.session.get_bind().dialect.name
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        await self.session.execute(
            insert(table_of(MailboxState))
            .values(
                channel_id=channel_id,
                folder=folder,
                last_uid=0,
                created_at=now,
                updated_at=now,
            )
            .on_conflict_do_nothing(index_elements=["channel_id"])
        )
        taken = await self.session.execute(
            update(MailboxState)
            .where(
                MailboxState.channel_id == channel_id,
                (MailboxState.poller == poller)
                | MailboxState.lease_until.is_(None)
                | (MailboxState.lease_until < now),
            )
            .values(poller=poller, lease_until=until, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        return bool(taken.rowcount)  # type: ignore[attr-defined]

    async def drop_lease(self, channel_id: int, poller: str) -> None:
        await self.session.execute(
            update(MailboxState)
            .where(MailboxState.channel_id == channel_id, MailboxState.poller == poller)
            .values(poller=None, lease_until=None)
            .execution_options(synchronize_session=False)
        )

    # Quarantine

    async def quarantine(
        self,
        *,
        channel_id: int,
        raw_sha256: str,
        size: int,
        reason: str,
        uid: int | None,
        uidvalidity: int | None,
        subject: str | None,
        sender: str | None,
    ) -> int:
        """Keep a message that could not be taken in; the same bytes again count an attempt."""
        existing = (
            await self.session.scalars(
                select(QuarantinedEmail).where(
                    QuarantinedEmail.channel_id == channel_id,
                    QuarantinedEmail.raw_sha256 == raw_sha256,
                )
            )
        ).first()
        if existing is not None:
            existing.reason = reason
            existing.attempts += 1
            if existing.status != QuarantineStatus.RELEASED:
                existing.status = QuarantineStatus.OPEN
            await self.session.flush()
            return existing.id
        item = QuarantinedEmail(
            channel_id=channel_id,
            raw_sha256=raw_sha256,
            size=size,
            reason=reason,
            uid=uid,
            uidvalidity=uidvalidity,
            subject=subject[:500] if subject else None,
            sender=sender[:320] if sender else None,
            status=QuarantineStatus.OPEN,
            attempts=1,
        )
        self.session.add(item)
        await self.session.flush()
        return item.id

    async def quarantined(
        self, channel_id: int | None = None, status: str | None = QuarantineStatus.OPEN
    ) -> Sequence[QuarantinedEmail]:
        query = select(QuarantinedEmail).order_by(QuarantinedEmail.id)
        if channel_id is not None:
            query = query.where(QuarantinedEmail.channel_id == channel_id)
        if status is not None:
            query = query.where(QuarantinedEmail.status == status)
        return (await self.session.scalars(query)).all()

    async def quarantined_item(self, item_id: int) -> QuarantinedEmail | None:
        return await self.session.get(QuarantinedEmail, item_id)

    async def release(self, item_id: int, message_id: int) -> None:
        await self.session.execute(
            update(QuarantinedEmail)
            .where(QuarantinedEmail.id == item_id)
            .values(status=QuarantineStatus.RELEASED, message_id=message_id, updated_at=utcnow())
        )


@dataclass(frozen=True, slots=True)
class ReplyContext:
    """What an outbound email needs to know about its conversation."""

    conversation_id: int
    channel_id: int
    subject: str | None
    lead_id: int | None
    # The client's last mail in the conversation (its `meta["email"]`), if any.
    last_inbound: dict[str, Any] | None
    contact_email: str | None


async def reply_context(session: AsyncSession, message: Message) -> ReplyContext:
    conversation = await session.get(Conversation, message.conversation_id)
    assert conversation is not None
    lead_id = (
        await session.scalars(select(Lead.id).where(Lead.conversation_id == conversation.id))
    ).first()
    metas = (
        await session.scalars(
            select(Message.meta)
            .where(
                Message.conversation_id == conversation.id,
                Message.direction == "inbound",
                Message.id < message.id,
            )
            .order_by(Message.id.desc())
            .limit(20)
        )
    ).all()
    last_inbound = next(
        (
            meta["email"]
            for meta in metas
            if isinstance(meta, dict)
            and isinstance(meta.get("email"), dict)
            and not meta.get("automatic")
        ),
        None,
    )
    contact_email = (
        await session.scalars(
            select(Identity.value)
            .where(Identity.contact_id == conversation.contact_id, Identity.kind == "email")
            .order_by(Identity.id.desc())
        )
    ).first()
    return ReplyContext(
        conversation.id,
        conversation.channel_id,
        conversation.subject,
        lead_id,
        last_inbound,
        contact_email,
    )
