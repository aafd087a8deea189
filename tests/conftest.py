"""Shared fixtures: a fresh database per test on SQLite and PostgreSQL, the app, a client;
the Bot API stand-in and a hub with one bot channel on it.

Every storage-touching test runs on both backends. Each test gets its own
database cloned from a migrated template (a file copy on SQLite, CREATE DATABASE
... TEMPLATE on PostgreSQL), so tests commit for real and never share rows.
Parts missing on a laptop skip with the reason; with OMNIHUB_TEST_REQUIRE_ALL=1
(as CI sets it) they fail instead.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import redis
from redis.exceptions import RedisError
from sqlalchemy.engine import make_url

from storage.db import Database
from storage.migrate import upgrade
from tests.channels.telegram.flow import BotHub
from tests.telegram_api import BotApiStandIn

REQUIRE_ALL = os.environ.get("OMNIHUB_TEST_REQUIRE_ALL") == "1"
POSTGRES_URL = os.environ.get(
    "OMNIHUB_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("OMNIHUB_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
RUN_ID = uuid.uuid4().hex[:8]
# Real-world samples written by others (../shared/corpora beside the checkout).
CORPORA = Path(
    os.environ.get("OMNIHUB_TEST_CORPORA")
    or Path(__file__).resolve().parents[1].parent / "shared" / "corpora"
)


def missing_part(reason: str) -> None:
    """Skip on a developer's machine; fail in CI, where every part must be present."""
    if REQUIRE_ALL:
        pytest.fail(f"required test part missing: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of a reachable Redis (``OMNIHUB_TEST_REDIS_URL``), checked once per session."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except (RedisError, OSError) as exc:
        missing_part(f"Redis is not reachable at {REDIS_URL}: {exc}")
    finally:
        client.close()
    return REDIS_URL


def _pg_dsn(database: str | None = None) -> str:
    url = make_url(POSTGRES_URL)
    if database is not None:
        url = url.set(database=database)
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class PostgresTemplates:
    """A migrated template database; tests get clones of it."""

    def __init__(self) -> None:
        self.template = f"omnihub_test_{RUN_ID}_template"
        self.created: list[str] = []
        self.error: str | None = None
        self.ready = False
        self.lock = asyncio.Lock()

    async def ensure(self) -> None:
        async with self.lock:
            if self.ready or self.error:
                return
            try:
                conn = await asyncpg.connect(_pg_dsn(), timeout=5)
            except (OSError, asyncpg.PostgresError) as exc:
                self.error = f"PostgreSQL unreachable at {POSTGRES_URL}: {exc}"
                return
            try:
                await conn.execute(f'CREATE DATABASE "{self.template}"')
            finally:
                await conn.close()
            await upgrade(make_url(POSTGRES_URL).set(database=self.template))
            self.ready = True

    async def clone(self) -> str:
        name = f"omnihub_test_{RUN_ID}_{uuid.uuid4().hex[:10]}"
        conn = await asyncpg.connect(_pg_dsn())
        try:
            await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        finally:
            await conn.close()
        self.created.append(name)
        return make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)

    async def drop(self, name: str) -> None:
        conn = await asyncpg.connect(_pg_dsn())
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    async def drop_all(self) -> None:
        if not self.ready:
            return
        for name in [*self.created, self.template]:
            await self.drop(name)


@pytest.fixture(scope="session")
def tmp_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("omnihub")


@pytest.fixture(scope="session")
async def sqlite_template(tmp_root: Path) -> Path:
    path = tmp_root / "template.db"
    await upgrade(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(scope="session")
async def postgres_templates() -> AsyncIterator[PostgresTemplates]:
    templates = PostgresTemplates()
    yield templates
    await templates.drop_all()


@pytest.fixture(params=["sqlite", "postgresql"])
async def db_url(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    sqlite_template: Path,
    postgres_templates: PostgresTemplates,
) -> AsyncIterator[str]:
    """A freshly migrated, empty database of each backend."""
    if request.param == "sqlite":
        path = tmp_path / "omnihub.db"
        shutil.copyfile(sqlite_template, path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    await postgres_templates.ensure()
    if postgres_templates.error:
        missing_part(postgres_templates.error)
    url = await postgres_templates.clone()
    yield url
    await postgres_templates.drop(str(make_url(url).database))


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = Database(db_url, pool_size=5)
    yield database
    await database.dispose()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "var"
    path.mkdir()
    return path


@pytest.fixture
def hub_env(
    db_url: str, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    """OMNIHUB_* variables for a hub on this test's database."""
    env = {
        "OMNIHUB_DATA_DIR": str(data_dir),
        "OMNIHUB_DATABASE_URL": db_url,
        "OMNIHUB_SECRET_KEY": "test-secret-key-0123456789abcdef",
        "OMNIHUB_FORMS_RATE_LIMIT": "0",
        "OMNIHUB_RUN_WORKER": "0",
        "OMNIHUB_LOG_FORMAT": "text",
    }
    for name in list(os.environ):
        if name.startswith("OMNIHUB_") and not name.startswith("OMNIHUB_TEST"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    yield env


@pytest.fixture
async def app(hub_env: dict[str, str]) -> AsyncIterator[object]:
    """The hub's ASGI app with its lifespan running (no worker loop; tests drain it)."""
    from hub.app import create_app
    from hub.settings import Settings

    application = create_app(Settings())
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: object) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as http:
        yield http


@pytest.fixture
async def api() -> AsyncIterator[BotApiStandIn]:
    """The Bot API stand-in on loopback (the channels', the bots' and the CLI's tests)."""
    stand_in = BotApiStandIn()
    await stand_in.start()
    try:
        yield stand_in
    finally:
        await stand_in.close()


@pytest.fixture
async def hub(app: Any, client: httpx.AsyncClient, api: BotApiStandIn) -> BotHub:
    """The app with one bot channel on the stand-in. Folders about another channel (email,
    telephony) define their own `hub`."""
    bot_hub = BotHub(app, client, api)
    await bot_hub.setup()
    return bot_hub
