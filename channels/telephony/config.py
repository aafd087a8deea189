"""A phone line's configuration: what is stored in the channel's config, what is sealed."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

from channels.base import CHANNEL_KEY
from routing.calendar import WorkingHours
from storage.crypto import SecretBox
from storage.db import Database
from storage.errors import NotFound
from storage.models import Channel, ChannelKind
from storage.repositories import ChannelRepository

CACHE_SECONDS = 10.0


class TelephonyConfig(BaseModel):
    """Stored in `channels.config` (no secrets here)."""

    model_config = ConfigDict(extra="forbid")

    provider: str = Field(min_length=1, max_length=32)
    # The language of the call lines in conversations and of callback titles.
    language: Literal["ru", "en"] = "ru"
    # A missed call is to be called back within this much working time.
    callback_minutes: int = Field(default=30, ge=1, le=7 * 24 * 60)
    # Working hours for callbacks when the responsible manager has none of their own;
    # without them the channel's default queue's hours count (else around the clock).
    working_hours: WorkingHours | None = None
    # The zone of providers that send local wall-clock times (Zadarma's call_start).
    timezone: str = "Europe/Moscow"
    # How the provider reaches the hub (scheme and host), when the hub's public URL
    # differs: signatures cover the URL (Twilio).
    public_url: str | None = Field(default=None, max_length=500)
    # Twilio: numbers or clients ("client:anna") the voice webhook's TwiML dials.
    dial: list[str] = Field(default_factory=list, max_length=20)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("public_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip().rstrip("/")
        if not value.startswith(("https://", "http://")):
            raise ValueError("public_url must start with https:// or http://")
        return value


@dataclass(frozen=True)
class TelephonySetup:
    """A phone line as the webhook needs it: ids, configuration and opened secrets."""

    channel_id: int
    key: str
    config: TelephonyConfig
    secrets: dict[str, str] = field(repr=False)
    default_queue_id: int | None = None


def setup_of(channel: Channel, box: SecretBox) -> TelephonySetup:
    opened = box.open(channel.secrets)
    return TelephonySetup(
        channel_id=channel.id,
        key=channel.key,
        config=TelephonyConfig.model_validate(channel.config),
        secrets={str(k): str(v) for k, v in opened.items() if v is not None},
        default_queue_id=channel.default_queue_id,
    )


class SetupCache:
    """Phone lines by key, cached briefly: a busy line costs no query (nor decryption)
    per event."""

    def __init__(self, secret: str, ttl: float = CACHE_SECONDS) -> None:
        self.box = SecretBox(secret)
        self.ttl = ttl
        self._setups: dict[str, tuple[float, TelephonySetup]] = {}

    async def get(self, db: Database, key: str) -> TelephonySetup:
        if not CHANNEL_KEY.match(key):
            raise NotFound(f"no phone line {key!r}", code="unknown_channel")
        now = time.monotonic()
        cached = self._setups.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        async with db.read() as session:
            channel = await ChannelRepository(session).get_by_key(key, ChannelKind.TELEPHONY)
        if channel is None or not channel.is_active:
            raise NotFound(f"no phone line {key!r}", code="unknown_channel")
        setup = setup_of(channel, self.box)
        self._setups[key] = (now + self.ttl, setup)
        return setup
