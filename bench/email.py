"""Email intake benchmark: messages per second from a real dovecot into the hub.

A fresh dovecot (Debian's, started as in the tests) gets N messages in its maildir:
Russian and English text, windows-1251, KOI8-R and UTF-8, HTML with a text part,
quoted replies, a small attachment in every tenth. The baseline is a bare aioimaplib
client fetching the whole mailbox (UID SEARCH, then UID FETCH BODY.PEEK[] in batches of
50) in the same run. The hub's figure is the mailbox poller taking the same mailbox in:
fetch, parse, charset repair, sanitising, threading, ingest with contact, conversation,
lead and outbox events, the checkpoint and marking the mail seen.

    python -m bench.email [--messages 2000] [--backends sqlite,postgresql]

Target: the hub at least 30% of the bare fetch rate.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path

import aioimaplib

from bench.ingest import (
    ROOT,
    HarnessError,
    _clean_env,
    _command,
    postgres_database,
    postgres_unreachable,
)
from bench.sustained import add_staff, empty_backlog, sqlite_url
from tests.mailservers import Dovecot, dovecot_missing_reason

USER = "bench@example.test"
PASSWORD = "bench-secret"
TARGET_RATIO = 0.30
BATCH = 50

TEXTS = [
    "Здравствуйте! Прошу выставить счёт на 12 коробок бумаги А4 и доставить до пятницы.",
    "Добрый день. Заказ номер {n} пришёл с повреждённой упаковкой, прошу заменить товар.",
    "Hello, could you send the price list for wholesale orders? We need about 300 units.",
    "Подскажите, пожалуйста, сроки доставки в Екатеринбург и стоимость подъёма на этаж.",
]


def sample(n: int) -> bytes:
    message = EmailMessage()
    message["From"] = f"Клиент {n} <client{n}@example.ru>"
    message["To"] = "support@shop.example"
    message["Subject"] = f"Заявка {n}: вопрос по заказу"
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = f"<bench-{n}@client.example.ru>"
    text = TEXTS[n % len(TEXTS)].format(n=n) + "\n\n-- \nС уважением,\nКлиент\n"
    if n % 3 == 1:
        text += "\n\n12.11.2026, 10:15, Магазин пишет:\n> Здравствуйте! Чем помочь?\n"
    charset = ("utf-8", "windows-1251", "koi8-r")[n % 3]
    message.set_content(text, charset=charset, cte="8bit" if charset != "utf-8" else None)
    if n % 2 == 0:
        message.add_alternative(
            f"<html><body><p>{text.splitlines()[0]}</p><script>x()</script></body></html>",
            subtype="html",
        )
    if n % 10 == 0:
        message.add_attachment(
            b"%PDF-1.4 " + bytes(range(256)) * 40,
            maintype="application",
            subtype="pdf",
            filename=f"Счёт {n}.pdf",
        )
    return message.as_bytes()


async def bare_fetch(dovecot: Dovecot) -> tuple[int, float]:
    """The baseline: the whole mailbox through aioimaplib, nothing done with it."""
    client = aioimaplib.IMAP4(host=dovecot.host, port=dovecot.imap_port, timeout=60)
    await client.wait_hello_from_server()
    await client.login(USER, PASSWORD)
    started = time.perf_counter()
    await client.select("INBOX")
    response = await client.uid_search("ALL")
    uids = [int(u) for u in response.lines[0].split()]
    count = 0
    for start in range(0, len(uids), BATCH):
        batch = uids[start : start + BATCH]
        fetched = await client.uid("fetch", f"{batch[0]}:{batch[-1]}", "(BODY.PEEK[])")
        count += sum(1 for line in fetched.lines if re.match(rb"\d+ FETCH", bytes(line)))
    elapsed = time.perf_counter() - started
    await client.logout()
    return count, elapsed


SECRET_KEY = "bench-secret-key-0123456789"


@contextlib.contextmanager
def worker_process(database_url: str, data_dir: Path) -> Iterator[None]:
    """`omnihub worker` on the hub's database, as production runs it beside the intake: it
    routes what the intake commits. It watches no mailbox; the benchmark's poller does."""
    env = _clean_env()
    env.update(
        OMNIHUB_DATABASE_URL=database_url,
        OMNIHUB_DATA_DIR=str(data_dir),
        OMNIHUB_SECRET_KEY=SECRET_KEY,
        OMNIHUB_POLL_MAILBOXES="0",
        OMNIHUB_POLL_TELEGRAM="0",
        OMNIHUB_LOG_LEVEL="warning",
    )
    log = data_dir / "worker.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            _command("{omnihub} worker"),
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        yield
        if proc.poll() is not None:
            raise HarnessError(f"the worker exited with {proc.returncode}: {log.read_text()}")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Intake:
    messages: int
    taken_in: float  # seconds: fetch, parse and ingest of the whole mailbox
    routed: float  # seconds from the start until the outbox backlog was empty
    backlog: int  # due outbox events left when the mailbox was taken in


async def hub_intake(dovecot: Dovecot, database_url: str, data_dir: Path) -> Intake:
    from channels.email.admin import add_email_channel
    from channels.email.config import EmailChannelConfig, EmailSecrets
    from channels.email.imap import open_imap
    from channels.email.poller import MailboxPoller
    from channels.email.service import EmailIntake
    from hub.context import build_context, close_context
    from hub.settings import Settings
    from storage.crypto import SecretBox
    from storage.migrate import upgrade

    await upgrade(database_url)
    settings = Settings(data_dir=data_dir, database_url=database_url, secret_key=SECRET_KEY)
    context = await build_context(settings)
    try:
        config = EmailChannelConfig.model_validate(
            {
                "imap": {
                    "host": dovecot.host,
                    "port": dovecot.imap_port,
                    "security": "plain",
                    "user": USER,
                    "batch_size": BATCH,
                },
                "smtp": {"host": "127.0.0.1", "port": 25, "security": "plain"},
                "from_address": "support@shop.example",
            }
        )
        async with context.db.transaction() as session:
            channel = await add_email_channel(
                session,
                SecretBox(context.secret),
                key="bench",
                title="bench",
                config=config,
                secrets=EmailSecrets(imap_password=PASSWORD),
            )
            channel_id = channel.id
        await add_staff(database_url)
        poller = MailboxPoller(context, EmailIntake(context), channel_id, name="bench")
        loaded = await poller._load()
        assert loaded is not None
        mailbox, mailbox_settings = loaded
        imap = await open_imap(mailbox_settings)
        with worker_process(database_url, data_dir):
            await empty_backlog(database_url)
            started = time.perf_counter()
            count = await poller.sync(imap, mailbox)
            taken_in = time.perf_counter()
            await imap.close()
            backlog, drained = await empty_backlog(database_url)
        return Intake(count, taken_in - started, drained - started, backlog)
    finally:
        await close_context(context)


def run(backend: str, messages: int, pg_url: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="omnihub-bench-email-") as tmp:
        dovecot = Dovecot(users={USER: PASSWORD})
        dovecot.start()
        try:
            for n in range(messages):
                dovecot.deliver_maildir(USER, sample(n))
            bare_count, bare_seconds = asyncio.run(bare_fetch(dovecot))
            data_dir = Path(tmp) / "var"
            data_dir.mkdir()
            if backend == "sqlite":
                url = sqlite_url(data_dir)
                hub = asyncio.run(hub_intake(dovecot, url, data_dir))
            else:
                with postgres_database(pg_url) as url:
                    hub = asyncio.run(hub_intake(dovecot, url, data_dir))
        finally:
            dovecot.close()
    if bare_count != messages or hub.messages != messages:
        raise HarnessError(f"expected {messages}, bare fetched {bare_count}, hub {hub.messages}")
    return {
        "bare": bare_count / bare_seconds,
        "hub": hub.messages / hub.taken_in,
        "sustained": hub.messages / hub.routed,
        "backlog": hub.backlog,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args(argv)
    reason = dovecot_missing_reason()
    if reason:
        print(f"email benchmark skipped: {reason}")
        return 0
    print(f"email intake: {args.messages} messages from dovecot, batches of {BATCH}")
    for backend in args.backends.split(","):
        if backend == "postgresql":
            unreachable = postgres_unreachable(args.pg_url)
            if unreachable:
                print(f"  postgresql skipped: {unreachable}")
                continue
        try:
            figures = run(backend, args.messages, args.pg_url)
        except HarnessError as exc:
            print(f"  {backend}: harness failed: {exc}", file=sys.stderr)
            return 1
        ratio = figures["hub"] / figures["bare"]
        verdict = "met" if ratio >= TARGET_RATIO else "missed"
        print(
            f"  {backend:10} bare aioimaplib fetch {figures['bare']:8.0f} msg/s   "
            f"hub intake {figures['hub']:7.0f} msg/s   ratio {ratio:.2f} "
            f"(target {TARGET_RATIO:.2f}: {verdict})"
        )
        sustained = figures["sustained"]
        print(
            f"  {'':10} sustained (taken in and routed by `omnihub worker`) "
            f"{sustained:7.0f} msg/s   ratio {sustained / figures['bare']:.2f}   "
            f"backlog when taken in: {figures['backlog']:.0f} events"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
