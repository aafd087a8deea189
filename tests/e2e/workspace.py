"""The workspace every browser test of the managers' pages runs against: `omnihub serve` as
`make run` starts it (embedded SQLite, the worker inside), a mailbox on a local dovecot
(IMAP), a local SMTP recorder and a Telegram bot polling the Bot API stand-in, with an
administrator (Russian) and a manager (English). The fixtures `hub`, `desk` (a 1280 px
Russian browser context), `mail` and `telegram` are in this package's conftest; a test
module gets its own hub.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest

from tests.conftest import missing_part
from tests.mailservers import Dovecot, SmtpRecorder, dovecot_missing_reason
from tests.served import OMNIHUB, free_port, hub_environment, serving
from tests.telegram_api import BotApiStandIn

ADMIN = ("anna@example.ru", "Анна Смирнова", "correct horse 1")
MANAGER_EN = ("boris@example.com", "Boris Kent", "battery staple 2")
MAILBOX = ("support", "mailbox-pass")
BOT_TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1"
CLIENT_CHAT = 777001


def run_cli(workdir: Path, env: dict[str, str], *args: str) -> str:
    """`omnihub ARGS` as the hub's administrator runs it, in the hub's folder and settings."""
    done = subprocess.run(
        [str(OMNIHUB), *args], cwd=workdir, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


class Served(Protocol):
    """A hub the browser tests run against: its address and its command line."""

    url: str

    def cli(self, *args: str) -> str: ...


def add_staff_and_bot(hub: Served, telegram: BotApiStandIn) -> None:
    """The administrator (Russian) and the manager (English reads after `language` is set,
    which no CLI option does yet), and the shop's Telegram bot polling the stand-in."""
    for email, name, password in (ADMIN, MANAGER_EN):
        role = "admin" if email == ADMIN[0] else "manager"
        hub.cli("managers", "add", "--email", email, "--name", name, "--role", role,
                "--password", password)  # fmt: skip
    hub.cli(
        "channels", "add", "telegram", "--key", "shopbot", "--token", BOT_TOKEN,
        "--title", "Shop bot", "--api-url", telegram.url, "--mode", "polling",
    )  # fmt: skip


@dataclass
class Workspace:
    url: str
    workdir: Path
    env: dict[str, str]
    smtp: SmtpRecorder
    dovecot: Dovecot
    telegram: BotApiStandIn
    artifacts: Path

    def cli(self, *args: str) -> str:
        return run_cli(self.workdir, self.env, *args)

    def sql(self, statement: str, *params: Any) -> list[tuple[Any, ...]]:
        path = self.workdir / "var" / "omnihub.db"
        with contextlib.closing(sqlite3.connect(path, timeout=10)) as db:
            rows = db.execute(statement, params).fetchall()
            db.commit()
        return rows


@pytest.fixture(scope="module")
async def telegram() -> AsyncIterator[BotApiStandIn]:
    stand_in = BotApiStandIn()
    await stand_in.start()
    try:
        yield stand_in
    finally:
        await stand_in.close()


@pytest.fixture(scope="module")
def mail() -> Iterator[tuple[Dovecot, SmtpRecorder]]:
    reason = dovecot_missing_reason()
    if reason:
        missing_part(reason)
    dovecot = Dovecot(users={MAILBOX[0]: MAILBOX[1]})
    dovecot.start()
    smtp = SmtpRecorder()
    smtp.start()
    try:
        yield dovecot, smtp
    finally:
        smtp.stop()
        dovecot.close()


@pytest.fixture(scope="module")
def hub(
    tmp_path_factory: pytest.TempPathFactory,
    mail: tuple[Dovecot, SmtpRecorder],
    telegram: BotApiStandIn,
) -> Iterator[Workspace]:
    dovecot, smtp = mail
    workdir = tmp_path_factory.mktemp("inbox-hub")
    artifacts = Path(os.environ.get("OMNIHUB_TEST_ARTIFACTS") or workdir) / "inbox"
    artifacts.mkdir(parents=True, exist_ok=True)
    print(f"\ninbox screenshots: {artifacts}")
    port = free_port()
    env = hub_environment(port)
    with serving(workdir, env):
        hub = Workspace(
            f"http://127.0.0.1:{port}", workdir, env, smtp, dovecot, telegram, artifacts
        )
        add_staff_and_bot(hub, telegram)
        hub.sql("UPDATE managers SET language = 'en' WHERE email = ?", MANAGER_EN[0])
        hub.cli(
            "channels", "add", "email", "--key", "support", "--title", "Support mailbox",
            "--imap-host", dovecot.host, "--imap-port", str(dovecot.imap_port),
            "--imap-security", "plain", "--imap-user", MAILBOX[0], "--imap-password", MAILBOX[1],
            "--smtp-host", smtp.host, "--smtp-port", str(smtp.port), "--smtp-security", "plain",
            "--no-smtp-login", "--from-address", "support@shop.example.ru",
            "--poll-seconds", "1", "--no-idle",
        )  # fmt: skip
        yield hub


@pytest.fixture
async def desk(browser: Any) -> AsyncIterator[Any]:
    """A desktop browser context (1280 px), Russian."""
    context = await browser.new_context(viewport={"width": 1280, "height": 800}, locale="ru-RU")
    context.set_default_timeout(15_000)
    try:
        yield context
    finally:
        await context.close()


async def sign_in(page: Any, hub: Served, who: tuple[str, str, str]) -> None:
    await page.goto(hub.url + "/")
    await page.wait_for_url("**/login")
    await page.locator("#email").fill(who[0])
    await page.locator("#password").fill(who[2])
    await page.locator("form button[type=submit]").click()
    await page.wait_for_url("**/inbox/v/unassigned")


def post_form(hub: Workspace, name: str, email: str, message: str) -> int:
    return post_form_at(hub.url, name, email, message)


def post_form_at(url: str, name: str, email: str, message: str) -> int:
    """A client's post to the built-in web form of the hub at `url`; its conversation's id."""
    response = httpx.post(
        f"{url}/forms/default",
        json={"name": name, "email": email, "message": message, "consent": True},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    conversation_id: int = response.json()["conversation_id"]
    return conversation_id


async def wait_for(condition: Any, seconds: float = 30.0) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        await asyncio.sleep(0.2)
    raise AssertionError("timed out waiting")


def replies_with(telegram: BotApiStandIn, words: str, chat: int = CLIENT_CHAT) -> list[Any]:
    return [call for call in telegram.sent("sendMessage", chat) if words in call.text]


async def sections_in_sight(page: Any, width: int) -> None:
    """Every section link of the top bar whole on screen, none scrolled out of sight."""
    boxes = await page.evaluate(
        """() => [...document.querySelectorAll('.topbar .sections a')].map(a => {
          const box = a.getBoundingClientRect(), nav = a.parentElement;
          return [a.textContent, box.left, box.right, nav.scrollWidth - nav.clientWidth];
        })"""
    )
    assert len(boxes) > 1, boxes
    for text, left, right, hidden in boxes:
        assert left >= 0 and right <= width and hidden <= 0, (text, left, right, hidden)


async def no_overflow(page: Any, width: int) -> None:
    sizes = await page.evaluate(
        "() => [document.documentElement.scrollWidth, document.body.scrollWidth]"
    )
    assert max(sizes) <= width, sizes
