"""A manager's link to the managers' bot under /api/v1/managers/me/telegram-link.

The manager (signed in, or with their own token) asks for a one-time code and sends it
to the managers' bot (the deep link does it in one tap); DELETE unlinks. Whether a
manager is linked shows as `telegram_linked` in their record.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import Query
from pydantic import BaseModel, Field

from channels.telegram.bots import bot_channel
from channels.telegram.links import issue_code, manager_bot, unlink_manager
from inbox.boundary import api_router
from inbox.deps import (
    NO_MANAGER,
    ContextDep,
    PrincipalDep,
    caller_manager,
)
from intake.accounts import get_manager
from storage.errors import Conflict, NotFound, answers
from storage.types import utcnow

router = api_router(tags=["managers"])
MANAGER_ONLY = answers(NO_MANAGER)


class TelegramLinkCodeOut(BaseModel):
    code: str = Field(description="Send it to the bot: /link CODE (one use)")
    expires_at: datetime
    bot: str = Field(description="The managers' bot channel's key")
    deep_link: str | None = Field(
        default=None, description="https://t.me/BOT?start=CODE, when the bot's username is known"
    )


@router.post(
    "/managers/me/telegram-link",
    response_model=TelegramLinkCodeOut,
    response_model_exclude_none=True,
    status_code=201,
    responses=answers(NO_MANAGER, NotFound, Conflict),
)
async def create_telegram_link_code(
    principal: PrincipalDep,
    context: ContextDep,
    bot: str | None = Query(
        default=None, max_length=64, description="The managers' bot's key; default: the first"
    ),
) -> TelegramLinkCodeOut:
    """A one-time code (15 minutes) to link the caller's Telegram to the managers' bot;
    it replaces any earlier code."""
    manager_id = caller_manager(principal)
    registry = context.bots
    async with context.db.transaction() as session:
        channel = bot_channel(await manager_bot(session, bot), registry.box)
        issued = await issue_code(session, manager_id, utcnow())
    username = await registry.username(channel)
    return TelegramLinkCodeOut(
        code=issued.code,
        expires_at=issued.expires_at,
        bot=channel.key,
        deep_link=f"https://t.me/{username}?start={issued.code}" if username else None,
    )


@router.delete(
    "/managers/me/telegram-link", status_code=204, response_model=None, responses=MANAGER_ONLY
)
async def delete_telegram_link(principal: PrincipalDep, context: ContextDep) -> None:
    """Unlink the caller's Telegram (and drop a code not yet used); done if there was none."""
    manager_id = caller_manager(principal)
    async with context.db.transaction() as session:
        manager = await get_manager(session, manager_id)
        if manager is None:
            raise NotFound("no such manager")
        await unlink_manager(session, manager)
