"""Setting phone lines up: add one per provider, with its secrets sealed."""

from __future__ import annotations

import secrets as tokens
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from channels.base import CHANNEL_KEY
from channels.telephony.config import TelephonyConfig
from channels.telephony.registry import provider
from storage.crypto import SecretBox
from storage.errors import Conflict, InvalidInput
from storage.models import Channel, ChannelKind
from storage.repositories import ChannelRepository


@dataclass(frozen=True)
class AddedLine:
    channel: Channel
    # Secrets the hub made up (the generic provider's token): shown once, then sealed.
    generated: dict[str, str]


async def add_telephony_channel(
    session: AsyncSession,
    box: SecretBox,
    *,
    key: str,
    title: str,
    config: TelephonyConfig,
    secrets: dict[str, str],
) -> AddedLine:
    """Add a phone line; the provider's missing generated secrets are made up."""
    if not CHANNEL_KEY.match(key):
        raise InvalidInput("the key must be lowercase letters, digits, - or _", code="bad_key")
    line = provider(config.provider)
    given = {name: value for name, value in secrets.items() if value}
    generated = {
        name: tokens.token_urlsafe(24) for name in line.generated_secrets if name not in given
    }
    values = {**given, **generated}
    missing = [name for name in line.required_secrets if name not in values]
    if missing:
        raise InvalidInput(
            f"the {config.provider} provider needs {', '.join(missing)}", code="missing_secret"
        )
    repo = ChannelRepository(session)
    if await repo.get_by_key(key) is not None:
        raise Conflict(f"a channel with key {key!r} exists", code="channel_exists")
    channel = await repo.add(
        key=key,
        kind=ChannelKind.TELEPHONY,
        title=title or key,
        config=config.model_dump(mode="json", exclude_none=True),
        secrets=box.seal(values),
    )
    return AddedLine(channel, generated)


def webhook_path(key: str, provider_name: str, token: str | None = None) -> str:
    """Where the provider is to post: the generic provider's token goes in the path."""
    path = f"/webhooks/telephony/{key}"
    if provider_name == "generic" and token:
        path += f"/{token}"
    return path
