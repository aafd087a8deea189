"""Where the outbox worker's time goes for web-form requests, on PostgreSQL.

A fresh database gets the default form's channel with a queue of 50 online managers
(as `bench.assignment` has it) and N web-form submissions, stored the way the form
stores them (group commit: `ingest_batch` in small batches, with a lead each). Then
the worker the hub runs (`hub.worker.build_worker`, every handler of the hub) empties
the backlog in this process, round after round, and the figure is its time per
request (all the events a request leads to: the conversation opened, the message
received, the lead created, the assignment and its timers) and per event.

Baseline, measured in the same run: a trivial transaction (SELECT 1 and commit).

    python -m bench.worker_profile [--requests 2000] [--profile out.prof] [--top 40]

With --profile the run is also recorded by cProfile and the functions that took most
time (cumulative) are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import statistics
import sys
import time
from collections import Counter
from typing import Any

from sqlalchemy import Engine, event, func, select, text

from bench.assignment import staff_default_queue
from bench.ingest import HarnessError, postgres_database, postgres_unreachable
from channels.base import HubContext
from hub.context import build_context, close_context
from hub.settings import Settings
from hub.worker import build_worker
from intake.batch import ingest_batch
from intake.ingest import IntakeConfig
from intake.schemas import IdentityIn, InboundMessage
from storage.migrate import upgrade
from storage.models import (
    Channel,
    ChannelKind,
    IdentityKind,
    OutboxEvent,
)

GROUP = 4  # submissions per group commit, about what 16 clients give
TRIVIAL = 200


def submission(channel_id: int, n: int) -> InboundMessage:
    email = f"user{n}@example.ru"
    return InboundMessage(
        channel_id=channel_id,
        channel_kind=ChannelKind.WEBFORM,
        external_id=f"json:bench-{n}",
        identities=[IdentityIn(IdentityKind.EMAIL, email)],
        text="Здравствуйте! Хочу узнать о доставке и сроках. " * 6,
        contact_name=f"Клиент {n}",
        contact_language="ru",
        meta={"form": "default", "language": "ru"},
        attribution={"utm_source": "bench", "utm_medium": "cpc"},
        form_fields={"name": f"Клиент {n}", "email": email},
    )


async def populate(context: HubContext, requests: int) -> None:
    async with context.db.transaction() as session:
        await staff_default_queue(session)
        channel_id = await session.scalar(select(Channel.id).where(Channel.key == "default"))
    assert channel_id is not None
    for start in range(0, requests, GROUP):
        async with context.db.transaction() as session:
            messages = [submission(channel_id, n) for n in range(start, start + GROUP)]
            await ingest_batch(session, messages, IntakeConfig())
    async with context.db.transaction() as session:
        await session.execute(text("ANALYZE"))


async def measure(url: str, requests: int, profile: cProfile.Profile | None) -> dict[str, Any]:
    await upgrade(url)
    settings = Settings(database_url=url, secret_key="bench-secret-key-0123456789abcdef")
    context = await build_context(settings)
    try:
        await populate(context, requests)
        trivial = []
        for _ in range(TRIVIAL):
            started = time.perf_counter()
            async with context.db.transaction() as session:
                await session.execute(text("SELECT 1"))
            trivial.append(time.perf_counter() - started)
        worker = build_worker(context, settings)
        statements: Counter[str] = Counter()

        def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            statements[" ".join(statement.split())[:150]] += 1

        event.listen(Engine, "before_cursor_execute", count)
        rounds: list[tuple[int, float]] = []
        events = 0
        if profile is not None:
            profile.enable()
        started = time.perf_counter()
        while True:
            began = time.perf_counter()
            handled = await worker.run_once()
            if not handled:
                break
            rounds.append((handled, time.perf_counter() - began))
            events += handled
        seconds = time.perf_counter() - started
        if profile is not None:
            profile.disable()
        event.remove(Engine, "before_cursor_execute", count)
        async with context.db.read() as session:
            topics = Counter(
                {
                    str(topic): int(count)
                    for topic, count in await session.execute(
                        select(OutboxEvent.topic, func.count()).group_by(OutboxEvent.topic)
                    )
                }
            )
    finally:
        await close_context(context)
    return {
        "requests": requests,
        "events": events,
        "rounds": len(rounds),
        "seconds": seconds,
        "per_request_ms": seconds / requests * 1000,
        "per_event_ms": seconds / max(events, 1) * 1000,
        "trivial_ms": statistics.median(trivial) * 1000,
        "topics": topics,
        "statements": statements,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--profile", default=None, help="write cProfile's figures here")
    parser.add_argument("--top", type=int, default=40, help="functions of the profile shown")
    parser.add_argument("--statements", type=int, default=25, help="statements shown")
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args(argv)
    why = postgres_unreachable(args.pg_url)
    if why is not None:
        print(f"worker profile skipped: PostgreSQL unreachable ({why})")
        return 0
    profile = cProfile.Profile() if args.profile else None
    try:
        with postgres_database(args.pg_url) as url:
            figures = asyncio.run(measure(url, args.requests, profile))
    except HarnessError as exc:
        print(f"worker profile failed: {exc}", file=sys.stderr)
        return 2
    print(
        f"outbox worker on postgresql: {figures['requests']} web-form requests,"
        f" {figures['events']} events in {figures['rounds']} rounds"
        f" ({figures['seconds']:.2f} s{', under cProfile' if profile else ''})"
    )
    print(
        f"  per request {figures['per_request_ms']:.2f} ms, per event"
        f" {figures['per_event_ms']:.2f} ms; SELECT 1 + commit {figures['trivial_ms']:.2f} ms"
        f" (per request / trivial {figures['per_request_ms'] / figures['trivial_ms']:.1f})"
    )
    print("  events: " + ", ".join(f"{t} {n}" for t, n in figures["topics"].most_common()))
    statements: Counter[str] = figures["statements"]
    print(
        f"  statements: {sum(statements.values())}"
        f" ({sum(statements.values()) / figures['requests']:.1f} per request), the most run:"
    )
    for statement, n in statements.most_common(args.statements):
        print(f"    {n:6d}  {statement}")
    if profile is not None:
        profile.dump_stats(args.profile)
        stats = pstats.Stats(profile)
        stats.sort_stats("cumulative").print_stats(args.top)
        stats.sort_stats("tottime").print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
