"""Managers link their Telegram to the managers' bot with a one-time code.

A manager asks the hub for a code (random, good for 15 minutes, one at a time, stored
only as its sha256) and sends it to the managers' bot: `/start CODE` from the deep link
or `/link CODE`. The bot's private chat with them is then the manager's Telegram
notification target (`Manager.telegram_chat_id` with the bot's channel), until they
send /unlink, unlink through the API, or block the bot.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from channels.telegram.config import config_of
from storage.errors import Conflict, NotFound
from storage.models import Channel, ChannelKind, Manager
from storage.repositories import ChannelRepository
from storage.telegram_repository import TelegramRepository

CODE_TTL = timedelta(minutes=15)
# Easy to type from a screen: no 0/O, 1/I/L.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 10


@dataclass(frozen=True, slots=True)
class LinkCode:
    code: str
    expires_at: datetime


class LinkRefused(Exception):
    """The code links nobody: `unknown` (wrong, used or replaced) or `expired`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def normalized(code: str) -> str:
    """As typed: any case, with spaces or dashes."""
    return "".join(code.split()).replace("-", "").upper()


def code_hash(code: str) -> str:
    return hashlib.sha256(normalized(code).encode()).hexdigest()


async def manager_bots(session: AsyncSession) -> list[Channel]:
    """The active bot channels for managers, by key."""
    channels: Sequence[Channel] = await ChannelRepository(session).list(ChannelKind.TELEGRAM)
    found = []
    for channel in channels:
        try:
            for_managers = config_of(channel).audience == "managers"
        except ValueError:
            continue
        if channel.is_active and for_managers:
            found.append(channel)
    return sorted(found, key=lambda c: c.key)


async def manager_bot(session: AsyncSession, key: str | None = None) -> Channel:
    """The managers' bot with this key, or the first one; Conflict when there is none."""
    bots = await manager_bots(session)
    if key is not None:
        for channel in bots:
            if channel.key == key:
                return channel
        raise NotFound(f"no managers' bot {key!r}", code="unknown_channel")
    if not bots:
        raise Conflict(
            "no managers' bot is set up: add one with audience 'managers'",
            code="no_manager_bot",
        )
    return bots[0]


async def issue_code(session: AsyncSession, manager_id: int, now: datetime) -> LinkCode:
    """A new one-time code for the manager; it replaces their earlier one."""
    code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
    expires_at = now + CODE_TTL
    await TelegramRepository(session).replace_link_code(manager_id, code_hash(code), expires_at)
    return LinkCode(code, expires_at)


async def redeem_code(
    session: AsyncSession, code: str, *, channel_id: int, chat_id: str, now: datetime
) -> Manager:
    """Link the chat to the code's manager and use the code up; LinkRefused otherwise.
    A chat linked to another manager moves to this one."""
    repo = TelegramRepository(session)
    taken = await repo.take_link_code(code_hash(code))
    if taken is None:
        raise LinkRefused("unknown")
    manager_id, expires_at = taken
    if expires_at <= now:
        raise LinkRefused("expired")
    manager = await session.get(Manager, manager_id)
    if manager is None or not manager.is_active:
        raise LinkRefused("unknown")
    other = await repo.manager_of_chat(channel_id, chat_id)
    if other is not None and other.id != manager.id:
        forget_link(other)
        await session.flush()  # before the chat is taken, for the unique (bot, chat)
    manager.telegram_channel_id = channel_id
    manager.telegram_chat_id = chat_id
    manager.telegram_linked_at = now
    await session.flush()
    return manager


async def linked_manager(session: AsyncSession, channel_id: int, chat_id: str) -> Manager | None:
    """The manager this chat of the bot is linked to, if any."""
    return await TelegramRepository(session).manager_of_chat(channel_id, chat_id)


async def unlink_chat(session: AsyncSession, channel_id: int, chat_id: str) -> Manager | None:
    """Unlink whoever this chat of the bot is linked to; returns them (None: nobody)."""
    manager = await TelegramRepository(session).manager_of_chat(channel_id, chat_id)
    if manager is not None:
        forget_link(manager)
        await session.flush()
    return manager


async def unlink_manager(session: AsyncSession, manager: Manager) -> None:
    """Drop the manager's link and any code not yet used."""
    forget_link(manager)
    await TelegramRepository(session).drop_link_code(manager.id)
    await session.flush()


def forget_link(manager: Manager) -> None:
    """Clear the link on the manager's row (it is written with the session's transaction)."""
    manager.telegram_chat_id = None
    manager.telegram_channel_id = None
    manager.telegram_linked_at = None
