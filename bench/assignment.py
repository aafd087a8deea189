"""Commit-to-assignment benchmark: how soon a web-form request reaches its manager.

On a fresh PostgreSQL database, `omnihub serve` (without its embedded worker) takes a
closed-loop web-form load of 16 clients, while two `omnihub worker` processes route
what it commits. The form's channel has a queue of 50 online managers as its default.
After the load, the workers are given time to empty the backlog; then, for every
conversation, the time from its creation (in the request, just before the commit) to
its assignment's creation (in the worker, just before that commit) is read from the
database, and its p50 and p99 printed with the load's own figures.

    python -m bench.assignment [--duration 15] [--concurrency 16] [--workers 2]

Targets: p50 at most 50 ms, p99 at most 300 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from bench.ingest import (
    HUB_CMD,
    HUB_UPGRADE_CMD,
    ROOT,
    HarnessError,
    Server,
    _command,
    _hub_env,
    _omnihub,
    postgres_database,
    postgres_unreachable,
)
from bench.load import run_load
from storage.db import Database
from storage.models import (
    Channel,
    Conversation,
    Manager,
    OutboxEvent,
    OutboxStatus,
    Presence,
    Queue,
    QueueMember,
    RoutingState,
    Strategy,
)
from storage.types import utcnow

MANAGERS = 50
TARGET_P50_MS = 50.0
TARGET_P99_MS = 300.0
DRAIN_TIMEOUT = 300.0


async def staff_default_queue(session: AsyncSession) -> None:
    """A queue of online managers as the default form channel's queue."""
    far = utcnow() + timedelta(days=1)
    queue = Queue(key="bench", name="Очередь", strategy=Strategy.EVENLY, sla={})
    managers = [
        Manager(
            email=f"m{n}@bench.example.ru",
            name=f"Менеджер {n}",
            presence=Presence.ONLINE,
            presence_expires_at=far,
            capacity=1_000_000,
            languages=[],
        )
        for n in range(MANAGERS)
    ]
    session.add(queue)
    session.add_all(managers)
    await session.flush()
    session.add_all(
        QueueMember(queue_id=queue.id, manager_id=m.id, position=i) for i, m in enumerate(managers)
    )
    await session.execute(
        update(Channel).where(Channel.key == "default").values(default_queue_id=queue.id)
    )


async def prepare(url: str) -> None:
    """The default form channel's queue staffed (`staff_default_queue`)."""
    db = Database(url, pool_size=2)
    try:
        async with db.transaction() as session:
            await staff_default_queue(session)
    finally:
        await db.dispose()


async def drained(url: str) -> tuple[bool, float]:
    """Wait until every conversation is decided and no event is due; (drained?, seconds)."""
    db = Database(url, pool_size=1)
    started = time.monotonic()
    try:
        while time.monotonic() - started < DRAIN_TIMEOUT:
            async with db.read() as session:
                new = await session.scalar(
                    select(func.count())
                    .select_from(Conversation)
                    .where(Conversation.routing_state == RoutingState.NEW)
                )
                due = await session.scalar(
                    select(func.count())
                    .select_from(OutboxEvent)
                    .where(
                        OutboxEvent.status == OutboxStatus.PENDING,
                        OutboxEvent.due_at <= func.now(),
                    )
                )
            if not new and not due:
                return True, time.monotonic() - started
            await asyncio.sleep(0.2)
        return False, time.monotonic() - started
    finally:
        await db.dispose()


async def delays(url: str) -> tuple[list[float], int]:
    """Seconds from each conversation's creation to its first assignment; and how many
    conversations there are."""
    db = Database(url, pool_size=1)
    try:
        async with db.read() as session:
            rows = (
                await session.execute(
                    text(
                        "SELECT EXTRACT(EPOCH FROM min(a.created_at) - c.created_at)"
                        " FROM conversations c JOIN assignments a ON a.conversation_id = c.id"
                        " WHERE a.state = 'assigned' GROUP BY c.id, c.created_at"
                    )
                )
            ).all()
            total = await session.scalar(select(func.count()).select_from(Conversation))
    finally:
        await db.dispose()
    return [float(row[0]) for row in rows], int(total or 0)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(len(ordered) * q), len(ordered) - 1)]


def run(args: argparse.Namespace, workdir: Path) -> int:
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(postgres_database(args.pg_url))
        env = _hub_env(workdir / "var", url)
        log = workdir / "hub.log"
        with log.open("ab") as out:
            subprocess.run(
                _command(HUB_UPGRADE_CMD), cwd=ROOT, env=env, stdout=out, stderr=out, check=True
            )
        hub = Server("hub", HUB_CMD, {**env, "OMNIHUB_RUN_WORKER": "0"}, log)
        hub.start(60)
        stack.callback(hub.stop)
        asyncio.run(prepare(url))
        worker_env = {**env, "OMNIHUB_WORKER_POLL_SECONDS": "1.0", "OMNIHUB_LOG_LEVEL": "info"}
        workers = []
        for n in range(args.workers):
            out = stack.enter_context((workdir / f"worker{n}.log").open("ab"))
            workers.append(
                subprocess.Popen(
                    [_omnihub(), "worker"], cwd=ROOT, env=worker_env, stdout=out, stderr=out
                )
            )
        for worker in workers:
            stack.callback(_stop, worker)
        _wait_started([workdir / f"worker{n}.log" for n in range(args.workers)])
        result = run_load(
            hub.url, concurrency=args.concurrency, duration=args.duration, warmup=args.warmup
        )
        done, drain_seconds = asyncio.run(drained(url))
        seconds, total = asyncio.run(delays(url))
    if not seconds:
        print("commit-to-assignment: nothing was assigned", file=sys.stderr)
        return 2
    p50, p99 = _percentile(seconds, 0.5) * 1000, _percentile(seconds, 0.99) * 1000
    print(
        f"commit to assignment on postgresql: {args.workers} workers, "
        f"{args.concurrency} clients for {args.duration:.0f} s"
    )
    print(f"  answers: {result.line()}")
    print(
        f"  {len(seconds)} of {total} conversations assigned; backlog "
        f"{'emptied' if done else 'NOT emptied'} {drain_seconds:.1f} s after the load"
    )
    print(
        f"  commit to assignment: p50 {p50:.1f} ms, p99 {p99:.1f} ms,"
        f" mean {statistics.fmean(seconds) * 1000:.1f} ms, max {max(seconds) * 1000:.1f} ms"
    )
    met = p50 <= TARGET_P50_MS and p99 <= TARGET_P99_MS
    print(
        f"verdict: p50 {p50:.1f} ms (<= {TARGET_P50_MS:.0f}), p99 {p99:.1f} ms "
        f"(<= {TARGET_P99_MS:.0f}) {'met' if met else 'MISSED'}"
    )
    return 0


def _wait_started(logs: list[Path], timeout: float = 180.0) -> None:
    """Until every worker has started its outbox loop (imports take a while on a busy
    machine: the load must not start before them)."""
    deadline = time.monotonic() + timeout
    while not all("outbox worker started" in log.read_text() for log in logs):
        if time.monotonic() > deadline:
            raise HarnessError(f"the workers did not start within {timeout:.0f} s")
        time.sleep(0.2)
    time.sleep(1.0)  # and listening


def _stop(worker: subprocess.Popen[bytes]) -> None:
    worker.terminate()
    try:
        worker.wait(timeout=20)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args(argv)
    why = postgres_unreachable(args.pg_url)
    if why is not None:
        print(f"commit-to-assignment benchmark skipped: PostgreSQL unreachable ({why})")
        return 0
    try:
        with tempfile.TemporaryDirectory(prefix="omnihub-assignment-") as workdir:
            return run(args, Path(workdir))
    except (HarnessError, subprocess.CalledProcessError) as exc:
        print(f"commit-to-assignment benchmark failed: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
