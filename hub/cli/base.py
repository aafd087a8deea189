"""What the commands share: the settings, running a coroutine with the operator's
errors shown in one line, and one database transaction on a migrated schema."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import click

from hub.settings import Settings, SettingsError

T = TypeVar("T")


def load_settings() -> Settings:
    """The settings from the environment; a missing secret is the operator's error, not a bug."""
    try:
        settings = Settings()
        _ = settings.secret
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc
    return settings


def run(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run the coroutine `factory` makes; settings and connection errors end the command."""
    try:
        return asyncio.run(factory())
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc
    except (ConnectionError, socket.gaierror) as exc:
        # The operator's most common mistake (server down, wrong host): one line, no traceback.
        raise click.ClickException(f"cannot connect: {exc}") from exc


async def in_transaction(settings: Settings, work: Callable[[Any], Awaitable[T]]) -> T:
    """`work(session)` in one transaction; the embedded database is migrated first, any
    other must already be at the head revision."""

    async def one(database: Any) -> T:
        async with database.transaction() as session:
            return await work(session)

    return await with_database(settings, one)


async def with_database(settings: Settings, work: Callable[[Any], Awaitable[T]]) -> T:
    """`work(database)` for commands with transactions of their own; the embedded database
    is migrated first, any other must already be at the head revision."""
    from storage.db import Database

    database = Database(settings.resolved_database_url, pool_size=1)
    try:
        if settings.embedded:
            from storage.migrate import upgrade

            await upgrade(settings.resolved_database_url)
        else:
            from storage.migrate import SchemaOutOfDate, check_current

            try:
                await check_current(settings.resolved_database_url)
            except SchemaOutOfDate as exc:
                raise click.ClickException(str(exc)) from exc
        return await work(database)
    finally:
        await database.dispose()
