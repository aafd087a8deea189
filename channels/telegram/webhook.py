"""`POST /webhooks/telegram/{key}`: Telegram's webhook calls, checked, parsed and handled.

The secret token Telegram repeats in `X-Telegram-Bot-Api-Secret-Token` (set with
setWebhook) authenticates the call. The answer is 200 only after what the update
caused is committed; an error answer makes Telegram deliver the update again.
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any, Protocol

from aiogram import Bot
from aiogram.types import Update
from fastapi import APIRouter, Request, Response
from pydantic import ValidationError

from channels.base import HubContext
from channels.telegram.bots import BotChannel
from channels.telegram.inbound import TelegramIntake
from storage.errors import HubError

log = logging.getLogger(__name__)

router = APIRouter(tags=["telegram"])
SECRET_HEADER = "x-telegram-bot-api-secret-token"
OK = b'{"ok":true}'
# An update carries at most a 4096-character message (and the one it replies to) with
# entities and a keyboard: tens of KB; files come by getFile, never in the update.
# Enforced while reading by hub.limits.
MAX_BODY_BYTES = 1024 * 1024


class UpdateProcessor(Protocol):
    """What handles a bot's updates (the client bot or the managers' bot in bots/, or
    intake alone); closed with the hub."""

    async def process(self, channel: BotChannel, bot: Bot, update: Update) -> None: ...

    async def close(self) -> None: ...


class IntakeOnly:
    """Without a bot conversation: clients' messages go to intake, edits update them."""

    def __init__(self, context: HubContext) -> None:
        self.intake = TelegramIntake(context)

    async def process(self, channel: BotChannel, bot: Bot, update: Update) -> None:
        if update.message is not None:
            await self.intake.take(channel, bot, update.message, update.update_id)
        elif update.edited_message is not None:
            await self.intake.take_edit(channel, bot, update.edited_message, update.update_id)

    async def close(self) -> None:
        pass


class Unattended:
    """A managers' bot without the managers' bot wired in: its updates are dropped, never
    taken in as clients' messages."""

    async def process(self, channel: BotChannel, bot: Bot, update: Update) -> None:
        log.warning("update %s of managers' bot %s dropped", update.update_id, channel.key)

    async def close(self) -> None:
        pass


def processor_for(context: HubContext, channel: BotChannel) -> UpdateProcessor:
    """Who handles the channel's updates: the managers' bot for a bot of managers, the
    client bot (or intake alone) for a bot of clients."""
    if channel.config.audience == "managers":
        return context.manager_bot if context.manager_bot is not None else Unattended()
    return context.client_bot if context.client_bot is not None else IntakeOnly(context)


class BadSecretToken(HubError):
    status_code = 401
    code = "invalid_secret_token"


class InvalidUpdate(HubError):
    status_code = 400
    code = "invalid_update"


def _upgrade_legacy(value: Any, key: str | None = None) -> Any:
    """Fill in what older Bot API versions did not send and the current one requires
    (file_unique_id, a sticker's type and flags), from what the payload has."""
    if isinstance(value, list):
        return [_upgrade_legacy(item, key) for item in value]
    if not isinstance(value, dict):
        return value
    upgraded = {k: _upgrade_legacy(v, k) for k, v in value.items()}
    if "file_id" in upgraded and "file_unique_id" not in upgraded:
        upgraded["file_unique_id"] = upgraded["file_id"]
    if key == "sticker":
        upgraded.setdefault("type", "regular")
        upgraded.setdefault("is_animated", False)
        upgraded.setdefault("is_video", False)
    return upgraded


def parse_update(body: bytes, bot: Bot) -> Update | None:
    """The Update bound to `bot`. InvalidUpdate for what is not an update at all; None
    (answered 200, so Telegram does not resend it forever) for an update the hub cannot
    read even after filling in what older Bot API versions left out."""
    try:
        return Update.model_validate_json(body, context={"bot": bot})
    except ValidationError:
        pass
    try:
        data = json.loads(body)
    except ValueError:
        raise InvalidUpdate("the body is not valid JSON", code="invalid_json") from None
    update_id = data.get("update_id") if isinstance(data, dict) else None
    if not isinstance(update_id, int) or isinstance(update_id, bool):
        raise InvalidUpdate("not a Telegram Update: no update_id") from None
    upgraded = _upgrade_legacy(data)
    try:
        return Update.model_validate(upgraded, context={"bot": bot})
    except ValidationError as exc:
        readable = _without_unreadable(upgraded, exc)
    if readable is not None:
        try:
            return Update.model_validate(readable, context={"bot": bot})
        except ValidationError as exc:
            log.warning("telegram update %s ignored: %s", update_id, exc.errors()[:3])
    return None


# A message cannot be read without these; any other field may be left out.
_CORE = frozenset({"message_id", "chat", "date", "from", "text", "caption"})


def _without_unreadable(data: dict[str, Any], exc: ValidationError) -> dict[str, Any] | None:
    """The update without the parts of its message the current Bot API model cannot read
    (a game of 2017, say); None when what cannot be read is the message itself."""
    copy = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    dropped = False
    for error in exc.errors():
        loc = error["loc"]
        if len(loc) < 2 or not isinstance(copy.get(str(loc[0])), dict) or loc[1] in _CORE:
            return None
        dropped = copy[str(loc[0])].pop(str(loc[1]), None) is not None or dropped
    return copy if dropped else None


@router.post(
    "/webhooks/telegram/{key}",
    summary="Telegram webhook of a bot channel",
    responses={
        200: {"description": "Handled (and committed), or ignored"},
        400: {"description": "Not a Telegram update"},
        401: {"description": "Wrong X-Telegram-Bot-Api-Secret-Token"},
        404: {"description": "No such bot channel"},
    },
)
async def webhook(key: str, request: Request) -> Response:
    context: HubContext = request.app.state.context
    registry = context.bots
    channel = await registry.channel(key)
    token = request.headers.get(SECRET_HEADER, "")
    if not hmac.compare_digest(token.encode(), channel.webhook_secret.encode()):
        raise BadSecretToken("wrong or missing X-Telegram-Bot-Api-Secret-Token", headers={})
    bot = registry.bot(channel)
    update = parse_update(await request.body(), bot)
    if update is not None:
        await processor_for(context, channel).process(channel, bot, update)
    return Response(OK, media_type="application/json")
