"""Two real `omnihub worker` processes on PostgreSQL route 1,000 conversations at once.

No conversation is assigned twice, no manager goes over capacity, and each
conversation ends up assigned or waiting with its reason.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO

import pytest
from sqlalchemy import func, select, text

from routing.presence import set_presence
from storage.db import Database
from storage.models import (
    Assignment,
    Channel,
    ChannelKind,
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
from tests.factories import form_conversations
from tests.workers import start_workers, stop_workers, worker_env

CONVERSATIONS = 1000
MANAGERS = 20
TIMEOUT_SECONDS = 180


async def _setup(
    db: Database, capacity: int, conversations: int = CONVERSATIONS
) -> tuple[list[int], list[int]]:
    async with db.transaction() as session:
        queue = Queue(key="sales", name="Sales", strategy=Strategy.EVENLY, sla={})
        session.add(queue)
        await session.flush()
        channel = Channel(
            key="site", kind=ChannelKind.WEBFORM, title="site", config={}, default_queue_id=queue.id
        )
        session.add(channel)
        managers = [
            Manager(email=f"m{i}@example.ru", name=f"Manager {i}", capacity=capacity)
            for i in range(MANAGERS)
        ]
        session.add_all(managers)
        await session.flush()
        session.add_all(
            QueueMember(queue_id=queue.id, manager_id=m.id, position=i)
            for i, m in enumerate(managers)
        )
        for manager in managers:
            await set_presence(session, manager.id, Presence.ONLINE, now=utcnow(), ttl_seconds=3600)
        channel_id = channel.id
        manager_ids = [m.id for m in managers]
    return manager_ids, await form_conversations(db, channel_id, conversations)


def _socket_ports(pid: int) -> set[int]:
    """Local TCP ports of a process's sockets (to tell its PostgreSQL backends apart)."""
    inodes = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    try:
        for fd in fd_dir.iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        return set()
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if parts[9] in inodes:
                ports.add(int(parts[1].rsplit(":", 1)[1], 16))
    return ports


async def _run_workers(db: Database, db_url: str, tmp_path: Path) -> dict[int, set[str]]:
    """Run two workers until no due event is left; returns what each was seen running."""
    env = worker_env(
        OMNIHUB_DATABASE_URL=db_url,
        OMNIHUB_SECRET_KEY="x" * 32,
        OMNIHUB_LOG_FORMAT="text",
        OMNIHUB_WORKER_POLL_SECONDS="0.2",
        OMNIHUB_DATA_DIR=str(tmp_path / "var"),
    )
    logs, workers = start_workers(env, tmp_path)
    seen: dict[int, set[str]] = {w.pid: set() for w in workers}
    database = db.url.database
    try:
        deadline = time.monotonic() + TIMEOUT_SECONDS
        while True:
            assert time.monotonic() < deadline, "workers did not finish in time"
            for worker in workers:
                assert worker.poll() is None, (tmp_path / "worker0.log").read_text()[-3000:]
            async with db.read() as session:
                activity = (
                    await session.execute(
                        text(
                            "SELECT client_port, query FROM pg_stat_activity"
                            " WHERE datname = :db AND pid <> pg_backend_pid()"
                            " AND state <> 'idle'"
                        ),
                        {"db": database},
                    )
                ).all()
                due = await session.scalar(
                    select(func.count())
                    .select_from(OutboxEvent)
                    .where(
                        OutboxEvent.status == OutboxStatus.PENDING,
                        OutboxEvent.due_at <= func.now(),
                    )
                )
                new = await session.scalar(
                    select(func.count())
                    .select_from(Conversation)
                    .where(Conversation.routing_state == RoutingState.NEW)
                )
            for worker in workers:
                ports = _socket_ports(worker.pid)
                for port, query in activity:
                    if port in ports and query:
                        seen[worker.pid].add(query.split()[0].upper())
            if due == 0 and new == 0:
                break
            await asyncio.sleep(0.05)
    finally:
        stop_workers(workers, logs)
    for i in range(len(workers)):
        output = (tmp_path / f"worker{i}.log").read_text()
        assert "outbox worker started" in output, output[-2000:]
        assert "outbox worker stopped" in output, output[-2000:]
        assert "Traceback" not in output, output[-4000:]
    return seen


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("capacity", [60, 40])
async def test_two_workers_route_a_thousand_conversations(
    db: Database, db_url: str, tmp_path: Path, capacity: int
) -> None:
    manager_ids, conversation_ids = await _setup(db, capacity)
    assert len(set(conversation_ids)) == CONVERSATIONS

    seen = await _run_workers(db, db_url, tmp_path)

    async with db.read() as session:
        conversations = (await session.scalars(select(Conversation))).all()
        rows = (await session.scalars(select(Assignment).order_by(Assignment.id))).all()
        failed = await session.scalar(
            select(func.count()).select_from(OutboxEvent).where(OutboxEvent.last_error.is_not(None))
        )
        retries = (
            await session.scalars(
                select(OutboxEvent).where(
                    OutboxEvent.topic == "routing.retry",
                    OutboxEvent.status == OutboxStatus.PENDING,
                )
            )
        ).all()
    assert failed == 0
    assert len(conversations) == CONVERSATIONS

    by_conversation: dict[int, list[Assignment]] = {}
    for row in rows:
        by_conversation.setdefault(row.conversation_id, []).append(row)
    expected_assigned = min(CONVERSATIONS, MANAGERS * capacity)
    states = Counter(c.routing_state for c in conversations)
    assert states == Counter(
        {
            RoutingState.ASSIGNED: expected_assigned,
            RoutingState.WAITING: CONVERSATIONS - expected_assigned,
        }
    ), states

    live_retries = Counter(
        (int(e.payload["conversation_id"]), e.payload.get("assignment_id")) for e in retries
    )
    for c in conversations:
        history = by_conversation.get(c.id, [])
        live = [r for r in history if r.ended_at is None]
        assert len(live) == 1, (c.id, [(r.state, r.manager_id, r.ended_at) for r in history])
        assigned = [r for r in history if r.state == RoutingState.ASSIGNED]
        if c.routing_state == RoutingState.ASSIGNED:
            # Exactly one assignment, never a second one on top of it.
            assert len(assigned) == 1, (c.id, [(r.manager_id, r.reason) for r in assigned])
            assert live[0].state == RoutingState.ASSIGNED
            assert live[0].manager_id == c.assignee_id
            assert live[0].reason == "strategy"
        else:
            assert assigned == []
            assert c.assignee_id is None
            assert live[0].state == RoutingState.WAITING
            assert c.waiting_reason is not None
            assert c.waiting_reason.startswith("nobody can take it: "), c.waiting_reason
            assert "at capacity" in c.waiting_reason, c.waiting_reason
            assert c.waiting_reason == f"nobody can take it: {MANAGERS} at capacity 40/40"
            assert live_retries[(c.id, live[0].id)] == 1

    loads = Counter(c.assignee_id for c in conversations if c.assignee_id is not None)
    assert set(loads) <= set(manager_ids)
    assert all(count <= capacity for count in loads.values()), loads
    if expected_assigned < MANAGERS * capacity:  # all assigned: spread evenly
        counts = [loads.get(m, 0) for m in manager_ids]
        assert max(counts) - min(counts) <= 1, sorted(counts)
    else:
        assert all(loads[m] == capacity for m in manager_ids), loads

    # Both processes took part (their database sessions were seen at work).
    assert all(seen.values()), seen


async def _claimed(db: Database, event_id: int) -> tuple[int, datetime | None, str]:
    async with db.read() as session:
        event = await session.get(OutboxEvent, event_id)
        assert event is not None
        return event.attempts, event.locked_until, event.status


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_a_killed_workers_events_are_taken_over_within_ten_seconds(
    db: Database, db_url: str, tmp_path: Path
) -> None:
    """A worker killed (SIGKILL) in the middle of its work: its lease, renewed while it
    worked, runs out within seconds and the other worker handles its events."""
    _managers, conversation_ids = await _setup(db, capacity=5, conversations=1)
    [conversation_id] = conversation_ids
    async with db.read() as session:
        opened = await session.scalar(
            select(OutboxEvent.id).where(OutboxEvent.topic == "conversation.opened")
        )
    assert opened is not None
    env = worker_env(
        OMNIHUB_DATABASE_URL=db_url,
        OMNIHUB_SECRET_KEY="x" * 32,
        OMNIHUB_LOG_FORMAT="text",
        OMNIHUB_WORKER_POLL_SECONDS="0.2",
        OMNIHUB_DATA_DIR=str(tmp_path / "var"),
    )
    logs: list[IO[bytes]] = []
    workers: list[subprocess.Popen[bytes]] = []
    try:
        async with db.transaction() as session:
            # The conversation's row held here: the first worker claims the event and
            # then waits in the middle of routing it.
            await session.execute(
                select(Conversation.id).where(Conversation.id == conversation_id).with_for_update()
            )
            logs, first = start_workers(env, tmp_path, count=1)
            workers += first
            deadline = time.monotonic() + 90
            while (await _claimed(db, opened))[0] == 0:
                assert time.monotonic() < deadline, "the first worker claimed nothing"
                await asyncio.sleep(0.1)
            _attempts, leased_until, _status = await _claimed(db, opened)
            assert leased_until is not None

            (tmp_path / "second").mkdir()
            second_logs, second = start_workers(env, tmp_path / "second", count=1)
            logs += second_logs
            workers += second
            while "outbox worker started" not in (tmp_path / "second/worker0.log").read_text():
                assert time.monotonic() < deadline, "the second worker did not start"
                await asyncio.sleep(0.1)
            # Longer than a lease: the heartbeat keeps it, the second worker leaves it.
            await asyncio.sleep(8)
            attempts, renewed_until, status = await _claimed(db, opened)
            assert (attempts, status) == (1, OutboxStatus.PENDING)
            assert renewed_until is not None and renewed_until > leased_until + timedelta(seconds=1)

            first[0].kill()  # SIGKILL: no clean stop, the lease is left as it was
            first[0].wait()
            killed_at = time.monotonic()
        while (await _claimed(db, opened))[2] != OutboxStatus.DONE:
            assert time.monotonic() - killed_at < 10, "the event was not taken over in 10 s"
            await asyncio.sleep(0.05)
        taken_over = time.monotonic() - killed_at
    finally:
        stop_workers(workers, logs)
    attempts, _until, _status = await _claimed(db, opened)
    assert attempts == 2
    assert taken_over < 10
    async with db.read() as session:
        conversation = await session.get(Conversation, conversation_id)
    assert conversation is not None and conversation.routing_state == RoutingState.ASSIGNED
