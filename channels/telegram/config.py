"""A bot channel's configuration: what is stored in the channel's config, what is sealed."""

from __future__ import annotations

import secrets as random_secrets
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from channels.greeting import GreetingConfig
from intake.claims.service import Reason, default_reasons
from storage.crypto import SecretBox
from storage.models import Channel

Mode = Literal["webhook", "polling"]
# Who writes to the bot: clients (the client bot and intake) or managers (the managers'
# bot: account linking and routing's notifications, never intake).
Audience = Literal["clients", "managers"]
# What the hub asks Telegram for (setWebhook and getUpdates).
ALLOWED_UPDATES = ["message", "edited_message", "callback_query"]
BOT_API_FILE_LIMIT = 20 * 1024 * 1024  # getFile serves files up to 20 MB
TOKEN = r"^[0-9]{1,20}:[A-Za-z0-9_-]{20,100}$"


class ClaimReason(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
    ru: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    en: Annotated[str, StringConstraints(min_length=1, max_length=100)]


def _default_reasons() -> list[ClaimReason]:
    return [ClaimReason(code=r.code, ru=r.ru, en=r.en) for r in default_reasons()]


class TelegramChannelConfig(BaseModel):
    """Stored in `channels.config` (the token lives in the sealed secrets)."""

    model_config = ConfigDict(extra="forbid")

    mode: Mode = "webhook"
    audience: Audience = "clients"
    # A local Bot API server (https://github.com/tdlib/telegram-bot-api), or None for Telegram's.
    api_url: Annotated[str, StringConstraints(max_length=500)] | None = None
    # The bot's language for users whose Telegram language is neither Russian nor English.
    language: Literal["ru", "en"] = "ru"
    claim_reasons: list[ClaimReason] = Field(default_factory=_default_reasons, min_length=1)
    claim_due_days: int = Field(default=10, ge=0, le=365)
    max_claim_files: int = Field(default=10, ge=0, le=50)
    max_file_bytes: int = Field(default=BOT_API_FILE_LIMIT, ge=1024, le=2000 * 1024 * 1024)
    # How long after a rating the client's next message is taken as its comment; later,
    # it is a message to the managers.
    rating_comment_seconds: int = Field(default=600, ge=1, le=24 * 3600)
    # Long polling: how long one getUpdates waits for updates.
    poll_timeout_seconds: int = Field(default=25, ge=0, le=50)
    # The hub's first answer to a new chat (channels.greeting).
    greeting: GreetingConfig = GreetingConfig()

    @field_validator("api_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError("api_url must be an http(s) URL")
        return value

    @field_validator("claim_reasons")
    @classmethod
    def _unique_codes(cls, reasons: list[ClaimReason]) -> list[ClaimReason]:
        codes = [r.code for r in reasons]
        if len(set(codes)) != len(codes):
            raise ValueError("claim reason codes must be unique")
        return reasons

    def reasons(self) -> list[Reason]:
        return [Reason(r.code, r.ru, r.en) for r in self.claim_reasons]


class TelegramSecrets(BaseModel):
    token: Annotated[str, StringConstraints(pattern=TOKEN)]
    # Telegram sends it back in X-Telegram-Bot-Api-Secret-Token with every webhook call.
    webhook_secret: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,256}$")] = Field(
        default_factory=lambda: random_secrets.token_urlsafe(32)
    )


def config_of(channel: Channel) -> TelegramChannelConfig:
    return TelegramChannelConfig.model_validate(channel.config)


def secrets_of(channel: Channel, box: SecretBox) -> TelegramSecrets:
    return TelegramSecrets.model_validate(box.open(channel.secrets))


def sealed(secrets: TelegramSecrets, box: SecretBox) -> str:
    return box.seal(secrets.model_dump())


def bot_id_of(token: str) -> int:
    return int(token.split(":", 1)[0])
