"""Alembic migrations on SQLite and PostgreSQL: they agree with the models, and go both ways."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import create_async_engine

from channels.webform.schemas import FormConfig, default_form_config
from storage.migrate import (
    SchemaOutOfDate,
    alembic_config,
    check_current,
    managed_by_models,
    upgrade,
)
from storage.models import Base
from storage.types import JSONDict, UTCDateTime, utcnow
from tests.conftest import POSTGRES_URL, missing_part

HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()


async def on_connection(url: str, work: Any) -> Any:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            return await connection.run_sync(work)
    finally:
        await engine.dispose()


def differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection,
        opts={
            "compare_type": True,
            "render_as_batch": connection.dialect.name == "sqlite",
            "target_metadata": Base.metadata,
            "include_name": managed_by_models,
        },
    )
    return list(compare_metadata(context, Base.metadata))


def tables(connection: Connection) -> set[str]:
    """The tables the models describe (the search tables are the database's own)."""
    names = inspect(connection).get_table_names()
    return {name for name in names if managed_by_models(name, "table", None)}


def downgrade_to(revision: str) -> Any:
    def run(connection: Connection) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, revision)

    return run


def current(connection: Connection) -> set[str]:
    return set(MigrationContext.configure(connection).get_current_heads())


@pytest.fixture(params=["sqlite", "postgresql"])
async def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A database that was never migrated."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
        return
    name = f"omnihub_test_empty_{uuid.uuid4().hex[:10]}"
    admin = make_url(POSTGRES_URL).set(drivername="postgresql")
    try:
        conn = await asyncpg.connect(admin.render_as_string(hide_password=False), timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        missing_part(f"PostgreSQL unreachable at {POSTGRES_URL}: {exc}")
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


class TestHead:
    async def test_migrated_database_matches_the_models(self, db_url: str) -> None:
        assert await on_connection(db_url, differences) == []

    async def test_database_is_at_the_single_head(self, db_url: str) -> None:
        assert len(ScriptDirectory.from_config(alembic_config()).get_heads()) == 1
        assert await on_connection(db_url, current) == {HEAD}


class TestDowngrade:
    async def test_down_to_base_and_up_again(self, db_url: str) -> None:
        model_tables = set(Base.metadata.tables)

        await on_connection(db_url, downgrade_to("base"))
        assert await on_connection(db_url, tables) <= {"alembic_version"}
        assert await on_connection(db_url, current) == set()
        assert len(await on_connection(db_url, differences)) >= len(model_tables)

        await upgrade(db_url)
        assert await on_connection(db_url, tables) == model_tables | {"alembic_version"}
        assert await on_connection(db_url, differences) == []

    async def test_upgrade_of_an_empty_database(self, empty_db_url: str) -> None:
        await upgrade(empty_db_url)

        assert await on_connection(empty_db_url, current) == {HEAD}
        assert await on_connection(empty_db_url, differences) == []

    async def test_upgrade_at_head_is_a_no_op(self, db_url: str) -> None:
        await upgrade(db_url)

        assert await on_connection(db_url, current) == {HEAD}


class TestCheckCurrent:
    async def test_passes_at_head(self, db_url: str) -> None:
        await check_current(db_url)

    async def test_raises_on_a_never_migrated_database(self, empty_db_url: str) -> None:
        with pytest.raises(SchemaOutOfDate, match=r"at nothing.*omnihub db upgrade"):
            await check_current(empty_db_url)

    async def test_raises_on_a_downgraded_database(self, db_url: str) -> None:
        await on_connection(db_url, downgrade_to("base"))

        with pytest.raises(SchemaOutOfDate, match="omnihub db upgrade"):
            await check_current(db_url)


def channels_table() -> sa.TableClause:
    return sa.table(
        "channels",
        sa.column("id", sa.BigInteger()),
        sa.column("key", sa.String()),
        sa.column("kind", sa.String()),
        sa.column("title", sa.String()),
        sa.column("is_active", sa.Boolean()),
        sa.column("status", sa.String()),
        sa.column("config", JSONDict),
        sa.column("created_at", UTCDateTime()),
        sa.column("updated_at", UTCDateTime()),
    )


def add_default_form(config: dict[str, Any]) -> Any:
    """The built-in form as a hub before the consent made it (or its administrator left it)."""

    def run(connection: Connection) -> None:
        now = utcnow()
        connection.execute(
            sa.insert(channels_table()).values(
                key="default", kind="webform", title="Default web form", is_active=True,
                status="ok", config=config, created_at=now, updated_at=now,
            )
        )  # fmt: skip

    return run


def default_form(connection: Connection) -> dict[str, Any]:
    table = channels_table()
    config: dict[str, Any] = connection.execute(
        sa.select(table.c.config).where(table.c.key == "default")
    ).scalar_one()
    return config


class TestDefaultFormConsent:
    """Migration 0015: an existing hub's built-in form asks for the consent only when its
    administrator never changed it."""

    async def test_a_form_as_shipped_gets_the_box_and_loses_it_going_down(
        self, empty_db_url: str
    ) -> None:
        await upgrade(empty_db_url, "0014")
        before = default_form_config().model_dump(mode="json")
        assert before["consent"]["required"] is False  # as hubs were made until now
        await on_connection(empty_db_url, add_default_form(before))

        await upgrade(empty_db_url)
        after = await on_connection(empty_db_url, default_form)
        assert after["consent"]["required"] is True
        assert {**after, "consent": None} == {**before, "consent": None}  # nothing else
        # As a new hub's: the hub reads it as the form it makes today.
        configs = FormConfig.model_validate(after), FormConfig.model_validate(before)
        assert configs[0].consent.text == configs[1].consent.text

        await on_connection(empty_db_url, downgrade_to("0014"))
        assert await on_connection(empty_db_url, default_form) == before

    async def test_a_form_written_before_a_key_existed_reads_as_shipped(
        self, empty_db_url: str
    ) -> None:
        await upgrade(empty_db_url, "0014")
        older = default_form_config().model_dump(mode="json")
        del older["consent"]  # the form as stored before the consent settings existed
        await on_connection(empty_db_url, add_default_form(older))
        await upgrade(empty_db_url)
        assert (await on_connection(empty_db_url, default_form))["consent"]["required"] is True

    @pytest.mark.parametrize("edit", ["title", "field", "consent"])
    async def test_a_form_the_administrator_changed_stays_as_they_left_it(
        self, empty_db_url: str, edit: str
    ) -> None:
        await upgrade(empty_db_url, "0014")
        config = default_form_config()
        if edit == "title":
            config.title.ru = "Заявка на расчёт"
        elif edit == "field":
            config.fields = [f for f in config.fields if f.name != "phone"]
        else:  # their own consent wording, not yet switched on
            config.consent.policy_url = "https://shop.example.ru/privacy"
        edited = config.model_dump(mode="json")
        await on_connection(empty_db_url, add_default_form(edited))

        await upgrade(empty_db_url)
        assert await on_connection(empty_db_url, default_form) == edited
        await on_connection(empty_db_url, downgrade_to("0014"))
        assert await on_connection(empty_db_url, default_form) == edited
