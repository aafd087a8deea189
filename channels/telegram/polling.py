"""Long polling: for installs without a public URL, bot channels in `polling` mode fetch
their updates with getUpdates (run by `omnihub serve` and `omnihub worker`).

One poller per bot across all processes (a lease in `telegram_bots`; Telegram itself
refuses two getUpdates at once). The offset moves on only after the updates before it
are handled; a crash handles a few again, and idempotency drops the repeats.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
from dataclasses import dataclass
from datetime import timedelta

import aiohttp
from aiogram.exceptions import TelegramAPIError, TelegramUnauthorizedError

from channels.base import HubContext
from channels.supervision import ChannelPollers, Poller
from channels.telegram.bots import BotChannel, ChannelMisconfigured
from channels.telegram.config import ALLOWED_UPDATES, config_of
from channels.telegram.webhook import processor_for
from storage.errors import NotFound
from storage.models import Channel, ChannelKind
from storage.repositories import ChannelRepository
from storage.telegram_repository import TelegramRepository
from storage.types import utcnow

log = logging.getLogger(__name__)


@dataclass
class PollingOptions:
    lease_seconds: float = 120.0
    refresh_seconds: float = 30.0
    min_backoff_seconds: float = 1.0
    max_backoff_seconds: float = 60.0
    auth_backoff_seconds: float = 300.0


class BotPoller:
    """Fetches one bot's updates until stopped."""

    def __init__(
        self,
        context: HubContext,
        channel_id: int,
        options: PollingOptions | None = None,
        name: str | None = None,
    ) -> None:
        self.context = context
        self.channel_id = channel_id
        self.options = options or PollingOptions()
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.failures = 0
        self.webhook_removed = False
        self._stop: asyncio.Event | None = None

    async def run(self, stop: asyncio.Event) -> None:
        self._stop = stop
        while not stop.is_set():
            try:
                delay = await self.poll_once()
            except TelegramUnauthorizedError as exc:
                await self._status("auth_failed", f"the bot token was refused: {exc.message}")
                delay = self.options.auth_backoff_seconds
            except (TelegramAPIError, aiohttp.ClientError, TimeoutError) as exc:
                delay = await self._failed(exc)
            except Exception as exc:  # the database went away, a bug: log, back off, go on
                log.exception("telegram poller of channel %s failed", self.channel_id)
                delay = await self._failed(exc)
            if delay:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=delay)
        async with self.context.db.transaction() as session:
            await TelegramRepository(session).drop_lease(self.channel_id, self.name)

    async def poll_once(self) -> float:
        """One getUpdates and the handling of what it brought; returns the pause after it."""
        registry = self.context.bots
        try:
            channel: BotChannel = await registry.channel_by_id(self.channel_id)
        except (NotFound, ChannelMisconfigured):
            return self.options.refresh_seconds
        if not channel.is_active or channel.config.mode != "polling":
            return self.options.refresh_seconds
        now = utcnow()
        async with self.context.db.transaction() as session:
            repo = TelegramRepository(session)
            leased = await repo.lease(
                channel.id, self.name, now, now + timedelta(seconds=self.options.lease_seconds)
            )
            state = await repo.bot_state(channel.id)
            offset = state.update_offset if state is not None else 0
        if not leased:
            return self.options.lease_seconds / 3
        bot = registry.bot(channel)
        if not self.webhook_removed:
            await bot.delete_webhook(drop_pending_updates=False)  # getUpdates needs none set
            self.webhook_removed = True
        fetch = asyncio.ensure_future(
            bot.get_updates(
                offset=offset or None,
                timeout=channel.config.poll_timeout_seconds,
                allowed_updates=ALLOWED_UPDATES,
            )
        )
        if self._stop is not None:
            # A long poll lasts up to poll_timeout_seconds: stopping must not wait for it
            # (nothing was taken yet, so the updates come again on the next start).
            stopping = asyncio.ensure_future(self._stop.wait())
            await asyncio.wait({fetch, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if not fetch.done():
                fetch.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await fetch
                return 0
        updates = await fetch
        processor = processor_for(self.context, channel)
        for update in updates:
            await processor.process(channel, bot, update)
            offset = update.update_id + 1
        if updates:
            async with self.context.db.transaction() as session:
                await TelegramRepository(session).set_offset(channel.id, offset)
        if self.failures:
            self.failures = 0
            await self._status("ok", None)
        return 0

    async def _failed(self, exc: Exception) -> float:
        self.failures += 1
        await self._status("unreachable", f"{type(exc).__name__}: {exc}"[:500])
        delay = self.options.min_backoff_seconds * 2 ** min(self.failures - 1, 10)
        return min(delay, self.options.max_backoff_seconds) * random.uniform(0.8, 1.2)

    async def _status(self, status: str, error: str | None) -> None:
        with contextlib.suppress(Exception):
            async with self.context.db.transaction() as session:
                await ChannelRepository(session).set_status(self.channel_id, status, error)


class TelegramPollers(ChannelPollers):
    """A poller for every active bot channel in polling mode, following their changes."""

    kind = ChannelKind.TELEGRAM

    def __init__(self, context: HubContext, options: PollingOptions | None = None) -> None:
        self.options = options or PollingOptions()
        super().__init__(context, self.options.refresh_seconds)

    def wants_poller(self, channel: Channel) -> bool:
        return channel.is_active and config_of(channel).mode == "polling"

    def poller(self, channel_id: int) -> Poller:
        return BotPoller(self.context, channel_id, self.options).run
