"""The poller against a real dovecot: outages, kills, wrong passwords, the quarantine."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from storage.models import Lead, MailboxState, Message, QuarantinedEmail
from tests.channels.email.flow import IMAP_USER, MailHub, client_mail
from tests.mailservers import Dovecot, SmtpRecorder

pytestmark = pytest.mark.asyncio


async def _until(check: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def test_dovecot_outage_is_survived_and_mail_meanwhile_picked_up(hub: MailHub) -> None:
    stop = asyncio.Event()
    poller = hub.poller(min_backoff_seconds=0.2, max_backoff_seconds=1.0, idle_seconds=2.0)
    task = asyncio.create_task(poller.run(stop))
    try:
        hub.send(client_mail("a@client.example", "До сбоя", "первое")[0])
        await _until(lambda: _count(hub, Message, 1), 10, "the first message")

        hub.dovecot.stop()
        down_since = time.monotonic()
        # Mail keeps arriving while the IMAP server is down (the MTA writes the maildir).
        hub.dovecot.deliver_maildir(
            IMAP_USER, client_mail("b@client.example", "Во время", "второе")[0]
        )

        async def unreachable() -> bool:
            return (await hub.channel()).status == "unreachable"

        await _until(unreachable, 10, "the status to show the outage")
        assert (await hub.channel()).last_error
        await asyncio.sleep(max(0.0, 10 - (time.monotonic() - down_since)))
        hub.dovecot.start()

        await _until(lambda: _count(hub, Message, 2), 20, "mail that came during the outage")

        async def ok() -> bool:
            return (await hub.channel()).status == "ok"

        await _until(ok, 5, "the status to recover")
        assert not task.done()
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
    assert await hub.count(Lead) == 2


async def test_wrong_password_is_a_status_not_a_crash(
    app: Any, client: httpx.AsyncClient, dovecot: Dovecot, smtp_server: SmtpRecorder
) -> None:
    hub = MailHub(app, client, dovecot, smtp_server)
    hub_setup = hub.setup()
    await hub_setup
    dovecot.add_user(IMAP_USER, "changed-by-the-admin")
    stop = asyncio.Event()
    task = asyncio.create_task(hub.poller(auth_backoff_seconds=60).run(stop))
    try:

        async def refused() -> bool:
            return (await hub.channel()).status == "auth_failed"

        await _until(refused, 10, "auth_failed")
        channel = await hub.channel()
        assert channel.last_error and "login" in channel.last_error
        listed = await hub.client.get("/api/v1/channels", headers=hub.headers)
        [row] = [c for c in listed.json() if c["key"] == "support"]
        assert row["status"] == "auth_failed"
        assert not task.done()
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def test_bad_message_is_quarantined_others_go_on_and_retry_works(hub: MailHub) -> None:
    hub.send(client_mail("a@client.example", "Первое", "ok")[0])
    hub.send(b"Subject: no sender at all\r\n\r\nJust a body.\r\n")
    hub.send(client_mail("b@client.example", "Третье", "ok")[0])
    assert await hub.poll() == 3
    assert await hub.count(Message) == 2
    response = await hub.client.get("/api/v1/email/quarantine", headers=hub.headers)
    assert response.status_code == 200
    [item] = response.json()
    assert "sender" in item["reason"] and item["subject"] == "no sender at all"
    # Retried unchanged it stays in the quarantine, counted.
    retried = await hub.client.post(
        f"/api/v1/email/quarantine/{item['id']}/retry", headers=hub.headers
    )
    assert retried.status_code == 200 and retried.json()["outcome"] == "quarantined"
    async with hub.context.db.read() as session:
        stored = await session.get(QuarantinedEmail, item["id"])
        assert stored is not None and stored.attempts == 2
        raw_sha = stored.raw_sha256
    # The raw bytes are kept, compressed.
    import gzip

    assert b"Just a body." in gzip.decompress(await hub.context.blobs.get(raw_sha))


async def test_quarantine_release_after_limit_raised(hub: MailHub) -> None:
    big = client_mail("a@client.example", "Большое", "x" * 4000)[0]
    async with hub.context.db.transaction() as session:
        from channels.email.config import EmailChannelConfig
        from storage.models import Channel

        channel = await session.get(Channel, hub.channel_id)
        assert channel is not None
        config = EmailChannelConfig.model_validate(channel.config)
        config.max_message_bytes = 2048
        channel.config = config.model_dump(mode="json")
    hub.send(big)
    assert await hub.poll() == 1
    assert await hub.count(Message) == 0
    [item] = (await hub.client.get("/api/v1/email/quarantine", headers=hub.headers)).json()
    assert "over the mailbox limit" in item["reason"]
    async with hub.context.db.transaction() as session:
        channel = await session.get(Channel, hub.channel_id)
        assert channel is not None
        channel.config = {**channel.config, "max_message_bytes": 1_000_000}
    retried = await hub.client.post(
        f"/api/v1/email/quarantine/{item['id']}/retry", headers=hub.headers
    )
    assert retried.json()["outcome"] == "stored"
    assert await hub.count(Message) == 1
    assert (await hub.client.get("/api/v1/email/quarantine", headers=hub.headers)).json() == []


async def _count(hub: MailHub, model: Any, at_least: int) -> bool:
    return await hub.count(model) >= at_least


async def test_worker_killed_mid_batch_loses_and_duplicates_nothing(
    hub: MailHub, hub_env: dict[str, str], tmp_path: Path
) -> None:
    total = 300
    for n in range(total):
        hub.dovecot.deliver_maildir(
            IMAP_USER, client_mail(f"c{n}@client.example", f"Письмо {n}", f"Текст {n}")[0]
        )
    env = {**os.environ, **hub_env, "OMNIHUB_LOG_LEVEL": "warning"}
    omnihub = str(Path(sys.executable).parent / "omnihub")

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [omnihub, "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )

    worker = start()
    try:
        await _until(lambda: _count(hub, Message, 40), 60, "the worker to take mail in")
        worker.send_signal(signal.SIGKILL)  # mid-batch: no chance to finish anything
        worker.wait(10)
        stored = await hub.count(Message)
        assert stored < total, "the kill came too late to test anything"
        async with hub.context.db.transaction() as session:
            # The dead worker's lease would keep others out for minutes: let it lapse.
            state = await session.get(MailboxState, hub.channel_id)
            assert state is not None
            state.lease_until = None
        worker = start()
        await _until(lambda: _count(hub, Message, total), 90, "all the mail")
        await asyncio.sleep(1.0)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(15)
        except subprocess.TimeoutExpired:
            worker.kill()
    assert await hub.count(Message) == total
    assert await hub.count(Lead) == total
    assert hub.dovecot.messages_in(IMAP_USER)  # nothing deleted on the server
