"""Bot channels as the running hub knows them: configuration and token, cached briefly,
and one aiogram `Bot` (with its HTTP session) per bot, shared by intake and delivery."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import aiohttp
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramAPIError

from channels.telegram.config import (
    TelegramChannelConfig,
    bot_id_of,
    config_of,
    secrets_of,
)
from channels.telegram.limits import SendLimiter
from storage.crypto import SecretBox, SecretsUnreadable
from storage.db import Database
from storage.errors import HubError, NotFound
from storage.models import Channel, ChannelKind
from storage.repositories import ChannelRepository

log = logging.getLogger(__name__)

CACHE_SECONDS = 5.0
GET_ME_SECONDS = 5.0


class ChannelMisconfigured(HubError):
    status_code = 503
    code = "channel_misconfigured"


@dataclass(frozen=True, slots=True)
class BotChannel:
    id: int
    key: str
    title: str
    is_active: bool
    config: TelegramChannelConfig
    token: str
    webhook_secret: str

    @property
    def bot_id(self) -> int:
        return bot_id_of(self.token)


def bot_channel(channel: Channel, box: SecretBox) -> BotChannel:
    try:
        secrets = secrets_of(channel, box)
    except (SecretsUnreadable, ValueError) as exc:
        raise ChannelMisconfigured(f"bot {channel.key}: {exc}") from exc
    return BotChannel(
        id=channel.id,
        key=channel.key,
        title=channel.title,
        is_active=channel.is_active,
        config=config_of(channel),
        token=secrets.token,
        webhook_secret=secrets.webhook_secret,
    )


def make_bot(token: str, api_url: str | None) -> Bot:
    """aiogram's Bot on Telegram's servers, or on a Bot API server at `api_url`."""
    api = TelegramAPIServer.from_base(api_url) if api_url else None
    session = AiohttpSession(api=api) if api is not None else AiohttpSession()
    return Bot(token, session=session)


class BotRegistry:
    def __init__(self, db: Database, secret: str, ttl: float = CACHE_SECONDS) -> None:
        self.db = db
        self.box = SecretBox(secret)
        self.ttl = ttl
        self.limiter = SendLimiter()
        self._by_key: dict[str, tuple[float, BotChannel]] = {}
        self._bots: dict[tuple[str, str | None], Bot] = {}

    async def channel(self, key: str) -> BotChannel:
        """An active bot channel by key (NotFound otherwise), cached for a few seconds."""
        now = time.monotonic()
        cached = self._by_key.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        async with self.db.read() as session:
            channel = await ChannelRepository(session).get_by_key(key, ChannelKind.TELEGRAM)
        if channel is None or not channel.is_active:
            raise NotFound(f"no bot {key!r}", code="unknown_channel")
        found = bot_channel(channel, self.box)
        self._by_key[key] = (now + self.ttl, found)
        return found

    async def channel_by_id(self, channel_id: int) -> BotChannel:
        async with self.db.read() as session:
            channel = await ChannelRepository(session).get(channel_id)
        if channel is None or channel.kind != ChannelKind.TELEGRAM:
            raise NotFound(f"no bot channel {channel_id}", code="unknown_channel")
        return bot_channel(channel, self.box)

    def bot(self, channel: BotChannel) -> Bot:
        key = (channel.token, channel.config.api_url)
        bot = self._bots.get(key)
        if bot is None:
            bot = self._bots[key] = make_bot(channel.token, channel.config.api_url)
        return bot

    async def username(self, channel: BotChannel) -> str | None:
        """The bot's @username (getMe, remembered by the Bot); None if Telegram does not say."""
        try:
            me = await asyncio.wait_for(self.bot(channel).me(), GET_ME_SECONDS)
        except (TelegramAPIError, aiohttp.ClientError, TimeoutError) as exc:
            log.warning("getMe of bot %s failed: %s", channel.key, exc)
            return None
        return me.username

    async def close(self) -> None:
        bots, self._bots = list(self._bots.values()), {}
        for bot in bots:
            await bot.session.close()
