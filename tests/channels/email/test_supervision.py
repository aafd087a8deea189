"""A mailbox is polled as soon as it is added or enabled, and no more once disabled: the
change travels as `channel.changed` on the bus, in-process here and through Redis between
real `omnihub worker` processes. The pollers' re-listing is set to an hour, so only the
change can start them."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from channels.email.poller import EmailPollers, PollerOptions
from hub.settings import Settings
from hub.worker import build_worker
from storage.db import Database
from storage.models import Message
from storage.repositories import ChannelRepository
from tests.channels.email.flow import IMAP_PASSWORD, IMAP_USER, MailHub, client_mail
from tests.mailservers import Dovecot, SmtpRecorder
from tests.workers import OMNIHUB, start_workers, stop_workers, worker_env

pytestmark = pytest.mark.asyncio

CLIENT = "ivan.petrov@client.example"
HOUR = 3600.0


async def _until(check: Callable[[], Awaitable[bool]], seconds: float, what: str) -> float:
    """Wait until `check()` holds; how long it took."""
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < seconds, f"{what} within {seconds:g} s"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def test_added_disabled_and_enabled_mailbox_is_followed_at_once(
    app: Any, client: httpx.AsyncClient, dovecot: Dovecot, smtp_server: SmtpRecorder
) -> None:
    hub = MailHub(app, client, dovecot, smtp_server)
    stop = asyncio.Event()
    pollers = EmailPollers(hub.context, hub.intake, PollerOptions(refresh_seconds=HOUR))
    tasks = [
        asyncio.create_task(build_worker(hub.context, Settings()).run(stop)),
        asyncio.create_task(pollers.run(stop)),
    ]
    try:
        await asyncio.sleep(0.3)  # the pollers list no channel yet
        hub.send(client_mail(CLIENT, "Первое", "Письмо ждёт в ящике")[0])
        await hub.setup()

        async def stored(count: int) -> bool:
            return await hub.count(Message) == count

        await _until(lambda: stored(1), 5, "the new mailbox's mail taken in")

        async def set_active(active: bool) -> None:
            response = await client.patch(
                "/api/v1/channels/support", json={"is_active": active}, headers=hub.headers
            )
            assert response.status_code == 200, response.text
            assert response.json()["is_active"] is active

        await set_active(False)

        async def not_polled() -> bool:
            return hub.channel_id not in pollers.polled

        await _until(not_polled, 5, "the disabled mailbox's poller stopped")
        hub.send(client_mail(CLIENT, "Второе", "Пока ящик выключен")[0])
        await asyncio.sleep(1.0)
        assert await hub.count(Message) == 1

        await set_active(True)
        await _until(lambda: stored(2), 5, "the enabled mailbox's mail taken in")
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 20)


async def test_unknown_channel_and_bad_body_are_clear_errors(
    app: Any, client: httpx.AsyncClient, dovecot: Dovecot, smtp_server: SmtpRecorder
) -> None:
    hub = MailHub(app, client, dovecot, smtp_server)
    await hub.setup()
    missing = await client.patch(
        "/api/v1/channels/nothing", json={"is_active": False}, headers=hub.headers
    )
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    bad = await client.patch(
        "/api/v1/channels/support", json={"is_active": "maybe"}, headers=hub.headers
    )
    assert bad.status_code == 422 and "error" in bad.json()
    assert (await hub.channel()).is_active


def _cli(env: dict[str, str], *args: str) -> None:
    done = subprocess.run(
        [str(OMNIHUB), *args], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_two_worker_processes_follow_a_mailbox_added_by_the_cli(
    db: Database,
    db_url: str,
    redis_url: str,
    tmp_path: Path,
    dovecot: Dovecot,
    smtp_server: SmtpRecorder,
) -> None:
    env = worker_env(
        OMNIHUB_DATABASE_URL=db_url,
        OMNIHUB_REDIS_URL=redis_url,
        OMNIHUB_SECRET_KEY="x" * 32,
        OMNIHUB_LOG_FORMAT="text",
        OMNIHUB_WORKER_POLL_SECONDS="0.2",
        OMNIHUB_POLL_TELEGRAM="0",
        OMNIHUB_DATA_DIR=str(tmp_path / "var"),
    )
    logs, workers = start_workers(env, tmp_path)

    def output(i: int) -> str:
        return (tmp_path / f"worker{i}.log").read_text(errors="replace")

    async def listening() -> bool:
        for i, worker in enumerate(workers):
            assert worker.poll() is None, output(i)[-3000:]
        return all("email pollers follow channel changes" in output(i) for i in range(2))

    async def stored() -> bool:
        async with db.read() as session:
            return bool(await session.scalar(select(func.count()).select_from(Message)))

    try:
        await _until(listening, 30, "both workers listening for channel changes")
        dovecot.deliver(IMAP_USER, client_mail(CLIENT, "Вопрос", "Письмо до ящика")[0])
        _cli(
            {**env, "OMNIHUB_IMAP_PASSWORD": IMAP_PASSWORD},
            "channels", "add", "email", "--key", "support",
            "--imap-host", dovecot.host, "--imap-port", str(dovecot.imap_port),
            "--imap-security", "plain", "--imap-user", IMAP_USER,
            "--smtp-host", smtp_server.host, "--smtp-port", str(smtp_server.port),
            "--smtp-security", "plain", "--no-smtp-login",
            "--from-address", "support@shop.example",
        )  # fmt: skip
        # The workers listed their channels on start, before the mailbox was added, and
        # list them again only after 30 s.
        await _until(stored, 10, "the mailbox added by the CLI polled")
        async with db.read() as session:
            channel = await ChannelRepository(session).get_by_key("support")
        assert channel is not None
        heard = f"email channel {channel.id} changed"

        async def both_heard() -> bool:
            return all(heard in output(i) for i in range(2))

        # One worker's outbox published the change; Redis took it to the other one too.
        await _until(both_heard, 5, "both workers heard of the new mailbox")
    finally:
        stop_workers(workers, logs)
    for i in range(2):
        assert "Traceback" not in output(i), output(i)[-4000:]
