"""SSE fan-out benchmark: how long a new message takes to reach 200 open workspace tabs.

A real `omnihub serve` is started on a fresh database, once per setup:

- sqlite: embedded, as `make run` starts it (one process, the outbox worker inside, the
  in-process event bus);
- postgresql: `omnihub serve --workers 2` (two answering processes and the outbox worker in
  its own), the bus on a private Redis.

Several managers sign in through the sign-in page (one session each) and open `--streams`
live streams (`GET /inbox/stream`, inbox/web/stream.py) spread over them, so a stream is a
tab. Web-form posts (`POST /forms/default`) then arrive at a steady rate; each makes a
conversation whose `message.received` event every stream must pass on as a `change`.

The streams are read by their own process(es) (`--reader-procs`, lean protocol readers
that time each arrival when its bytes come in), apart from the process that posts and
samples the baseline, so the client's cost does not delay its own clock; the CPU each
spent, and the hub's, are printed with the figures. Per stream and post the latency is
measured from the message's `created_at` (written by the hub just before the ingest
commits, so slightly before the commit: the figure is an upper bound) to the moment the
`change` frame reaches a reader; the time from the post's 201 answer (taken by the posting
process; the clocks are the same wall clock) to the same frame is printed beside it. The baseline,
measured in the same run by the same event loop: a bare Redis pub/sub round trip
(publish, then receive on a subscribed connection), sampled during the load.

    python -m bench.fanout [--streams 200] [--managers 5] [--rate 5] [--duration 20]
                           [--backends sqlite,postgresql] [--reader-procs 1]

Target: p99 at most 250 ms and every expected event received. Exits non-zero only when the
harness fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import redis.asyncio as aioredis
from sqlalchemy import func, select

from bench.ingest import (
    HOST,
    HUB_CMD,
    Server,
    _command,
    _hub_env,
    hub_command,
    migrate,
    postgres_database,
    postgres_unreachable,
    private_redis,
)
from bench.sustained import HarnessError, sqlite_url
from inbox.sessions import SESSION_COOKIE
from storage.db import Database
from storage.models import Message

ROOT = Path(__file__).resolve().parent.parent
TARGET_P99_MS = 250.0
TOPIC = "message.received"
PASSWORD = "bench fan-out password 1"
SETTLE_SECONDS = 15.0


@dataclass
class Stream:
    """One open `/inbox/stream`: when each conversation's `message.received` arrived."""

    manager: int
    arrivals: dict[int, float] = field(default_factory=dict)
    changes: int = 0
    # Sequence numbers skipped (events the hub dropped for this stream).
    skipped: int = 0
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    error: str | None = None


@dataclass
class Run:
    setup: str
    streams: list[Stream]
    # conversation id -> wall time of the post's 201 answer
    answered: dict[int, float]
    # conversation id -> its first message's created_at (wall time)
    committed: dict[int, float]
    baseline_ms: list[float]
    post_ms: list[float]
    failed_posts: int
    cpu: Cpu
    # conversation id -> when its `message.received` was on the Redis bus (PostgreSQL only)
    bus_at: dict[int, float]


@dataclass
class Cpu:
    """CPU seconds spent while the posts ran and the events arrived (`wall` seconds)."""

    wall: float
    hub: float  # every process of the hub
    readers: list[float]  # each reader process
    driver: float  # this process: posts and the baseline


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(int(len(ordered) * q), len(ordered) - 1)]


class Reader(asyncio.Protocol):
    """One stream's connection, parsed as the bytes arrive (chunked HTTP/1.1, then SSE
    frames): with 200 streams in one process the client's own cost must stay small, and
    each arrival is timed when its bytes are handed over, before any parsing."""

    def __init__(self, request: bytes, stream: Stream, ended: asyncio.Future[None]) -> None:
        self.request = request
        self.stream = stream
        self.ended = ended
        self.transport: asyncio.Transport | None = None
        self.raw = b""
        self.head_done = False
        self.need = -1  # bytes of the current chunk still to come (with its CRLF); -1: a size line
        self.text = b""
        self.last_seq = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.stream.error is None:
            self.stream.error = f"the hub ended the stream ({exc})" if exc else "the hub ended it"
        self.stream.ready.set()
        if not self.ended.done():
            self.ended.set_result(None)

    def data_received(self, data: bytes) -> None:
        now = time.time()
        raw = self.raw + data
        if not self.head_done:
            end = raw.find(b"\r\n\r\n")
            if end < 0:
                self.raw = raw
                return
            head, raw = raw[:end], raw[end + 4 :]
            status = head.split(b"\r\n", 1)[0]
            if b" 200 " not in status + b" " or b"chunked" not in head.lower():
                self.stream.error = f"answered {status.decode(errors='replace')}"
                self.stream.ready.set()
                assert self.transport is not None
                self.transport.close()
                return
            self.head_done = True
        body = []
        while raw:
            if self.need < 0:
                line_end = raw.find(b"\r\n")
                if line_end < 0:
                    break
                size = int(raw[:line_end].split(b";")[0].strip() or b"0", 16)
                raw = raw[line_end + 2 :]
                if size == 0:
                    assert self.transport is not None
                    self.transport.close()
                    break
                self.need = size + 2
            piece, raw = raw[: self.need], raw[self.need :]
            self.need -= len(piece)
            body.append(piece)
            if self.need == 0:
                body[-1] = body[-1][:-2]
                self.need = -1
            elif self.need == 1:  # the chunk's data is in, only its trailing LF is not
                body[-1] = body[-1][:-1]
        self.raw = raw
        if body:
            self.frames(b"".join(body), now)

    def frames(self, data: bytes, now: float) -> None:
        text = self.text + data
        blocks = text.split(b"\n\n")
        self.text = blocks.pop()
        stream = self.stream
        for block in blocks:
            if b"event: change" in block:
                change = json.loads(block.rsplit(b"data: ", 1)[1])
                stream.changes += 1
                if change["seq"] != self.last_seq + 1:
                    stream.skipped += change["seq"] - self.last_seq - 1
                self.last_seq = change["seq"]
                if change["topic"] == TOPIC:
                    stream.arrivals.setdefault(change["conversation_id"], now)
            elif b"event: hello" in block:
                stream.ready.set()


async def listen(url: str, cookie: str, stream: Stream) -> None:
    """Hold one stream open until cancelled, recording every `change`."""
    parts = urlsplit(url)
    request = (
        f"GET /inbox/stream HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Accept: text/event-stream\r\nCookie: {SESSION_COOKIE}={cookie}\r\n\r\n"
    ).encode()
    loop = asyncio.get_running_loop()
    ended: asyncio.Future[None] = loop.create_future()
    try:
        transport, _ = await loop.create_connection(
            lambda: Reader(request, stream, ended), parts.hostname or HOST, parts.port or 80
        )
    except OSError as exc:
        stream.error = f"connect: {exc}"
        stream.ready.set()
        return
    try:
        await ended
    finally:
        transport.close()


async def sign_in(client: httpx.AsyncClient, url: str, email: str) -> str:
    response = await client.post(
        url + "/login",
        data={"email": email, "password": PASSWORD},
        headers={"Origin": url},
    )
    token = response.cookies.get(SESSION_COOKIE)
    if response.status_code != 303 or not token:
        raise HarnessError(f"sign-in of {email} answered {response.status_code}")
    return token


async def on_the_bus(redis_url: str, stop: asyncio.Event, seen: dict[int, float]) -> None:
    """When each conversation's `message.received` is published on the hub's Redis bus
    (the hub on PostgreSQL uses this Redis): what comes before the fan-out."""
    client = aioredis.Redis.from_url(redis_url)
    pubsub = client.pubsub()
    try:
        await pubsub.subscribe(TOPIC)
        while not stop.is_set():
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
            if message is not None:
                now = time.time()
                conversation_id = json.loads(message["data"]).get("conversation_id")
                if isinstance(conversation_id, int):
                    seen.setdefault(conversation_id, now)
    finally:
        await pubsub.aclose()
        await client.aclose()


async def baseline(redis_url: str, stop: asyncio.Event, samples: list[float]) -> None:
    """Redis pub/sub round trips, one every 50 ms, until `stop`."""
    client = aioredis.Redis.from_url(redis_url)
    pubsub = client.pubsub()
    try:
        await pubsub.subscribe("bench.fanout.baseline")
        await pubsub.get_message(timeout=1.0)  # the subscription's confirmation
        while not stop.is_set():
            started = time.perf_counter()
            await client.publish("bench.fanout.baseline", b"x")
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5.0)
                if message is not None:
                    break
            samples.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(0.05)
    finally:
        await pubsub.aclose()
        await client.aclose()


async def post_forms(
    url: str, rate: float, duration: float, answered: dict[int, float], post_ms: list[float]
) -> int:
    """Posts at `rate` per second for `duration` seconds; returns how many failed."""
    failed = 0
    count = max(int(rate * duration), 1)
    async with httpx.AsyncClient(timeout=30) as client:

        async def one(n: int) -> None:
            nonlocal failed
            started = time.perf_counter()
            try:
                response = await client.post(
                    url + "/forms/default",
                    json={
                        "name": f"Клиент {n}",
                        "email": f"fanout{n}@example.ru",
                        "message": f"Здравствуйте, хочу оформить заказ №{n}",
                        "consent": True,
                    },
                )
            except httpx.HTTPError:
                failed += 1
                return
            now = time.time()
            if response.status_code != 201:
                failed += 1
                return
            post_ms.append((time.perf_counter() - started) * 1000)
            answered[int(response.json()["conversation_id"])] = now

        began = time.perf_counter()
        posts = []
        for n in range(count):
            delay = began + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            posts.append(asyncio.ensure_future(one(n)))
        await asyncio.gather(*posts)
    return failed


async def committed_at(database_url: str, conversation_ids: list[int]) -> dict[int, float]:
    """Each conversation's first message's created_at, as wall-clock seconds."""
    db = Database(database_url, pool_size=1)
    try:
        async with db.read() as session:
            rows = await session.execute(
                select(Message.conversation_id, func.min(Message.created_at))
                .where(Message.conversation_id.in_(conversation_ids))
                .group_by(Message.conversation_id)
            )
            found: dict[int, float] = {}
            for conversation_id, created in rows.all():
                if isinstance(created, str):  # SQLite without the column type's processing
                    raise HarnessError("created_at came back as text")
                found[conversation_id] = created.timestamp()
            return found
    finally:
        await db.dispose()


@dataclass(frozen=True)
class Heard:
    """What one stream heard, as a reader process hands it back."""

    manager: int
    arrivals: dict[int, float]
    changes: int
    skipped: int
    error: str | None


async def _read_streams(
    conn: Connection, url: str, cookies: list[str], managers: list[int]
) -> None:
    """A reader process's loop: open the streams, say ready, then on "go" start timing its
    own CPU, on ("expect", n) wait (up to SETTLE_SECONDS) for n events on every stream and
    hand back what each heard and the CPU seconds spent."""
    loop = asyncio.get_running_loop()
    streams = [Stream(manager=m) for m in managers]
    listeners = [asyncio.ensure_future(listen(url, cookies[s.manager], s)) for s in streams]
    try:
        try:
            await asyncio.wait_for(asyncio.gather(*(s.ready.wait() for s in streams)), 60)
        except TimeoutError:
            conn.send(("failed", "not every stream said hello within 60 s"))
            return
        broken = [s.error for s in streams if s.error]
        conn.send(
            ("failed", f"{len(broken)} streams failed, first: {broken[0]}")
            if broken
            else ("ready", "")
        )
        if broken:
            return
        message = await loop.run_in_executor(None, conn.recv)
        assert message == "go", message
        cpu = time.process_time()
        began = time.perf_counter()
        _, expected = await loop.run_in_executor(None, conn.recv)
        deadline = time.monotonic() + SETTLE_SECONDS
        while time.monotonic() < deadline:
            if all(len(s.arrivals) >= expected for s in streams):
                break
            await asyncio.sleep(0.1)
        spent = time.process_time() - cpu
        wall = time.perf_counter() - began
        heard = [Heard(s.manager, s.arrivals, s.changes, s.skipped, s.error) for s in streams]
        conn.send(("heard", (heard, spent, wall)))
    finally:
        for listener in listeners:
            listener.cancel()
        await asyncio.gather(*listeners, return_exceptions=True)


def reader_process(conn: Connection, url: str, cookies: list[str], managers: list[int]) -> None:
    """Entry point of a reader process (spawned: a fresh interpreter)."""
    try:
        asyncio.run(_read_streams(conn, url, cookies, managers))
    finally:
        conn.close()


def _tree_cpu(root: int) -> float:
    """CPU seconds (user + system) of the hub's live processes: `root` and its descendants
    (`serve --workers` starts its processes in groups of their own)."""
    ticks = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    used: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # after the name: state ppid pgrp session ... utime (12th) stime (13th)
        fields = stat.rsplit(")", 1)[1].split()
        parents[int(entry.name)] = int(fields[1])
        used[int(entry.name)] = int(fields[11]) + int(fields[12])
    total = 0
    for pid, spent in used.items():
        ancestor = pid
        while ancestor > 1 and ancestor != root:
            ancestor = parents.get(ancestor, 0)
        if ancestor == root:
            total += spent
    return total / ticks


async def drive(
    setup: str,
    url: str,
    database_url: str,
    redis_url: str,
    args: argparse.Namespace,
    hub_pid: int,
    watch_bus: bool,
) -> Run:
    async with httpx.AsyncClient(timeout=30, follow_redirects=False) as client:
        cookies = [
            await sign_in(client, url, f"fanout{m}@bench.example.ru") for m in range(args.managers)
        ]
    loop = asyncio.get_running_loop()
    spawn = multiprocessing.get_context("spawn")
    procs = max(1, args.reader_procs)
    managers = [n % args.managers for n in range(args.streams)]
    readers: list[tuple[BaseProcess, Connection]] = []
    for k in range(procs):
        mine, theirs = spawn.Pipe()
        process = spawn.Process(
            target=reader_process, args=(theirs, url, cookies, managers[k::procs]), daemon=True
        )
        process.start()
        theirs.close()
        readers.append((process, mine))
    try:
        for _, conn in readers:
            kind, detail = await loop.run_in_executor(None, conn.recv)
            if kind != "ready":
                raise HarnessError(f"{setup}: {detail}")
        samples: list[float] = []
        stop_baseline = asyncio.Event()
        sampler = asyncio.ensure_future(baseline(redis_url, stop_baseline, samples))
        bus_at: dict[int, float] = {}
        watcher = None
        if watch_bus:
            watcher = asyncio.ensure_future(on_the_bus(redis_url, stop_baseline, bus_at))
            await asyncio.sleep(0.5)  # subscribed before the first post
        answered: dict[int, float] = {}
        post_ms: list[float] = []
        for _, conn in readers:
            conn.send("go")
        hub_cpu = _tree_cpu(hub_pid)
        own_cpu = time.process_time()
        began = time.perf_counter()
        failed = await post_forms(url, args.rate, args.duration, answered, post_ms)
        for _, conn in readers:
            conn.send(("expect", len(answered)))
        heard: list[Heard] = []
        reader_cpu: list[float] = []
        for _, conn in readers:
            kind, detail = await loop.run_in_executor(None, conn.recv)
            if kind != "heard":
                raise HarnessError(f"{setup}: {detail}")
            streams, spent, _wall = detail
            heard += streams
            reader_cpu.append(spent)
        wall = time.perf_counter() - began
        hub_cpu = _tree_cpu(hub_pid) - hub_cpu
        own_cpu = time.process_time() - own_cpu
        stop_baseline.set()
        await sampler
        if watcher is not None:
            await watcher
    finally:
        for reader, conn in readers:
            conn.close()
            reader.join(timeout=10)
            if reader.is_alive():
                reader.kill()
    streams_heard = [
        Stream(
            manager=h.manager,
            arrivals=h.arrivals,
            changes=h.changes,
            skipped=h.skipped,
            error=h.error,
        )
        for h in heard
    ]
    committed = await committed_at(database_url, list(answered))
    cpu = Cpu(wall, hub_cpu, reader_cpu, own_cpu)
    return Run(setup, streams_heard, answered, committed, samples, post_ms, failed, cpu, bus_at)


def add_managers(env: dict[str, str], log: Path, managers: int) -> None:
    for m in range(managers):
        argv = _command(
            "{omnihub} managers add --email "
            f"fanout{m}@bench.example.ru --name 'Менеджер {m}' "
            f"--role {'admin' if m == 0 else 'manager'} --password '{PASSWORD}'"
        )
        with log.open("ab") as out:
            done = subprocess.run(
                argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=120
            )
        if done.returncode != 0:
            raise HarnessError(f"managers add exited with {done.returncode}")


def measure(backend: str, args: argparse.Namespace, workdir: Path) -> Run:
    data_dir = Path(tempfile.mkdtemp(prefix=f"fanout-{backend}-", dir=workdir))
    log = workdir / f"hub-{backend}.log"
    with contextlib.ExitStack() as stack:
        database_url = None
        if backend == "postgresql":
            database_url = stack.enter_context(postgres_database(args.pg_url))
        env = _hub_env(data_dir, database_url)
        env["OMNIHUB_LOG_LEVEL"] = "warning"
        redis_url = stack.enter_context(private_redis(workdir))
        workers = 0
        if backend == "postgresql":
            env["OMNIHUB_REDIS_URL"] = redis_url
            workers = args.workers
        migrate(env, log, args.startup_timeout)
        add_managers(env, log, args.managers)
        setup = (
            "sqlite, one process (in-process bus)"
            if backend == "sqlite"
            else f"postgresql + redis, serve --workers {workers}"
        )
        hub = Server(f"hub ({backend})", hub_command(args.hub_cmd, workers), env, log)
        hub.start(args.startup_timeout)
        stack.callback(hub.stop)
        url = database_url or sqlite_url(data_dir)
        assert hub.proc is not None
        return asyncio.run(
            drive(setup, hub.url, url, redis_url, args, hub.proc.pid, backend == "postgresql")
        )


def report(run: Run) -> bool:
    expected = len(run.answered) * len(run.streams)
    from_commit: list[float] = []
    from_answer: list[float] = []
    for stream in run.streams:
        for conversation_id, arrived in stream.arrivals.items():
            if conversation_id in run.committed:
                from_commit.append((arrived - run.committed[conversation_id]) * 1000)
            if conversation_id in run.answered:
                from_answer.append((arrived - run.answered[conversation_id]) * 1000)
    # Per post: when its first stream heard it (what came before the fan-out: the worker's
    # pickup, the bus) and how long after that its last stream did (the fan-out itself).
    first_ms: list[float] = []
    spread_ms: list[float] = []
    bus_ms: list[float] = []
    bus_to_first_ms: list[float] = []
    for conversation_id, created in run.committed.items():
        heard = [s.arrivals[conversation_id] for s in run.streams if conversation_id in s.arrivals]
        if heard:
            first_ms.append((min(heard) - created) * 1000)
            spread_ms.append((max(heard) - min(heard)) * 1000)
        published = run.bus_at.get(conversation_id)
        if published is not None:
            bus_ms.append((published - created) * 1000)
            if heard:
                bus_to_first_ms.append((min(heard) - published) * 1000)
    received = len(from_answer)
    skipped = sum(stream.skipped for stream in run.streams)
    errors = [stream.error for stream in run.streams if stream.error]
    print(
        f"fan-out on {run.setup}: {len(run.streams)} streams, {len(run.answered)} posts "
        f"({run.failed_posts} failed)"
    )
    print(f"  {'':42s} {'p50 ms':>8s} {'p99 ms':>8s} {'max ms':>8s}")
    rows = [
        ("baseline: redis pub/sub round trip", run.baseline_ms),
        ("post answered (201)", run.post_ms),
        ("event at stream, from created_at", from_commit),
        ("event at stream, from the 201 answer", from_answer),
        ("per post: first stream, from created_at", first_ms),
        ("per post: last stream after the first", spread_ms),
    ]
    if bus_ms:
        rows += [
            ("per post: on the bus, from created_at", bus_ms),
            ("per post: first stream, from the bus", bus_to_first_ms),
        ]
    for name, values in rows:
        print(
            f"  {name:42s} {_percentile(values, 0.5):8.1f} {_percentile(values, 0.99):8.1f} "
            f"{max(values, default=float('nan')):8.1f}"
        )
    print(
        f"  events received: {received} of {expected} expected; sequence gaps: {skipped}; "
        f"streams ended early: {len(errors)}"
    )
    cpu = run.cpu
    busiest = max(cpu.readers, default=0.0) / cpu.wall if cpu.wall else float("nan")
    print(
        f"  CPU while posting and receiving ({cpu.wall:.1f} s): hub {cpu.hub:.1f} s "
        f"({cpu.hub / cpu.wall:.0%} of one core); stream readers "
        f"{sum(cpu.readers):.1f} s in {len(cpu.readers)} process(es), the busiest "
        f"{busiest:.0%} of one core; poster + baseline {cpu.driver:.1f} s"
    )
    if busiest > 0.8:
        print("  (a reader process was busy most of the time: the client may add delay)")
    p99 = _percentile(from_commit, 0.99)
    met = received == expected and skipped == 0 and not errors and p99 <= TARGET_P99_MS
    base = _percentile(run.baseline_ms, 0.99)
    print(
        f"verdict ({run.setup}): p99 {p99:.1f} ms (<= {TARGET_P99_MS:.0f}), "
        f"{p99 / base if base else float('nan'):.0f}x the baseline's p99, "
        f"mean {statistics.fmean(from_commit) if from_commit else float('nan'):.1f} ms: "
        f"{'met' if met else 'MISSED'}"
    )
    return met


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.fanout", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--managers", type=int, default=5)
    parser.add_argument("--rate", type=float, default=5.0, help="posts per second (default 5)")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of posting")
    parser.add_argument("--workers", type=int, default=2, help="serve --workers on PostgreSQL")
    parser.add_argument(
        "--reader-procs",
        type=int,
        default=1,
        help="processes reading the streams (default 1), apart from the one posting",
    )
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--startup-timeout", type=float, default=180.0)
    parser.add_argument("--keep-logs", action="store_true")
    # For profiling: run the hub another way (e.g. under cProfile), same placeholders.
    parser.add_argument("--hub-cmd", default=HUB_CMD, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    workdir = Path(tempfile.mkdtemp(prefix="omnihub-bench-fanout-"))
    try:
        for backend in backends:
            if backend == "postgresql":
                why = postgres_unreachable(args.pg_url)
                if why is not None:
                    print(f"fan-out on postgresql skipped: PostgreSQL unreachable ({why})")
                    continue
            report(measure(backend, args, workdir))
    except HarnessError as exc:
        print(f"fan-out benchmark failed: {exc}", file=sys.stderr)
        return 2
    finally:
        if args.keep_logs:
            print(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
