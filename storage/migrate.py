"""Schema migrations through Alembic: the only way the schema changes."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import create_async_engine

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str | URL | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", make_url(url).render_as_string(hide_password=False))
    return cfg


async def upgrade(url: str | URL, revision: str = "head") -> None:
    """Bring the database at `url` to `revision` (creating the SQLite file if needed)."""
    url = make_url(url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        Path(str(url.database)).parent.mkdir(parents=True, exist_ok=True)
    cfg = alembic_config(url)
    engine = create_async_engine(url)

    def run(connection: Connection) -> None:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)

    try:
        async with engine.begin() as connection:
            await connection.run_sync(run)
    finally:
        await engine.dispose()


SEARCH_PREFIXES = {"table": "search_", "index": "ix_search_", "column": "search_"}


def managed_by_models(name: str | None, type_: str, _parents: object) -> bool:
    """Whether the models describe this schema object (Alembic's `include_name` hook).

    The search tables, indexes and columns (migration 0010: FTS5 tables on SQLite; the stored
    `messages.search_vector`, expression and trigram indexes on PostgreSQL) belong to the
    database, not to the models.
    """
    prefix = SEARCH_PREFIXES.get(type_)
    return not (prefix and name and name.startswith(prefix))


class SchemaOutOfDate(RuntimeError):
    pass


async def check_current(url: str | URL) -> None:
    """Raise SchemaOutOfDate unless the database is at the newest migration."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    heads = set(ScriptDirectory.from_config(alembic_config()).get_heads())
    engine = create_async_engine(make_url(url))

    def current(connection: Connection) -> set[str]:
        return set(MigrationContext.configure(connection).get_current_heads())

    try:
        async with engine.connect() as connection:
            found = await connection.run_sync(current)
    finally:
        await engine.dispose()
    if found != heads:
        raise SchemaOutOfDate(
            f"database schema is at {sorted(found) or 'nothing'}, the code needs {sorted(heads)}: "
            "run `omnihub db upgrade`"
        )
