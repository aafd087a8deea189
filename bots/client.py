"""The client bot: one aiogram Dispatcher for every bot channel of the hub.

Routers, in order: intake (what a client writes outside a dialogue: the common case
first), the menu (/start, /cancel), the claim dialogue, my claims, ratings, and the
leftovers (unknown commands, stale buttons). Each update runs as a unit of
work (bots.work) inside the FSM's per-chat lock.
"""

from __future__ import annotations

from aiogram import Bot, Dispatcher
from aiogram.types import Update

from bots.claim_flow import claim_router
from bots.intake_router import intake_router, leftovers_router
from bots.menu import menu_router
from bots.my_claims import my_claims_router
from bots.rating import rating_router
from bots.storage import create_storage
from bots.work import UnitOfWorkMiddleware, UpdateWork
from channels.base import HubContext
from channels.telegram.bots import BotChannel, bot_registry
from channels.telegram.inbound import TelegramIntake


class ClientBot:
    """The hub's UpdateProcessor for bot channels (webhook and long polling alike)."""

    def __init__(self, context: HubContext, redis_url: str | None = None) -> None:
        self.context = context
        self.intake = TelegramIntake(context)
        self.limiter = bot_registry(context).limiter
        storage, isolation = create_storage(context.db, redis_url)
        self.dispatcher = Dispatcher(storage=storage, events_isolation=isolation)
        self._isolation = isolation
        # After the FSM middleware, so inside its per-chat lock.
        self.dispatcher.update.outer_middleware(UnitOfWorkMiddleware(self))
        self.dispatcher.include_routers(
            intake_router(),
            menu_router(),
            claim_router(),
            my_claims_router(),
            rating_router(),
            leftovers_router(),
        )
        self.dispatcher["client"] = self

    async def process(self, channel: BotChannel, bot: Bot, update: Update) -> None:
        work = UpdateWork(self.context.db, channel.id, update.update_id)
        await self.dispatcher.feed_update(bot, update, channel=channel, work=work)

    async def close(self) -> None:
        await self.dispatcher.storage.close()
        await self._isolation.close()
