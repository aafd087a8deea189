"""The client bot: one aiogram Dispatcher for every bot channel of the hub.

Routers, in order: intake (what a client writes outside a dialogue: the common case
first), the menu (/start, /cancel), the claim dialogue, my claims, ratings, and the
leftovers (unknown commands, stale buttons). Each update runs as a unit of
work (bots.work) inside the FSM's per-chat lock.
"""

from __future__ import annotations

from aiogram import Dispatcher

from bots.claim_flow import claim_router
from bots.intake_router import intake_router, leftovers_router
from bots.menu import menu_router
from bots.my_claims import my_claims_router
from bots.rating import rating_router
from bots.storage import create_storage
from bots.work import DispatcherBot, UnitOfWorkMiddleware
from channels.base import HubContext
from channels.telegram.inbound import TelegramIntake


class ClientBot(DispatcherBot):
    """The hub's UpdateProcessor for bot channels (webhook and long polling alike)."""

    def __init__(self, context: HubContext, redis_url: str | None = None) -> None:
        self.context = context
        self.intake = TelegramIntake(context)
        self.limiter = context.bots.limiter
        storage, isolation = create_storage(context.db, redis_url)
        super().__init__(
            context.db, Dispatcher(storage=storage, events_isolation=isolation), isolation
        )
        # After the FSM middleware, so inside its per-chat lock.
        self.dispatcher.update.outer_middleware(UnitOfWorkMiddleware(context, self.limiter))
        self.dispatcher.include_routers(
            intake_router(),
            menu_router(),
            claim_router(),
            my_claims_router(),
            rating_router(),
            leftovers_router(),
        )
        # Workflow data: a handler with an `intake` argument gets it, so the routers need
        # not know this class.
        self.dispatcher["intake"] = self.intake
