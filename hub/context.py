"""Building the hub's shared parts from settings.

The composition root: every field of `HubContext` is built here, once, and closed
by `close_context`. The parts that need the context itself (the Telegram bots'
update processors) are set right after it is made.
"""

from __future__ import annotations

from bots.client import ClientBot
from bots.manager import ManagerBot
from channels.base import HubContext, IngestBatcher
from channels.telegram.bots import BotRegistry
from channels.telephony.config import SetupCache
from channels.telephony.journal import CallBatcher, CallJournal
from channels.webform.service import FormCache, ensure_default_form
from hub.settings import Settings
from inbox.sessions import LoginLimits, login_limits
from intake.ingest import IntakeConfig
from routing.engine import RoutingConfig, RoutingEngine
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
    intake = IntakeConfig(
        default_region=settings.default_region,
        reply_file_max_bytes=settings.reply_file_max_bytes,
    )
    # SQLite has one writer: one committer; PostgreSQL takes a few transactions at once.
    committers = 1 if db.is_sqlite else 4
    batcher = IngestBatcher(db, intake, committers=committers)
    # One routing engine, configured here, for the worker, the API and the channels.
    routing = RoutingEngine(
        RoutingConfig(first_assignee_becomes_owner=settings.first_assignee_becomes_owner)
    )
    logins = LoginLimits.create(
        settings.login_rate_limit, settings.login_ip_rate_limit, settings.redis_url
    )
    context = HubContext(
        db=db,
        blobs=LocalBlobStore(settings.blob_dir),
        bus=create_bus(settings.redis_url),
        secret=settings.secret,
        bots=BotRegistry(db, settings.secret),
        forms=FormCache(),
        phone_lines=SetupCache(settings.secret),
        calls=CallBatcher(CallJournal(db, intake, routing), committers=committers),
        intake=intake,
        routing=routing,
        batcher=batcher,
        forms_rate_limiter=create_rate_limiter(rate, settings.redis_url, "forms"),
        login_account_limiter=logins.per_account,
        login_ip_limiter=logins.per_ip,
        public_url=settings.public_url,
    )
    # Bot channels' updates (webhook and long polling) go through the client bot...
    context.client_bot = ClientBot(context, settings.redis_url)
    # ...and a managers' bot's (audience: managers) through the managers' bot.
    context.manager_bot = ManagerBot(context)
    return context


async def close_context(context: HubContext) -> None:
    if context.batcher is not None:
        await context.batcher.close()
    await context.bus.close()
    if context.forms_rate_limiter is not None:
        await context.forms_rate_limiter.close()
    await login_limits(context).close()
    context.login_account_limiter = context.login_ip_limiter = None
    for processor in (context.client_bot, context.manager_bot):
        if processor is not None:
            await processor.close()
    context.client_bot = context.manager_bot = None
    await context.bots.close()
    await context.db.dispose()
