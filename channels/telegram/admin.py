"""Setting bot channels up: add one, register its webhook with Telegram."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from channels.base import CHANNEL_KEY, HubContext
from channels.telegram.config import (
    ALLOWED_UPDATES,
    TelegramChannelConfig,
    TelegramSecrets,
    config_of,
    sealed,
)
from storage.crypto import SecretBox
from storage.errors import Conflict, InvalidInput
from storage.models import Channel, ChannelKind
from storage.repositories import ChannelRepository
from storage.telegram_repository import TelegramRepository

# The client bot's own paths are under /webhooks/telegram/{key}.
WEBHOOK_PATH = "/webhooks/telegram/{key}"


async def add_telegram_channel(
    session: AsyncSession,
    box: SecretBox,
    *,
    key: str,
    title: str,
    config: TelegramChannelConfig,
    token: str,
) -> Channel:
    """A bot channel; its token and a new webhook secret are stored sealed."""
    if not CHANNEL_KEY.match(key):
        raise InvalidInput("the key must be lowercase letters, digits, - or _", code="bad_key")
    try:
        secrets = TelegramSecrets(token=token.strip())
    except ValueError as exc:
        raise InvalidInput("that is not a bot token (123456:ABC...)", code="bad_token") from exc
    repo = ChannelRepository(session)
    if await repo.get_by_key(key) is not None:
        raise Conflict(f"a channel with key {key!r} exists", code="channel_exists")
    return await repo.add(
        key=key,
        kind=ChannelKind.TELEGRAM,
        title=title,
        config=config.model_dump(mode="json"),
        secrets=sealed(secrets, box),
    )


def public_config(channel: Channel) -> dict[str, Any]:
    """The configuration as the API shows it: never the token or the webhook secret."""
    return config_of(channel).model_dump(mode="json")


def webhook_url(context: HubContext, key: str) -> str:
    if not context.public_url:
        raise InvalidInput(
            "set OMNIHUB_PUBLIC_URL (how Telegram reaches the hub) or give the URL",
            code="public_url_required",
        )
    return context.public_url.rstrip("/") + WEBHOOK_PATH.format(key=key)


async def set_webhook(
    context: HubContext, key: str, url: str | None = None, *, drop_pending: bool = False
) -> str:
    """Register the bot's webhook with Telegram: our URL, the secret token Telegram must
    send back, and the updates the hub takes. Returns the URL."""
    registry = context.bots
    channel = await registry.channel(key)
    target = url or webhook_url(context, key)
    if not target.startswith("https://") and not target.startswith("http://"):
        raise InvalidInput("the webhook URL must be http(s)", code="bad_url")
    bot = registry.bot(channel)
    await bot.set_webhook(
        url=target,
        secret_token=channel.webhook_secret,
        allowed_updates=ALLOWED_UPDATES,
        drop_pending_updates=drop_pending,
    )
    async with context.db.transaction() as session:
        await TelegramRepository(session).set_webhook_url(channel.id, target)
    return target
