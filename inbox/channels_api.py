"""The channels API under /api/v1: list channels with their status, add mailboxes,
look after the email quarantine. Passwords go in and never come out."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError

from channels.base import CHANNEL_KEY
from channels.email.admin import (
    add_email_channel,
    mailbox_status,
    public_config,
    retry_quarantined,
)
from channels.email.config import EmailChannelConfig, EmailSecrets
from channels.telegram.admin import add_telegram_channel
from channels.telegram.admin import public_config as telegram_config
from channels.telegram.config import TOKEN, TelegramChannelConfig
from channels.telephony.admin import add_telephony_channel, webhook_path
from channels.telephony.config import TelephonyConfig
from channels.webform.schemas import FormConfig
from inbox.boundary import api_router
from inbox.deps import (
    ADMIN_REQUIRED,
    AdminDep,
    ContextDep,
    PrincipalDep,
    ReadSessionDep,
)
from storage.crypto import SecretBox
from storage.email_repository import EmailRepository
from storage.errors import InvalidInput, NotFound, answers
from storage.models import Channel, ChannelKind, QuarantinedEmail, QuarantineStatus
from storage.repositories import ChannelRepository
from storage.types import DbId

router = api_router(tags=["channels"])
ADMIN = answers(ADMIN_REQUIRED)
ChannelKey = Annotated[str, Path(pattern=CHANNEL_KEY.pattern)]


class MailboxStatusOut(BaseModel):
    last_fetch_at: datetime | None
    last_uid: int | None
    open_quarantine: int
    duplicates: int = Field(description="Mail dropped as a repeat of a Message-ID taken before")


class ChannelOut(BaseModel):
    id: int
    key: str
    kind: str
    title: str
    is_active: bool
    status: str
    last_error: str | None
    last_activity_at: datetime | None
    mailbox: MailboxStatusOut | None = None
    config: dict[str, Any] | None = None


class EmailChannelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(pattern=CHANNEL_KEY.pattern)
    title: str = Field(default="", max_length=200)
    config: EmailChannelConfig
    imap_password: str = Field(min_length=1, max_length=1000)
    smtp_password: str | None = Field(default=None, max_length=1000)


class TelegramChannelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(pattern=CHANNEL_KEY.pattern)
    title: str = Field(default="", max_length=200)
    token: str = Field(pattern=TOKEN, description="The bot's token from @BotFather")
    config: TelegramChannelConfig = Field(default_factory=TelegramChannelConfig)


class QuarantinedOut(BaseModel):
    id: int
    channel_id: int
    created_at: datetime
    status: str
    reason: str
    sender: str | None
    subject: str | None
    size: int
    attempts: int
    uid: int | None
    message_id: int | None

    @classmethod
    def of(cls, item: QuarantinedEmail) -> QuarantinedOut:
        return cls(
            id=item.id,
            channel_id=item.channel_id,
            created_at=item.created_at,
            status=item.status,
            reason=item.reason,
            sender=item.sender,
            subject=item.subject,
            size=item.size,
            attempts=item.attempts,
            uid=item.uid,
            message_id=item.message_id,
        )


class RetryOut(BaseModel):
    outcome: str
    message_id: int | None
    conversation_id: int | None
    reason: str | None


async def _out(session: Any, channel: Channel, *, with_config: bool = False) -> ChannelOut:
    out = ChannelOut(
        id=channel.id,
        key=channel.key,
        kind=channel.kind,
        title=channel.title,
        is_active=channel.is_active,
        status=channel.status,
        last_error=channel.last_error,
        last_activity_at=channel.last_activity_at,
    )
    if channel.kind == ChannelKind.TELEPHONY and with_config:
        out.config = dict(channel.config)  # secrets are sealed apart, never in config
    if channel.kind == ChannelKind.EMAIL:
        state = await mailbox_status(session, channel)
        out.mailbox = MailboxStatusOut(
            last_fetch_at=state.last_fetch_at,
            last_uid=state.last_uid,
            open_quarantine=state.open_quarantine,
            duplicates=state.duplicates,
        )
        if with_config:
            out.config = public_config(channel)
    if channel.kind == ChannelKind.TELEGRAM and with_config:
        out.config = telegram_config(channel)
    if channel.kind == ChannelKind.WEBFORM and with_config:
        out.config = dict(channel.config)
    return out


@router.get("/channels", response_model=list[ChannelOut])
async def list_channels(
    _principal: PrincipalDep, session: ReadSessionDep, kind: str | None = None
) -> list[ChannelOut]:
    """Every channel with its status (for mailboxes: ok, auth_failed, unreachable; last fetch)."""
    return [await _out(session, c) for c in await ChannelRepository(session).list(kind)]


@router.get(
    "/channels/{channel_key}",
    response_model=ChannelOut,
    responses=answers(ADMIN_REQUIRED, NotFound),
)
async def get_channel(
    channel_key: ChannelKey, _admin: AdminDep, session: ReadSessionDep
) -> ChannelOut:
    """One channel with its configuration (without passwords)."""
    channel = await ChannelRepository(session).get_by_key(channel_key)
    if channel is None:
        raise NotFound(f"no channel {channel_key!r}")
    return await _out(session, channel, with_config=True)


class ChannelChangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    is_active: StrictBool | None = Field(
        default=None, description="false: not polled, takes nothing in"
    )
    title: str | None = Field(default=None, max_length=200)
    config: dict[str, Any] | None = Field(
        default=None,
        description="Settings to change, by their top-level names (`greeting`, say); the "
        "result is checked as the channel kind's whole configuration",
    )


# Each kind's configuration, as its channels are created with it.
CONFIGS: dict[str, type[BaseModel]] = {
    ChannelKind.EMAIL: EmailChannelConfig,
    ChannelKind.TELEGRAM: TelegramChannelConfig,
    ChannelKind.TELEPHONY: TelephonyConfig,
    ChannelKind.WEBFORM: FormConfig,
}


def _changed_config(channel: Channel, changes: dict[str, Any]) -> dict[str, Any]:
    try:
        config = CONFIGS[channel.kind].model_validate({**channel.config, **changes})
    except ValidationError as exc:
        detail = [
            {"loc": ["body", "config", *e["loc"]], "msg": e["msg"], "type": e["type"]}
            for e in exc.errors()
        ]
        raise InvalidInput(detail) from exc
    return config.model_dump(mode="json", exclude_none=channel.kind == ChannelKind.TELEPHONY)


@router.patch(
    "/channels/{channel_key}",
    response_model=ChannelOut,
    responses=answers(ADMIN_REQUIRED, NotFound),
)
async def change_channel(
    channel_key: ChannelKey, body: ChannelChangeIn, _admin: AdminDep, context: ContextDep
) -> ChannelOut:
    """Change a channel: enable or disable it, its title, or some of its settings (a
    greeting, say). Its poller, if it has one, stops, starts or restarts at once."""
    async with context.db.transaction() as session:
        repo = ChannelRepository(session)
        channel = await repo.get_by_key(channel_key)
        if channel is None:
            raise NotFound(f"no channel {channel_key!r}")
        if body.config is not None or body.title is not None:
            config = _changed_config(channel, body.config) if body.config else None
            await repo.change(channel, title=body.title, config=config)
        if body.is_active is not None:
            await repo.set_active(channel, body.is_active)
        return await _out(session, channel, with_config=True)


@router.post("/channels/email", response_model=ChannelOut, status_code=201, responses=ADMIN)
async def create_email_channel(
    body: EmailChannelIn, _admin: AdminDep, context: ContextDep
) -> ChannelOut:
    """Add a mailbox; the pollers of every worker start on it at once."""
    async with context.db.transaction() as session:
        channel = await add_email_channel(
            session,
            SecretBox(context.secret),
            key=body.key,
            title=body.title or body.config.from_address,
            config=body.config,
            secrets=EmailSecrets(
                imap_password=body.imap_password,
                smtp_password=body.smtp_password or body.imap_password,
            ),
        )
        return await _out(session, channel, with_config=True)


class TelephonyChannelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(pattern=CHANNEL_KEY.pattern)
    title: str = Field(default="", max_length=200)
    config: TelephonyConfig
    secrets: dict[str, str] = Field(
        default_factory=dict,
        description="generic: token (made up when absent); twilio: auth_token; "
        "zadarma: api_secret; mango: api_key, api_salt",
    )


class TelephonyChannelOut(ChannelOut):
    webhook_path: str = Field(description="Where the phone system is to post events")
    generated_secrets: dict[str, str] = Field(
        description="Secrets the hub made up (the generic token): shown only this once"
    )


@router.post(
    "/channels/telephony", response_model=TelephonyChannelOut, status_code=201, responses=ADMIN
)
async def create_telephony_channel(
    body: TelephonyChannelIn, _admin: AdminDep, context: ContextDep
) -> TelephonyChannelOut:
    """Add a phone line (generic CTI, Twilio, Zadarma or Mango Office)."""
    async with context.db.transaction() as session:
        added = await add_telephony_channel(
            session,
            SecretBox(context.secret),
            key=body.key,
            title=body.title,
            config=body.config,
            secrets=body.secrets,
        )
        out = await _out(session, added.channel, with_config=True)
    token = added.generated.get("token") or body.secrets.get("token")
    return TelephonyChannelOut(
        **out.model_dump(),
        webhook_path=webhook_path(body.key, body.config.provider, token),
        generated_secrets=added.generated,
    )


@router.post("/channels/telegram", response_model=ChannelOut, status_code=201, responses=ADMIN)
async def create_telegram_channel(
    body: TelegramChannelIn, _admin: AdminDep, context: ContextDep
) -> ChannelOut:
    """Add a bot. Webhook mode: then `omnihub channels telegram set-webhook KEY` (or point
    Telegram at /webhooks/telegram/KEY yourself); polling mode: workers pick it up."""
    async with context.db.transaction() as session:
        channel = await add_telegram_channel(
            session,
            SecretBox(context.secret),
            key=body.key,
            title=body.title or body.key,
            config=body.config,
            token=body.token,
        )
        return await _out(session, channel, with_config=True)


@router.get("/email/quarantine", response_model=list[QuarantinedOut], responses=answers(NotFound))
async def list_quarantine(
    _principal: PrincipalDep,
    session: ReadSessionDep,
    channel_key: str | None = None,
    status: str | None = QuarantineStatus.OPEN,
) -> list[QuarantinedOut]:
    """Email that could not be taken in, with the reason (status=all for every item)."""
    channel_id = None
    if channel_key is not None:
        channel = await ChannelRepository(session).get_by_key(channel_key, ChannelKind.EMAIL)
        if channel is None:
            raise NotFound(f"no mailbox {channel_key!r}")
        channel_id = channel.id
    items = await EmailRepository(session).quarantined(
        channel_id, None if status == "all" else status
    )
    return [QuarantinedOut.of(item) for item in items]


@router.post(
    "/email/quarantine/{item_id}/retry",
    response_model=RetryOut,
    responses=answers(ADMIN_REQUIRED, NotFound),
)
async def retry_quarantine(item_id: DbId, _admin: AdminDep, context: ContextDep) -> RetryOut:
    """Take a quarantined email in again; it leaves the quarantine when that works."""
    taken = await retry_quarantined(context, item_id)
    return RetryOut(
        outcome=taken.outcome,
        message_id=taken.message_id,
        conversation_id=taken.conversation_id,
        reason=taken.reason,
    )
