"""Acceptance: the workspace live across processes, on PostgreSQL and Redis.

Two hubs share one PostgreSQL database and one Redis: `omnihub serve --workers 2` (two
answering processes and the outbox worker in its own, which also polls the Telegram bot)
and a plain `omnihub serve` without a worker on another port. The browser's pages and
live stream come from the first; web-form posts go to the second, so the row that appears
live in the browser's Unassigned list crossed processes on the Redis bus. A reply written
in the browser goes out through the Bot API stand-in.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import POSTGRES_URL, missing_part
from tests.e2e.workspace import (
    ADMIN,
    MANAGER_EN,
    add_staff_and_bot,
    no_overflow,
    post_form_at,
    replies_with,
    run_cli,
    sign_in,
    wait_for,
)
from tests.served import free_port, hub_environment, serve_process
from tests.telegram_api import BotApiStandIn

SECRET_KEY = "scaled-test-secret-key-0123456789abcdef"
CLIENT_CHAT = 778002


class ScaledHub:
    def __init__(self, url: str, post_url: str, env: dict[str, str], workdir: Path) -> None:
        self.url = url  # the browser's: serve --workers 2
        self.post_url = post_url  # the web form's: another serve, without a worker
        self.env = env
        self.workdir = workdir
        self.artifacts = Path(os.environ.get("OMNIHUB_TEST_ARTIFACTS") or workdir) / "scaled"
        self.artifacts.mkdir(parents=True, exist_ok=True)

    def cli(self, *args: str) -> str:
        return run_cli(self.workdir, self.env, *args)


def _dsn(database: str | None = None) -> str:
    url = make_url(POSTGRES_URL).set(drivername="postgresql")
    if database is not None:
        url = url.set(database=database)
    return url.render_as_string(hide_password=False)


@pytest.fixture(scope="module")
async def postgres_database() -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database for this module's hubs; its SQLAlchemy URL."""
    name = f"omnihub_test_scaled_{uuid.uuid4().hex[:10]}"
    try:
        conn = await asyncpg.connect(_dsn(), timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        missing_part(f"PostgreSQL unreachable at {POSTGRES_URL}: {exc}")
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        conn = await asyncpg.connect(_dsn(), timeout=5)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


@pytest.fixture(scope="module")
def scaled(
    tmp_path_factory: pytest.TempPathFactory,
    postgres_database: str,
    redis_url: str,
    telegram: BotApiStandIn,
) -> Iterator[ScaledHub]:
    workdir = tmp_path_factory.mktemp("scaled-hub")
    port, post_port = free_port(), free_port()
    settings = {
        "database_url": postgres_database,
        "redis_url": redis_url,
        "secret_key": SECRET_KEY,
        "forms_rate_limit": "0",
    }
    env = hub_environment(port, data_dir=str(workdir / "var"), **settings)
    post_env = hub_environment(
        post_port, data_dir=str(workdir / "var-posts"), run_worker="0", **settings
    )
    (workdir / "posts").mkdir()
    hub = ScaledHub(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{post_port}", env, workdir)
    hub.cli("db", "upgrade")  # on PostgreSQL, serve checks the schema and does not migrate
    with contextlib.ExitStack() as stack:
        stack.enter_context(serve_process(workdir, env, "--workers", "2", ready_within=180))
        add_staff_and_bot(hub, telegram)
        asyncio.run(set_language(postgres_database, MANAGER_EN[0], "en"))
        stack.enter_context(serve_process(workdir / "posts", post_env, ready_within=180))
        yield hub


async def set_language(database_url: str, email: str, language: str) -> None:
    conn = await asyncpg.connect(_dsn(make_url(database_url).database), timeout=5)
    try:
        await conn.execute("UPDATE managers SET language = $1 WHERE email = $2", language, email)
    finally:
        await conn.close()


async def test_a_post_to_another_process_appears_live_and_a_reply_goes_out(
    scaled: ScaledHub, browser: Any
) -> None:
    from playwright.async_api import expect

    seen = [(1280, "ru-RU", ADMIN), (390, "ru-RU", ADMIN)]
    seen += [(1280, "en-US", MANAGER_EN), (390, "en-US", MANAGER_EN)]
    for width, locale, who in seen:
        context = await browser.new_context(
            viewport={"width": width, "height": 844 if width == 390 else 800},
            locale=locale,
            is_mobile=width == 390,
        )
        context.set_default_timeout(15_000)
        try:
            page = await context.new_page()
            await sign_in(page, scaled, who)
            await page.wait_for_function("() => document.documentElement.dataset.live === 'on'")
            name = f"Клиент <b>{width}</b> " + "Длинноеимя" * 6
            email = f"client{width}.{locale}@example.ru"
            conversation_id = await asyncio.to_thread(
                post_form_at, scaled.post_url, name, email, "Нужен счёт."
            )
            posted = time.monotonic()
            row = page.locator(f'#list-rows [data-conversation="{conversation_id}"]')
            await expect(row).to_be_visible(timeout=5_000)
            took = time.monotonic() - posted
            print(f"post on another process to its row, {locale} {width} px: {took * 1000:.0f} ms")
            assert took <= 1.0, took
            await expect(row).to_contain_text("Клиент <b>")  # the markup is text
            assert await row.locator("b").count() == 0
            path = scaled.artifacts / f"scaled-list-{locale[:2]}-{width}.png"
            await page.screenshot(path=path)
            await no_overflow(page, width)
        finally:
            await context.close()
    print(f"\nscaled screenshots: {scaled.artifacts}")


async def test_a_telegram_reply_goes_out_from_the_worker_process(
    scaled: ScaledHub, browser: Any, telegram: BotApiStandIn
) -> None:
    from playwright.async_api import expect

    telegram.queue_update(
        {
            "update_id": 9101,
            "message": {
                "message_id": 21,
                "date": int(time.time()),
                "chat": {"id": CLIENT_CHAT, "type": "private", "first_name": "Pavel"},
                "from": {"id": CLIENT_CHAT, "is_bot": False, "first_name": "Pavel",
                         "language_code": "ru"},
                "text": "Здравствуйте! Есть доставка в Пермь?",
            },
        }
    )  # fmt: skip
    context = await browser.new_context(viewport={"width": 1280, "height": 800}, locale="ru-RU")
    context.set_default_timeout(15_000)
    try:
        page = await context.new_page()
        await sign_in(page, scaled, ADMIN)
        row = page.locator("#list-rows .row", has_text="Pavel")
        await expect(row).to_be_visible(timeout=30_000)
        await row.locator("a").click()
        await page.wait_for_url("**/c/*")
        await expect(page.locator("#timeline")).to_contain_text("доставка в Пермь")
        text = "Да, доставим в Пермь за 3 дня."
        await page.locator("#composer-text").fill(text)
        await page.locator("#composer-text").press("Control+Enter")
        await expect(page.locator("#timeline .msg-outbound")).to_contain_text(text)
        calls = await wait_for(lambda: replies_with(telegram, "доставим в Пермь", CLIENT_CHAT))
        assert len(calls) == 1
        await page.screenshot(path=scaled.artifacts / "scaled-conversation-ru-1280.png")
        await no_overflow(page, 1280)
    finally:
        await context.close()
