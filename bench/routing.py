"""Routing benchmark: batches of 1,000 new conversations over 1,000 managers in 50 queues.

On each backend (PostgreSQL, SQLite), a fresh database gets 1,000 online managers in 50
queues of 20 members (strategies evenly, least loaded and strict order in turn), one
web-form channel per queue as its default, and new conversations spread over the
channels. They are routed the way the worker routes what it claimed in one round:
`route_batch` over a batch of them in one transaction, committed as the worker commits
routing (redoable: without waiting for the disk's flush, see `Database.transaction`).
The figure is milliseconds per conversation (the batch's time over its size), the
median of a few batches. A sample of conversations is also routed one at a time
(`RoutingEngine.route`, a transaction each), as a retry or a manager coming online does.

Baseline, measured in the same run on the same database: a trivial transaction
(SELECT 1 and commit), so the figures can be read against what the machine gives.

    python -m bench.routing [--batch 1000] [--batches 3] [--backends postgresql,sqlite]

Target: at most 0.5 ms per conversation on PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text

from bench.ingest import HarnessError, postgres_database, postgres_unreachable
from intake.batch import ingest_batch
from intake.ingest import IntakeConfig
from intake.schemas import IdentityIn, InboundMessage
from routing.batch import route_batch
from routing.engine import RoutingEngine
from storage.db import Database
from storage.migrate import upgrade
from storage.models import (
    Channel,
    ChannelKind,
    IdentityKind,
    Manager,
    Presence,
    Queue,
    QueueMember,
    Strategy,
)
from storage.types import utcnow

MANAGERS = 1000
QUEUES = 50
TARGET_MS_PER_CONVERSATION = 0.5
ONE_AT_A_TIME = 200
TRIVIAL = 200
STRATEGIES = (Strategy.EVENLY, Strategy.LEAST_LOADED, Strategy.STRICT_ORDER)


async def populate(db: Database, conversations: int) -> list[int]:
    """Managers, queues, channels and new conversations; returns the conversation ids."""
    far = utcnow() + timedelta(days=1)
    async with db.transaction() as session:
        managers = [
            Manager(
                email=f"m{n}@bench.example.ru",
                name=f"Менеджер {n}",
                role="manager",
                is_active=True,
                presence=Presence.ONLINE,
                presence_expires_at=far,
                capacity=100_000,
                languages=[],
            )
            for n in range(MANAGERS)
        ]
        session.add_all(managers)
        await session.flush()
        channels = []
        for q in range(QUEUES):
            queue = Queue(
                key=f"q{q}",
                name=f"Очередь {q}",
                strategy=STRATEGIES[q % len(STRATEGIES)],
                forward_after_seconds=600,
                sla={"normal": {"first_response": 3600}},
            )
            session.add(queue)
            await session.flush()
            members = managers[q * 20 : (q + 1) * 20]
            session.add_all(
                QueueMember(queue_id=queue.id, manager_id=m.id, position=i)
                for i, m in enumerate(members)
            )
            channel = Channel(
                key=f"form{q}",
                kind=ChannelKind.WEBFORM,
                title=f"Форма {q}",
                config={},
                default_queue_id=queue.id,
            )
            session.add(channel)
            channels.append(channel)
        await session.flush()
        messages = [
            InboundMessage(
                channel_id=channels[n % QUEUES].id,
                channel_kind=ChannelKind.WEBFORM,
                external_id=f"bench-{n}",
                identities=[IdentityIn(IdentityKind.EMAIL, f"client{n}@bench.example.ru")],
                text="Здравствуйте! Хочу узнать о доставке.",
                contact_name=f"Клиент {n}",
            )
            for n in range(conversations)
        ]
        results = []
        for start in range(0, len(messages), 500):
            results += await ingest_batch(session, messages[start : start + 500], IntakeConfig())
    return [r.conversation_id for r in results]  # type: ignore[union-attr]


def _median_ms(times: list[float]) -> float:
    return statistics.median(times) * 1000


async def measure(url: str, batch: int, batches: int) -> dict[str, Any]:
    await upgrade(url)
    db = Database(url, pool_size=2)
    try:
        ids = await populate(db, batch * batches + ONE_AT_A_TIME)
        if not db.is_sqlite:
            async with db.transaction() as session:
                # Statistics as autovacuum would gather them on a live database.
                await session.execute(text("ANALYZE"))
        engine = RoutingEngine()
        trivial: list[float] = []
        for _ in range(TRIVIAL):
            started = time.perf_counter()
            async with db.transaction() as session:
                await session.execute(text("SELECT 1"))
            trivial.append(time.perf_counter() - started)
        per_conversation: list[float] = []
        assigned = 0
        for n in range(batches):
            chunk = ids[n * batch : (n + 1) * batch]
            started = time.perf_counter()
            async with db.transaction(redoable=True) as session:
                decisions = await route_batch(engine, session, chunk)
            per_conversation.append((time.perf_counter() - started) / len(chunk))
            assigned += sum(1 for d in decisions.values() if d is not None and d.manager_id)
        single: list[float] = []
        for conversation_id in ids[batch * batches :]:
            started = time.perf_counter()
            async with db.transaction(redoable=True) as session:
                await engine.route(session, conversation_id)
            single.append(time.perf_counter() - started)
    finally:
        await db.dispose()
    return {
        "conversations": batch * batches,
        "assigned": assigned,
        "batch_ms": _median_ms(per_conversation),
        "single_ms": _median_ms(single),
        "trivial_ms": _median_ms(trivial),
    }


def _run(backend: str, pg_url: str, batch: int, batches: int) -> dict[str, Any] | str:
    """The figures of one backend, or why it was skipped."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as workdir:
            url = f"sqlite+aiosqlite:///{Path(workdir) / 'omnihub.db'}"
            return asyncio.run(measure(url, batch, batches))
    why = postgres_unreachable(pg_url)
    if why is not None:
        return f"PostgreSQL unreachable ({why})"
    with postgres_database(pg_url) as url:
        return asyncio.run(measure(url, batch, batches))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--backends", default="postgresql,sqlite")
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args(argv)
    print(f"routing: {MANAGERS} managers in {QUEUES} queues, batches of {args.batch}")
    print(
        f"  {'backend':11s} {'batch ms/conv':>14s} {'one at a time ms':>17s}"
        f" {'SELECT 1 + commit ms':>21s} {'batch/trivial':>14s}"
    )
    verdicts = []
    for backend in args.backends.split(","):
        try:
            figures = _run(backend, args.pg_url, args.batch, args.batches)
        except HarnessError as exc:
            print(f"routing benchmark failed: {exc}", file=sys.stderr)
            return 2
        if isinstance(figures, str):
            print(f"  {backend:11s} skipped: {figures}")
            continue
        print(
            f"  {backend:11s} {figures['batch_ms']:14.3f} {figures['single_ms']:17.2f}"
            f" {figures['trivial_ms']:21.3f} {figures['batch_ms'] / figures['trivial_ms']:14.2f}"
            f"   ({figures['assigned']}/{figures['conversations']} assigned)"
        )
        if backend == "postgresql":
            met = figures["batch_ms"] <= TARGET_MS_PER_CONVERSATION
            verdicts.append(
                f"verdict: {figures['batch_ms']:.3f} ms per conversation on PostgreSQL"
                f" (<= {TARGET_MS_PER_CONVERSATION}) {'met' if met else 'MISSED'}"
            )
    for line in verdicts:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
