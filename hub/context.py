"""Building the hub's shared parts from settings."""

from __future__ import annotations

from bots.client import ClientBot
from bots.manager import ManagerBot
from channels.base import HubContext, IngestBatcher
from channels.telegram.bots import close_bots
from channels.telegram.webhook import MANAGER_PROCESSOR, PROCESSOR
from channels.webform.service import ensure_default_form
from hub.settings import Settings
from inbox.sessions import LOGIN_LIMITS, LoginLimits
from intake.ingest import IntakeConfig
from routing.engine import ROUTING_ENGINE, RoutingConfig, RoutingEngine
from storage.blobs import LocalBlobStore
from storage.bus import create_bus
from storage.db import Database
from storage.migrate import check_current, upgrade
from storage.ratelimit import Rate, create_rate_limiter


async def build_context(settings: Settings) -> HubContext:
    db = Database(settings.resolved_database_url, pool_size=settings.db_pool_size)
    if settings.embedded:
        # The embedded install migrates itself; PostgreSQL installs run `omnihub db upgrade`.
        await upgrade(settings.resolved_database_url)
    else:
        await check_current(settings.resolved_database_url)
    await ensure_default_form(db)
    rate = Rate.parse(settings.forms_rate_limit)
    intake = IntakeConfig(default_region=settings.default_region)
    # SQLite has one writer: one committer; PostgreSQL takes a few transactions at once.
    batcher = IngestBatcher(db, intake, committers=1 if db.is_sqlite else 4)
    context = HubContext(
        db=db,
        blobs=LocalBlobStore(settings.blob_dir),
        bus=create_bus(settings.redis_url),
        secret=settings.secret,
        intake=intake,
        batcher=batcher,
        forms_rate_limiter=create_rate_limiter(rate, settings.redis_url, "forms"),
        public_url=settings.public_url,
    )
    # One routing engine, configured here, for the worker and the API alike.
    context.extras[ROUTING_ENGINE] = RoutingEngine(
        RoutingConfig(first_assignee_becomes_owner=settings.first_assignee_becomes_owner)
    )
    context.extras[LOGIN_LIMITS] = LoginLimits.create(
        settings.login_rate_limit, settings.login_ip_rate_limit, settings.redis_url
    )
    # Bot channels' updates (webhook and long polling) go through the client bot...
    context.extras[PROCESSOR] = ClientBot(context, settings.redis_url)
    # ...and a managers' bot's (audience: managers) through the managers' bot.
    context.extras[MANAGER_PROCESSOR] = ManagerBot(context)
    return context


async def close_context(context: HubContext) -> None:
    if context.batcher is not None:
        await context.batcher.close()
    await context.bus.close()
    if context.forms_rate_limiter is not None:
        await context.forms_rate_limiter.close()
    login_limits = context.extras.pop(LOGIN_LIMITS, None)
    if isinstance(login_limits, LoginLimits):
        await login_limits.close()
    client_bot = context.extras.pop(PROCESSOR, None)
    if isinstance(client_bot, ClientBot):
        await client_bot.close()
    manager_bot = context.extras.pop(MANAGER_PROCESSOR, None)
    if isinstance(manager_bot, ManagerBot):
        await manager_bot.close()
    await close_bots(context)
    await context.db.dispose()
