"""Routing's notifications by the managers' bot, to managers who linked their Telegram
(channels.telegram.links).

A 403 means the manager blocked the bot: the link is dropped (with the notification's
transaction) and nothing is retried. Any other failure raises, so the notification is
retried for this notifier alone (routing.notify).
"""

from __future__ import annotations

import logging

from aiogram.exceptions import TelegramForbiddenError

from channels.telegram.bots import BotRegistry
from channels.telegram.links import forget_link
from channels.telegram.outbound import split_text
from routing.notify import Notification
from storage.errors import NotFound
from storage.models import Manager

log = logging.getLogger(__name__)


class TelegramNotifier:
    """Sends `notification.body` in the manager's language to their linked chat."""

    name = "telegram"

    def __init__(self, registry: BotRegistry) -> None:
        self.registry = registry

    async def send(self, manager: Manager, notification: Notification) -> None:
        chat_id, channel_id = manager.telegram_chat_id, manager.telegram_channel_id
        if chat_id is None or channel_id is None:
            return
        try:
            channel = await self.registry.channel_by_id(channel_id)
        except NotFound:
            return
        if not channel.is_active:
            return  # the bot is switched off: nothing to send with
        bot = self.registry.bot(channel)
        for part in split_text(notification.body(manager.language)):
            await self.registry.limiter.wait(channel.bot_id, chat_id)
            try:
                await bot.send_message(chat_id=chat_id, text=part)
            except TelegramForbiddenError as exc:
                log.info("manager %s blocked the managers' bot: unlinked (%s)", manager.id, exc)
                forget_link(manager)
                return
