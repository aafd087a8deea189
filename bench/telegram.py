"""Telegram webhook benchmark: updates/s through the hub's real app against a bare FastAPI
endpoint that parses the same aiogram `Update` (bench/bare_telegram.py).

For each storage backend the hub runs as `omnihub serve` (uvicorn, the in-process worker
on) with one bot channel, and takes closed-loop load on `POST /webhooks/telegram/{key}`:
private text messages, each a new update that is stored. By default each comes from a
new client (a contact, a conversation and a lead each, like bench/ingest.py's forms);
`--clients N` draws them from N clients whose chats continue instead. The bare app is
measured before and after every hub run; each hub run is compared with the mean of the
two bare runs around it (bench/ingest.py does the same).

    python -m bench.telegram [--duration 15] [--concurrency 64] [--backends sqlite,postgresql]

Exits non-zero only when the harness fails; a missed target is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.bare_telegram import SECRET as WEBHOOK_SECRET
from bench.ingest import (
    HUB_CMD,
    NOISY_SPREAD,
    SECRET_KEY,
    HarnessError,
    Measurement,
    Server,
    _clean_env,
    _hub_env,
    _mean,
    migrate,
    postgres_database,
    postgres_unreachable,
)
from bench.load import CLIENTS, LoadResult
from bench.sustained import Sustained, measure_load, seed_staff, sqlite_url

ROOT = Path(__file__).resolve().parent.parent
BACKENDS = ("sqlite", "postgresql")
TARGET_RATIO = 0.40
TARGET_P99_MS = 150.0
TARGET_CONCURRENCY = 64
KEY = "bench"
PATH = f"/webhooks/telegram/{KEY}"
TOKEN = "123456789:AAbenchbenchbenchbenchbenchbenchbench"
HEADERS = {"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET}
BARE_CMD = (
    "{python} -m uvicorn bench.bare_telegram:app --host {host} --port {port}"
    " --no-access-log --log-level warning"
)
_TEXTS = (
    "Здравствуйте! Подскажите, когда привезут заказ?",
    "Добрый день, хочу уточнить стоимость доставки в Казань.",
    "Оплатил картой, но статус заказа не изменился.",
    "Можно ли поменять размер после оформления?",
    "Спасибо, жду ответа менеджера.",
)


class Updates:
    """Telegram updates: private text messages, numbered on; from a pool of `clients`
    people (their chats continue), or each from a new person when `clients` is 0."""

    def __init__(self, clients: int = 0, start: int = 1) -> None:
        self.clients = clients
        self._numbers = itertools.count(start)

    def update(self, n: int) -> dict[str, Any]:
        user = 500_000_000 + (n % self.clients if self.clients else n)
        return {
            "update_id": n,
            "message": {
                "message_id": n,
                "from": {
                    "id": user,
                    "is_bot": False,
                    "first_name": "Клиент",
                    "last_name": str(user),
                    "username": f"client{user}",
                    "language_code": "ru",
                },
                "chat": {"id": user, "type": "private", "first_name": "Клиент"},
                "date": int(time.time()),
                "text": f"{_TEXTS[n % len(_TEXTS)]} Заказ №{n}.",
            },
        }

    def next_body(self) -> bytes:
        return json.dumps(self.update(next(self._numbers)), ensure_ascii=False).encode()


def measure(
    server: Server,
    where: str,
    args: argparse.Namespace,
    updates: Updates,
    database_url: str | None = None,
) -> tuple[LoadResult, Sustained | None]:
    """One closed-loop run; against a hub (`database_url`) also until its backlog is empty."""
    return measure_load(
        server.url,
        where,
        database_url,
        unit="updates/s",
        concurrency=args.concurrency,
        duration=args.duration,
        warmup=args.warmup,
        client=args.client,
        bodies=updates.next_body,
        path=PATH,
        headers=HEADERS,
    )


async def _add_bot(database_url: str) -> None:
    """The bot channel, with the webhook secret the load sends."""
    from channels.telegram.config import TelegramChannelConfig, TelegramSecrets, sealed
    from storage.crypto import SecretBox
    from storage.db import Database
    from storage.models import ChannelKind
    from storage.repositories import ChannelRepository

    db = Database(database_url, pool_size=1)
    try:
        async with db.transaction() as session:
            await ChannelRepository(session).add(
                key=KEY,
                kind=ChannelKind.TELEGRAM,
                title="Bench bot",
                # The load is plain messages: the hub never calls the Bot API here.
                config=TelegramChannelConfig(api_url="http://127.0.0.1:9").model_dump(mode="json"),
                secrets=sealed(
                    TelegramSecrets(token=TOKEN, webhook_secret=WEBHOOK_SECRET),
                    SecretBox(SECRET_KEY),
                ),
            )
    finally:
        await db.dispose()


async def _stored(database_url: str) -> int:
    from sqlalchemy import func, select

    from storage.db import Database
    from storage.models import Message

    db = Database(database_url, pool_size=1)
    try:
        async with db.read() as session:
            return int(await session.scalar(select(func.count()).select_from(Message)) or 0)
    finally:
        await db.dispose()


def measure_hub(
    backend: str, args: argparse.Namespace, workdir: Path, updates: Updates
) -> Measurement:
    data_dir = Path(tempfile.mkdtemp(prefix=f"hub-{backend}-", dir=workdir))
    log = workdir / f"hub-{backend}.log"
    with contextlib.ExitStack() as stack:
        database_url = None
        if backend == "postgresql":
            database_url = stack.enter_context(postgres_database(args.pg_url))
        env = _hub_env(data_dir, database_url)
        env["OMNIHUB_SECRET_KEY"] = SECRET_KEY
        url = database_url or sqlite_url(data_dir)
        migrate(env, log, args.startup_timeout)
        asyncio.run(_add_bot(url))
        hub = Server(f"hub ({backend})", HUB_CMD, env, log)
        hub.start(args.startup_timeout)
        stack.callback(hub.stop)
        problems = []
        with httpx.Client(base_url=hub.url, timeout=30.0) as client:
            answer = client.post(PATH, content=updates.next_body(), headers=HEADERS)
            if answer.status_code != 200:
                problems.append(f"POST {PATH} answered {answer.status_code}: {answer.text[:300]}")
            refused = client.post(PATH, content=updates.next_body(), headers={})
            if refused.status_code != 401:
                problems.append(f"without the secret token: {refused.status_code}, not 401")
        for problem in problems:
            print(f"  hub on {backend}: {problem}", flush=True)
        seed_staff(url)
        result, sustained = measure(hub, f"hub on {backend}", args, updates, url)
        hub.stop()
        stored = asyncio.run(_stored(url))
    return Measurement(backend, "hub", result, problems, sustained, stored=stored)


def report(
    hubs: list[tuple[Measurement, list[Measurement]]],
    bares: list[Measurement],
    args: argparse.Namespace,
) -> None:
    header = (
        f"{'backend':11} {'target':6} {'updates/s':>10} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'errors':>7} {'hub/bare':>9} {'sustained/s':>12} {'sust/bare':>10}"
    )
    print()
    print(
        f"telegram webhook, {args.concurrency} concurrent keep-alive connections, "
        f"{args.client} client, private text messages "
        + (f"from a pool of {args.clients} clients" if args.clients else "each from a new client")
    )
    print(header)
    print("-" * len(header))
    verdicts = []
    for hub, around in hubs:
        rps = _mean([m.result.rps for m in around])
        p50 = _mean([m.result.p50_ms for m in around])
        p99 = _mean([m.result.p99_ms for m in around])
        errors = sum(m.result.errors for m in around)
        h = hub.result
        ratio = h.rps / rps if rps else 0.0
        sustained_ratio = hub.sustained_rps / rps if rps else 0.0
        print(
            f"{hub.backend:11} {'bare':6} {rps:10.1f} {p50:8.2f} {p99:8.2f} {errors:7d} "
            f"{'':>9} {rps:12.1f}"
        )
        print(
            f"{hub.backend:11} {'hub':6} {h.rps:10.1f} {h.p50_ms:8.2f} {h.p99_ms:8.2f} "
            f"{h.errors:7d} {ratio:9.2f} {hub.sustained_rps:12.1f} {sustained_ratio:10.2f}"
        )
        checks = [
            (ratio >= TARGET_RATIO, f"hub/bare {ratio:.0%} (>= {TARGET_RATIO:.0%})"),
            (h.p99_ms <= TARGET_P99_MS, f"p99 {h.p99_ms:.1f} ms (<= {TARGET_P99_MS:.0f})"),
            (h.errors == 0, f"errors {h.errors} (= 0)"),
        ]
        if hub.problems:
            checks.append((False, "answers as specified"))
        if hub.stored is not None and hub.stored < h.ok:
            checks.append((False, f"stored {hub.stored} < answered {h.ok}"))
        met = all(ok for ok, _ in checks)
        verdicts.append(
            f"verdict {hub.backend}: {'MET' if met else 'NOT MET'}: "
            + "; ".join(f"{text} {'ok' if ok else 'MISSED'}" for ok, text in checks)
            + (f"; {hub.stored} messages stored" if hub.stored is not None else "")
            + f"; sustained/bare {sustained_ratio:.0%} (for information)"
        )
    runs = [m.result.rps for m in bares]
    spread = (max(runs) - min(runs)) / _mean(runs) * 100 if runs and _mean(runs) else 0.0
    print(
        f"bare runs in order: {', '.join(f'{r:.0f}' for r in runs)} updates/s "
        f"(spread {spread:.1f}%; each hub row is compared with the two runs around it)"
    )
    if spread > NOISY_SPREAD:
        print(f"note: the bare runs differ by more than {NOISY_SPREAD:.0f}%: a noisy machine")
    print()
    for line in verdicts:
        print(line)


def run(args: argparse.Namespace, workdir: Path) -> int:
    updates = Updates(args.clients)
    bare = Server("bare app", BARE_CMD, _clean_env(), workdir / "bare.log")
    bare.start(args.startup_timeout)
    bares: list[Measurement] = []
    hubs: list[tuple[Measurement, list[Measurement]]] = []
    status = 0
    try:
        print(
            f"measuring {args.duration:g} s after {args.warmup:g} s warmup, "
            f"{args.concurrency} connections, {args.client} client",
            flush=True,
        )
        bares.append(Measurement("-", "bare", measure(bare, "bare app", args, updates)[0]))
        for backend in args.backends:
            if backend == "postgresql":
                reason = postgres_unreachable(args.pg_url)
                if reason:
                    print(f"  skipping postgresql: {reason}", flush=True)
                    continue
            try:
                hub = measure_hub(backend, args, workdir, updates)
            except HarnessError as exc:
                print(f"\nharness failure on {backend}: {exc}", file=sys.stderr, flush=True)
                status = 2
                continue
            bares.append(Measurement("-", "bare", measure(bare, "bare app", args, updates)[0]))
            hubs.append((hub, bares[-2:]))
    finally:
        bare.stop()
    if hubs:
        report(hubs, bares, args)
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.telegram", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=TARGET_CONCURRENCY)
    parser.add_argument(
        "--clients",
        type=int,
        default=0,
        help="a pool of N Telegram users whose chats continue; 0 (default): a new user each",
    )
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--client", choices=CLIENTS, default="raw")
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--startup-timeout", type=float, default=60.0)
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args(argv)
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = set(args.backends) - set(BACKENDS)
    if unknown:
        parser.error(f"unknown backend(s): {', '.join(sorted(unknown))}")
    workdir = Path(tempfile.mkdtemp(prefix="omnihub-bench-telegram-"))
    try:
        return run(args, workdir)
    except HarnessError as exc:
        print(f"harness failure: {exc}", file=sys.stderr)
        return 2
    finally:
        if args.keep_logs:
            print(f"logs and data kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
