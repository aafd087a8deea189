"""Telegram channels' tables: handled updates, FSM records, polling offsets and leases;
the chat a conversation answers to; identities a bot cannot reach; managers' link codes
and the chats they linked."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import (
    Conversation,
    Identity,
    IdentityKind,
    Manager,
    ManagerTelegramCode,
    Message,
    MessageDirection,
    TelegramBotState,
    TelegramFsmRecord,
    TelegramUpdate,
)
from storage.models.base import table_of


class TelegramRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # Handled updates

    async def record_update(self, channel_id: int, update_id: int) -> None:
        """Note the update as handled; IntegrityError at this flush means it was already."""
        self.session.add(TelegramUpdate(channel_id=channel_id, update_id=update_id))
        await self.session.flush()

    async def handled_updates(self, keys: Collection[tuple[int, int]]) -> set[tuple[int, int]]:
        """The (channel_id, update_id) pairs among these that were handled, in one query."""
        if not keys:
            return set()
        table = table_of(TelegramUpdate)
        rows = await self.session.execute(
            select(table.c.channel_id, table.c.update_id).where(
                tuple_(table.c.channel_id, table.c.update_id).in_(list(keys))
            )
        )
        return {(int(channel_id), int(update_id)) for channel_id, update_id in rows}

    # FSM

    async def fsm_state(self, key: str) -> str | None:
        result = await self.session.scalars(
            select(TelegramFsmRecord.state).where(TelegramFsmRecord.key == key)
        )
        return result.first()

    async def fsm_states(self) -> dict[str, str]:
        """Every key that is in a state (the chats in the middle of a dialogue)."""
        rows = await self.session.execute(
            select(TelegramFsmRecord.key, TelegramFsmRecord.state).where(
                TelegramFsmRecord.state.is_not(None)
            )
        )
        return {str(key): str(state) for key, state in rows}

    async def fsm_data(self, key: str) -> dict[str, Any]:
        result = await self.session.scalars(
            select(TelegramFsmRecord.data).where(TelegramFsmRecord.key == key)
        )
        return dict(result.first() or {})

    async def set_fsm(
        self, key: str, *, state: str | None = None, data: dict[str, Any] | None = None
    ) -> None:
        """Write the state or the data (whichever is given); an empty record is deleted."""
        record = await self.session.get(TelegramFsmRecord, key)
        if record is None:
            record = TelegramFsmRecord(key=key, state=None, data={})
            self.session.add(record)
        if state is not None:
            record.state = state or None
        if data is not None:
            record.data = data
        if record.state is None and not record.data:
            if record in self.session.new:
                self.session.expunge(record)
            else:
                await self.session.delete(record)
        await self.session.flush()

    # Polling

    async def bot_state(self, channel_id: int) -> TelegramBotState | None:
        return await self.session.get(TelegramBotState, channel_id)

    async def lease(self, channel_id: int, poller: str, now: datetime, until: datetime) -> bool:
        """Take or renew the channel's polling lease; False if another poller holds it."""
        state = await self.session.get(TelegramBotState, channel_id, with_for_update=True)
        if state is None:
            self.session.add(
                TelegramBotState(
                    channel_id=channel_id, update_offset=0, poller=poller, lease_until=until
                )
            )
            await self.session.flush()
            return True
        if state.poller not in (None, poller) and state.lease_until and state.lease_until > now:
            return False
        state.poller = poller
        state.lease_until = until
        await self.session.flush()
        return True

    async def drop_lease(self, channel_id: int, poller: str) -> None:
        await self.session.execute(
            update(TelegramBotState)
            .where(TelegramBotState.channel_id == channel_id, TelegramBotState.poller == poller)
            .values(poller=None, lease_until=None)
        )

    async def set_offset(self, channel_id: int, offset: int) -> None:
        await self.session.execute(
            update(TelegramBotState)
            .where(TelegramBotState.channel_id == channel_id)
            .values(update_offset=offset)
        )

    async def set_webhook_url(self, channel_id: int, url: str | None) -> None:
        state = await self.session.get(TelegramBotState, channel_id)
        if state is None:
            self.session.add(
                TelegramBotState(channel_id=channel_id, update_offset=0, webhook_url=url)
            )
        else:
            state.webhook_url = url
        await self.session.flush()

    # Delivery

    async def chat_of_conversation(self, conversation_id: int) -> str | None:
        """The chat the conversation answers to: where its client last wrote from, else the
        contact's Telegram user id (a private chat has the user's id)."""
        meta = await self.session.scalars(
            select(Message.meta)
            .where(
                Message.conversation_id == conversation_id,
                Message.direction == MessageDirection.INBOUND,
            )
            .order_by(Message.id.desc())
            .limit(5)
        )
        for value in meta.all():
            chat = (value or {}).get("telegram", {}).get("chat_id")
            if chat is not None:
                return str(chat)
        identity = await self.session.scalars(
            select(Identity.value)
            .join(Conversation, Conversation.contact_id == Identity.contact_id)
            .where(Conversation.id == conversation_id, Identity.kind == IdentityKind.TELEGRAM)
            .order_by(Identity.id)
        )
        return identity.first()

    async def mark_unreachable(self, user_id: str, when: datetime | None) -> None:
        """The user blocked the bot (a time) or wrote again, or was reached (None)."""
        query = update(Identity).where(
            Identity.kind == IdentityKind.TELEGRAM, Identity.value == user_id
        )
        if when is None:
            query = query.where(Identity.unreachable_at.is_not(None))
        await self.session.execute(query.values(unreachable_at=when))

    async def save_progress(self, message_id: int, progress: dict[str, Any]) -> None:
        """How far a multi-part send got, so a retry does not send those parts again."""
        message = await self.session.get(Message, message_id)
        if message is not None:
            message.meta = {
                **message.meta,
                "telegram": {**message.meta.get("telegram", {}), **progress},
            }
            await self.session.flush()

    # Managers' links

    async def replace_link_code(
        self, manager_id: int, code_hash: str, expires_at: datetime
    ) -> None:
        """The manager's one code: a new one replaces any earlier."""
        code = await self.session.get(ManagerTelegramCode, manager_id)
        if code is None:
            self.session.add(
                ManagerTelegramCode(
                    manager_id=manager_id, code_hash=code_hash, expires_at=expires_at
                )
            )
        else:
            code.code_hash = code_hash
            code.expires_at = expires_at
        await self.session.flush()

    async def take_link_code(self, code_hash: str) -> tuple[int, datetime] | None:
        """Delete the code and return (manager id, expiry); None if there is no such code.
        One statement, so of two callers with the same code only one gets it."""
        row = (
            await self.session.execute(
                delete(ManagerTelegramCode)
                .where(ManagerTelegramCode.code_hash == code_hash)
                .returning(ManagerTelegramCode.manager_id, ManagerTelegramCode.expires_at)
                .execution_options(synchronize_session=False)
            )
        ).first()
        return None if row is None else (int(row[0]), row[1])

    async def drop_link_code(self, manager_id: int) -> None:
        await self.session.execute(
            delete(ManagerTelegramCode).where(ManagerTelegramCode.manager_id == manager_id)
        )

    async def manager_of_chat(self, channel_id: int, chat_id: str) -> Manager | None:
        """The manager linked to this chat of the managers' bot."""
        result = await self.session.scalars(
            select(Manager).where(
                Manager.telegram_channel_id == channel_id, Manager.telegram_chat_id == chat_id
            )
        )
        return result.first()
