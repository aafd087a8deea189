"""Routing benchmark: decisions per second and decision time with 1,000 managers in 50 queues.

On PostgreSQL, a fresh database gets 1,000 online managers in 50 queues of 20 members
(strategies evenly, least loaded and strict order in turn), one web-form channel per
queue as its default, and N new conversations. Each conversation is then routed the way
the worker does it: `RoutingEngine.route()` in a transaction of its own, committed as
the worker commits routing's transactions (redoable: without waiting for the disk's
flush, see `Database.transaction`). Every other conversation is routed with a durable
commit instead, so the cost of the flush shows beside it.

Baselines, measured in the same run on the same database: a trivial transaction
(SELECT 1 and commit), and a one-row UPDATE with a durable commit (the disk's flush at
that moment), so the figures can be read against what the machine gives.

    python -m bench.routing [--conversations 2000] [--pg-url postgresql://postgres@127.0.0.1/postgres]

Target: median decision time at most 5 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from datetime import timedelta
from typing import Any

from sqlalchemy import text

from bench.ingest import HarnessError, postgres_database, postgres_unreachable
from intake.batch import ingest_batch
from intake.ingest import IntakeConfig
from intake.schemas import IdentityIn, InboundMessage
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
TARGET_MEDIAN_MS = 5.0
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


def _figures(times: list[float]) -> dict[str, float]:
    times = sorted(times)
    return {
        "n": len(times),
        "per_second": len(times) / sum(times),
        "median_ms": statistics.median(times) * 1000,
        "p99_ms": times[max(int(len(times) * 0.99) - 1, 0)] * 1000,
    }


async def measure(url: str, conversations: int) -> dict[str, Any]:
    await upgrade(url)
    db = Database(url, pool_size=2)
    try:
        ids = await populate(db, conversations)
        async with db.transaction() as session:
            # Statistics as autovacuum would gather them on a live database.
            await session.execute(text("ANALYZE"))
        engine = RoutingEngine()
        read_only: list[float] = []
        durable_write: list[float] = []
        worker: list[float] = []
        durable: list[float] = []
        assigned = 0
        # Interleaved, so that each figure sees the machine as it is at the same moments:
        # a decision committed as the worker commits it (redoable: no wait for the disk),
        # or with a durable commit, in turn; and both baselines.
        for n, conversation_id in enumerate(ids):
            started = time.perf_counter()
            async with db.transaction() as session:
                await session.execute(text("SELECT 1"))
            read_only.append(time.perf_counter() - started)
            started = time.perf_counter()
            async with db.transaction() as session:
                # One row written and committed: what the disk's flush costs right now.
                await session.execute(
                    text("UPDATE queues SET updated_at = now() WHERE key = :key"),
                    {"key": f"q{n % QUEUES}"},
                )
            durable_write.append(time.perf_counter() - started)
            redoable = n % 2 == 0
            started = time.perf_counter()
            async with db.transaction(redoable=redoable) as session:
                decision = await engine.route(session, conversation_id)
            (worker if redoable else durable).append(time.perf_counter() - started)
            assigned += decision is not None and decision.manager_id is not None
    finally:
        await db.dispose()
    return {
        "assigned": assigned,
        "worker": _figures(worker),
        "durable": _figures(durable),
        "read_only": _figures(read_only),
        "durable_write": _figures(durable_write),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=2000)
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args(argv)
    why = postgres_unreachable(args.pg_url)
    if why is not None:
        print(f"routing benchmark skipped: PostgreSQL unreachable ({why})")
        return 0
    try:
        with postgres_database(args.pg_url) as url:
            figures = asyncio.run(measure(url, args.conversations))
    except HarnessError as exc:
        print(f"routing benchmark failed: {exc}", file=sys.stderr)
        return 2
    total = figures["worker"]["n"] + figures["durable"]["n"]
    print(
        f"routing on postgresql: {MANAGERS} managers in {QUEUES} queues, "
        f"{total:.0f} conversations ({figures['assigned']:.0f} assigned)"
    )
    rows = [
        ("decision, committed as the worker does", figures["worker"]),
        ("decision, durable commit", figures["durable"]),
        ("baseline: SELECT 1 + commit", figures["read_only"]),
        ("baseline: one-row UPDATE + durable commit", figures["durable_write"]),
    ]
    print(f"  {'':44s} {'per s':>8s} {'median ms':>10s} {'p99 ms':>8s}")
    for name, row in rows:
        print(
            f"  {name:44s} {row['per_second']:8.1f} {row['median_ms']:10.2f} {row['p99_ms']:8.2f}"
        )
    median = figures["worker"]["median_ms"]
    print(
        f"  ratio decision (as the worker) / SELECT 1 baseline median: "
        f"{median / figures['read_only']['median_ms']:.1f}x"
    )
    met = median <= TARGET_MEDIAN_MS
    print(
        f"verdict: median {median:.2f} ms (<= {TARGET_MEDIAN_MS:.0f}) {'met' if met else 'MISSED'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
