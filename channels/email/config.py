"""A mailbox's configuration: what is stored in the channel's config, what is sealed."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints, model_validator

from channels.greeting import GreetingConfig
from storage.crypto import SecretBox
from storage.models import Channel
from storage.types import MAX_DB_INT

Security = Literal["tls", "starttls", "plain"]
AfterFetch = Literal["seen", "move", "none"]
Host = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=253)]


class ImapConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: Host
    port: int = Field(default=993, ge=1, le=65535)
    security: Security = "tls"
    user: Annotated[str, StringConstraints(min_length=1, max_length=320)]
    folder: str = "INBOX"
    # What happens to a message on the server after it is stored: never deleted.
    after_fetch: AfterFetch = "seen"
    move_to: str = "omnihub"
    idle: StrictBool = True
    poll_seconds: float = Field(default=60.0, ge=1, le=3600)
    batch_size: int = Field(default=50, ge=1, le=500)
    timeout_seconds: float = Field(default=30.0, ge=1, le=600)


class SmtpConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: Host
    port: int = Field(default=465, ge=1, le=65535)
    security: Security = "tls"
    user: str | None = None
    timeout_seconds: float = Field(default=30.0, ge=1, le=600)


class EmailChannelConfig(BaseModel):
    """Stored in `channels.config` (no secrets here)."""

    model_config = ConfigDict(extra="forbid")

    imap: ImapConfig
    smtp: SmtpConfig
    from_address: Annotated[str, StringConstraints(strip_whitespace=True, min_length=3)]
    from_name: str = ""
    # Send the client an acknowledgement with the request number (never to automatic mail):
    # the same as `greeting.enabled`, kept for the configurations that say so.
    acknowledge: bool = False
    greeting: GreetingConfig = GreetingConfig()
    language: Literal["ru", "en"] = "ru"
    # Mail to this mailbox files claims (when the claims work is there).
    claims_mailbox: StrictBool = False
    max_message_bytes: int = Field(default=40 * 1024 * 1024, ge=1024, lt=MAX_DB_INT + 1)
    max_attachment_bytes: int = Field(default=25 * 1024 * 1024, ge=1024, lt=MAX_DB_INT + 1)
    # Per sender: more than this many messages in an hour are stored without a reply.
    sender_hourly_limit: int = Field(default=30, ge=1, lt=MAX_DB_INT + 1)

    @model_validator(mode="after")
    def _from_is_an_address(self) -> EmailChannelConfig:
        if "@" not in self.from_address:
            raise ValueError("from_address must be an email address")
        self.from_address = self.from_address.lower()
        return self

    @property
    def message_id_domain(self) -> str:
        return self.from_address.rpartition("@")[2]


class EmailSecrets(BaseModel):
    imap_password: str = ""
    smtp_password: str | None = None


def config_of(channel: Channel) -> EmailChannelConfig:
    return EmailChannelConfig.model_validate(channel.config)


def secrets_of(channel: Channel, box: SecretBox) -> EmailSecrets:
    return EmailSecrets.model_validate(box.open(channel.secrets))


def sealed(secrets: EmailSecrets, box: SecretBox) -> str:
    values: dict[str, Any] = secrets.model_dump()
    return box.seal(values)
