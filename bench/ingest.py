"""Form-ingest benchmark: the hub's `POST /forms/default` against a bare FastAPI endpoint.

For each storage backend and each process count the hub runs as `omnihub serve --workers N`
(N answering processes, the outbox worker in its own; 0: one process with the worker inside)
on a fresh database and takes the same closed-loop load as the bare app (`bench/bare_app.py`:
same framework, same validation, no storage). The bare app is measured before and after every
hub run (bare, hub, bare, hub, bare), and each hub run is compared with the mean of the two
bare runs around it, so a machine that slows down or speeds up during the run moves both
sides. Each hub run is also measured until its outbox backlog is empty: the sustained rate,
answered and routed (bench/sustained.py).

    python -m bench.ingest [--duration 15] [--concurrency 64] [--backends sqlite,postgresql]
                           [--workers 1,2]

Exits non-zero only when the harness fails (a server does not start, a database cannot be
made); a missed target is printed, not an exit status.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from bench.load import CLIENTS, FORM_PATH, LoadResult, Submissions
from bench.sustained import HarnessError, Sustained, measure_load, seed_staff, sqlite_url

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
BACKENDS = ("sqlite", "postgresql")
TARGET_RATIO = 0.5
TARGET_P99_MS = 100.0
TARGET_SUSTAINED_RATIO = 0.35
TARGET_CONCURRENCY = 64
NOISY_SPREAD = 15.0  # percent between the fastest and the slowest bare run
SECRET_KEY = "bench-secret-key-0123456789abcdef"
HUB_CMD = "{omnihub} serve --host {host} --port {port}"
WORKERS = (1, 2)  # `serve --workers N`: N answering processes beside one outbox worker process
HUB_UPGRADE_CMD = "{omnihub} db upgrade"
BARE_CMD = (
    "{python} -m uvicorn bench.bare_app:app --host {host} --port {port}"
    " --no-access-log --log-level warning"
)


def _omnihub() -> str:
    beside = Path(sys.executable).parent / "omnihub"
    if beside.exists():
        return str(beside)
    return shutil.which("omnihub") or str(ROOT / ".venv" / "bin" / "omnihub")


def _command(template: str, port: int = 0) -> list[str]:
    values = {"python": sys.executable, "omnihub": _omnihub(), "host": HOST, "port": port}
    return [part.format(**values) for part in shlex.split(template)]


def hub_command(template: str, workers: int) -> str:
    """The hub's command for `workers` answering processes; 0 is one process with the worker
    inside (`serve` without `--workers`)."""
    return f"{template} --workers {workers}" if workers else template


def workers_label(workers: int) -> str:
    return f"{workers} proc" if workers else "in-proc"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join("    | " + line for line in text[-lines:])


# Servers ------------------------------------------------------------------------------------


@dataclass
class Server:
    """A server subprocess on a free loopback port, logging to a file."""

    label: str
    template: str
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self, timeout: float) -> None:
        self.port = _free_port()
        argv = _command(self.template, self.port)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(  # own session: stopping it reaches its children
                argv,
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise HarnessError(
                        f"{self.label} exited with status {self.proc.returncode} before it was "
                        f"ready: {shlex.join(argv)}\n{_tail(self.log)}"
                    )
                try:
                    response = client.get(self.url + "/readyz")
                    if response.status_code == 200:
                        return
                    last = f"GET /readyz answered {response.status_code}"
                except httpx.HTTPError as exc:
                    last = f"{type(exc).__name__}: {exc}"
                time.sleep(0.1)
        self.stop()
        raise HarnessError(
            f"{self.label} was not ready after {timeout:.0f} s ({last}): {shlex.join(argv)}\n"
            f"{_tail(self.log)}"
        )

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT)  # uvicorn's graceful shutdown
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # the group of the process we started
            proc.wait()


def _clean_env() -> dict[str, str]:
    """This process's environment without OMNIHUB_* settings, so only ours apply."""
    return {k: v for k, v in os.environ.items() if not k.startswith("OMNIHUB_")}


def _hub_env(data_dir: Path, database_url: str | None) -> dict[str, str]:
    env = _clean_env()
    env.update(
        OMNIHUB_DATA_DIR=str(data_dir),
        OMNIHUB_FORMS_RATE_LIMIT="0",
        OMNIHUB_LOG_LEVEL="warning",
        OMNIHUB_ACCESS_LOG="0",
    )
    if database_url:
        env.update(OMNIHUB_DATABASE_URL=database_url, OMNIHUB_SECRET_KEY=SECRET_KEY)
    return env


@contextlib.contextmanager
def private_redis(workdir: Path, timeout: float = 30.0) -> Iterator[str]:
    """A redis-server of the benchmark's own on a free loopback port, nothing saved; yields
    its URL. Several serving processes share live updates through Redis; a private one
    keeps the benchmark's events away from anything else using the machine's Redis."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise HarnessError("redis-server is not installed: --workers needs Redis")
    port = _free_port()
    argv = [binary, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no"]
    log = workdir / "redis.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, cwd=workdir, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(OSError), socket.create_connection((HOST, port), 1) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(64).startswith(b"+PONG"):
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise HarnessError(f"redis-server did not start: {shlex.join(argv)}\n{_tail(log)}")
            time.sleep(0.1)
        yield f"redis://{HOST}:{port}/0"
    finally:
        proc.terminate()
        proc.wait()


# PostgreSQL ---------------------------------------------------------------------------------


async def _pg_execute(admin_url: str, statement: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(admin_url, timeout=5)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def postgres_unreachable(admin_url: str) -> str | None:
    """Why PostgreSQL cannot be used, or None when it answers."""
    try:
        asyncio.run(_pg_execute(admin_url, "SELECT 1"))
    except Exception as exc:  # any failure here means: skip the backend
        return f"{type(exc).__name__}: {exc}"
    return None


@contextlib.contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """A fresh database for one hub run; yields its SQLAlchemy URL, drops it afterwards."""
    name = f"omnihub_bench_{secrets.token_hex(4)}"
    try:
        asyncio.run(_pg_execute(admin_url, f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        raise HarnessError(f"cannot create database {name}: {exc}") from exc
    parts = urlsplit(admin_url)
    try:
        yield urlunsplit(("postgresql+asyncpg", parts.netloc, "/" + name, parts.query, ""))
    finally:
        try:
            asyncio.run(_pg_execute(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        except Exception as exc:
            print(f"warning: could not drop database {name}: {exc}", file=sys.stderr)


# Measuring ----------------------------------------------------------------------------------


@dataclass
class Measurement:
    backend: str  # "-" for the bare app
    target: str  # "bare" or "hub"
    result: LoadResult
    problems: list[str] = field(default_factory=list)  # what the sanity check found
    sustained: Sustained | None = None  # the hub's whole job; None for the bare app
    workers: int = 0  # `serve --workers N`; 0: one process with the worker inside
    stored: int | None = None  # messages in the hub's database after the run, where counted

    @property
    def sustained_rps(self) -> float:
        """Answered and routed per second; the bare app routes nothing."""
        return self.sustained.rate if self.sustained else self.result.rps


def sanity_check(server: Server, submissions: Submissions) -> list[str]:
    """Two submissions through the server: both 201 with ids, two different contacts."""
    problems: list[str] = []
    contacts = set()
    with httpx.Client(base_url=server.url, timeout=30.0) as client:
        for _ in range(2):
            response = client.post(
                FORM_PATH,
                content=submissions.next_body(),
                headers={"Content-Type": "application/json"},
            )
            if response.status_code != 201:
                problems.append(
                    f"POST {FORM_PATH} answered {response.status_code}: {response.text[:300]}"
                )
                continue
            try:
                body = response.json()
                ids = [body[k] for k in ("lead_id", "conversation_id", "contact_id")]
            except (ValueError, KeyError, TypeError):
                problems.append(f"unexpected 201 body: {response.text[:300]}")
                continue
            if not all(isinstance(v, int) for v in ids):
                problems.append(f"ids are not integers: {body}")
            contacts.add(body["contact_id"])
    if not problems and len(contacts) != 2:
        problems.append("two different people were filed under one contact")
    return problems


def measure(
    server: Server,
    backend: str,
    target: str,
    args: argparse.Namespace,
    submissions: Submissions,
    database_url: str | None = None,
    workers: int = 0,
) -> Measurement:
    """One closed-loop run; against a hub (`database_url`) also until its backlog is empty."""
    where = "bare app" if target == "bare" else f"hub on {backend}, {workers_label(workers)}"
    result, sustained = measure_load(
        server.url,
        where,
        database_url,
        concurrency=args.concurrency,
        duration=args.duration,
        warmup=args.warmup,
        client=args.client,
        bodies=submissions.next_body,
    )
    return Measurement(backend, target, result, sustained=sustained, workers=workers)


# Reporting ----------------------------------------------------------------------------------


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def report(
    bares: list[Measurement], hubs: list[tuple[Measurement, list[Measurement]]], concurrency: int
) -> list[dict[str, Any]]:
    header = (
        f"{'backend':11} {'target':8} {'requests/s':>11} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'errors':>7} {'hub/bare':>9} {'sustained/s':>12} {'sust/bare':>10}"
    )
    print()
    print(
        f"form ingest, {concurrency} concurrent keep-alive connections, "
        f"{bares[0].result.client} client; sustained: answered and routed, until the "
        "backlog is empty"
    )
    print(header)
    print("-" * len(header))
    rows: list[dict[str, Any]] = []
    for hub, around in hubs:
        base = {
            "rps": _mean([m.result.rps for m in around]),
            "p50": _mean([m.result.p50_ms for m in around]),
            "p99": _mean([m.result.p99_ms for m in around]),
            "errors": sum(m.result.errors for m in around),
        }
        h = hub.result
        ratio = h.rps / base["rps"] if base["rps"] else 0.0
        sustained_ratio = hub.sustained_rps / base["rps"] if base["rps"] else 0.0
        print(
            f"{hub.backend:11} {'bare':8} {base['rps']:11.1f} {base['p50']:8.2f} "
            f"{base['p99']:8.2f} {base['errors']:7d} {'':>9} {base['rps']:12.1f}"
        )
        print(
            f"{hub.backend:11} {workers_label(hub.workers):8} {h.rps:11.1f} {h.p50_ms:8.2f} "
            f"{h.p99_ms:8.2f} {h.errors:7d} {ratio:9.2f} {hub.sustained_rps:12.1f} "
            f"{sustained_ratio:10.2f}"
        )
        rows.append(
            {
                "backend": hub.backend,
                "workers": hub.workers,
                "bare": base,
                "hub": h.summary(),
                "ratio": ratio,
                "sustained": hub.sustained.summary() if hub.sustained else None,
                "sustained_ratio": sustained_ratio,
                "problems": hub.problems,
            }
        )
    runs = [m.result.rps for m in bares]
    spread = (max(runs) - min(runs)) / _mean(runs) * 100 if runs and _mean(runs) else 0.0
    print(
        f"bare runs in order: {', '.join(f'{r:.0f}' for r in runs)} requests/s "
        f"(spread {spread:.1f}%; each hub row is compared with the two runs around it)"
    )
    if spread > NOISY_SPREAD:
        print(
            f"note: the bare runs differ by more than {NOISY_SPREAD:.0f}%: something else was "
            "using the CPUs; rerun on a quiet machine before quoting the figures"
        )
    print()
    for row in rows:
        print(verdict(row, concurrency))
    return rows


def verdict(row: dict[str, Any], concurrency: int) -> str:
    hub = row["hub"]
    p99 = hub["p99_ms"]  # None when nothing succeeded
    p99_text = "-" if p99 is None else f"{p99:.1f}"
    sustained = row["sustained_ratio"]
    checks = [
        (row["ratio"] >= TARGET_RATIO, f"hub/bare {row['ratio']:.0%} (>= {TARGET_RATIO:.0%})"),
        (p99 is not None and p99 <= TARGET_P99_MS, f"p99 {p99_text} ms (<= {TARGET_P99_MS:.0f})"),
        (
            sustained >= TARGET_SUSTAINED_RATIO,
            f"sustained/bare {sustained:.0%} (>= {TARGET_SUSTAINED_RATIO:.0%})",
        ),
        (hub["errors"] == 0, f"errors {hub['errors']} (= 0)"),
    ]
    if row["sustained"] and row["sustained"]["parked"]:
        checks.append((False, f"{row['sustained']['parked']} events parked"))
    if row["problems"]:
        checks.append((False, "answers as specified"))
    met = all(ok for ok, _ in checks)
    parts = "; ".join(f"{text} {'ok' if ok else 'MISSED'}" for ok, text in checks)
    scope = "target" if row["backend"] == "sqlite" else "for information, target is on sqlite"
    note = ""
    if concurrency != TARGET_CONCURRENCY:
        note = f" [measured at {concurrency} clients; the target is set at {TARGET_CONCURRENCY}]"
    label = f"{row['backend']}, {workers_label(row['workers'])}"
    return f"verdict {label} ({scope}): {'MET' if met else 'NOT MET'}: {parts}{note}"


# Main ---------------------------------------------------------------------------------------


def run(args: argparse.Namespace, workdir: Path) -> tuple[int, list[dict[str, Any]]]:
    submissions = Submissions()
    submissions.check()
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
        bares.append(measure(bare, "-", "bare", args, submissions))
        for backend in args.backends:
            if backend == "postgresql":
                reason = postgres_unreachable(args.pg_url)
                if reason:
                    print(f"  skipping postgresql: {reason}", flush=True)
                    continue
            for workers in args.workers:
                try:
                    hub = measure_hub(backend, workers, args, workdir, submissions)
                except HarnessError as exc:
                    print(f"\nharness failure on {backend}: {exc}", file=sys.stderr, flush=True)
                    status = 2
                    continue
                bares.append(measure(bare, "-", "bare", args, submissions))
                hubs.append((hub, bares[-2:]))
    finally:
        bare.stop()
    rows = report(bares, hubs, args.concurrency) if hubs else []
    return status, rows


def migrate(
    env: dict[str, str], log: Path, timeout: float, template: str = HUB_UPGRADE_CMD
) -> None:
    """`omnihub db upgrade` on the hub's database."""
    argv = _command(template)
    with log.open("ab") as out:
        done = subprocess.run(
            argv,
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            timeout=timeout,
            check=False,
        )
    if done.returncode != 0:
        raise HarnessError(f"{shlex.join(argv)} exited with {done.returncode}\n{_tail(log)}")


def measure_hub(
    backend: str,
    workers: int,
    args: argparse.Namespace,
    workdir: Path,
    submissions: Submissions,
) -> Measurement:
    data_dir = Path(tempfile.mkdtemp(prefix=f"hub-{backend}-", dir=workdir))
    log = workdir / f"hub-{backend}-{workers}.log"
    with contextlib.ExitStack() as stack:
        database_url = None
        if backend == "postgresql":
            database_url = stack.enter_context(postgres_database(args.pg_url))
        env = _hub_env(data_dir, database_url)
        if workers:
            env["OMNIHUB_REDIS_URL"] = stack.enter_context(private_redis(workdir))
        if args.hub_upgrade_cmd:
            migrate(
                env, log, args.startup_timeout, args.hub_upgrade_cmd
            )  # before the first request, so the staff can be seeded
        hub = Server(f"hub ({backend})", hub_command(args.hub_cmd, workers), env, log)
        hub.start(args.startup_timeout)
        stack.callback(hub.stop)
        problems = sanity_check(hub, submissions)
        for problem in problems:
            print(f"  hub on {backend}: {problem}", flush=True)
        url = database_url or sqlite_url(data_dir)
        seed_staff(url)
        measurement = measure(hub, backend, "hub", args, submissions, url, workers)
    measurement.problems = problems
    return measurement


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ingest",
        description="Form-ingest throughput and latency of the hub against a bare FastAPI app.",
    )
    parser.add_argument(
        "--duration", type=float, default=15.0, help="measured seconds per run (default 15)"
    )
    parser.add_argument(
        "--warmup", type=float, default=3.0, help="unmeasured seconds before each run (default 3)"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=TARGET_CONCURRENCY,
        help="concurrent keep-alive connections (default 64)",
    )
    parser.add_argument(
        "--backends",
        default=",".join(BACKENDS),
        help="comma-separated: sqlite, postgresql (default both)",
    )
    parser.add_argument(
        "--client",
        choices=CLIENTS,
        default="raw",
        help="load client (default raw; httpx is slower than the servers)",
    )
    parser.add_argument(
        "--pg-url",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="an administrative PostgreSQL URL, used to create and drop the benchmark's database",
    )
    parser.add_argument(
        "--workers",
        default=",".join(str(n) for n in WORKERS),
        help="comma-separated answering processes of `omnihub serve --workers N`, each beside "
        "one outbox worker process; 0 is one process with the worker inside (default 1,2)",
    )
    parser.add_argument("--startup-timeout", type=float, default=180.0)
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    parser.add_argument(
        "--keep-logs", action="store_true", help="keep the servers' logs and data directories"
    )
    # For testing the harness without the hub: run another server in the hub's place.
    parser.add_argument("--hub-cmd", default=HUB_CMD, help=argparse.SUPPRESS)
    parser.add_argument("--hub-upgrade-cmd", default=HUB_UPGRADE_CMD, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = set(args.backends) - set(BACKENDS)
    if unknown:
        parser.error(f"unknown backend(s): {', '.join(sorted(unknown))}")
    try:
        args.workers = [int(n) for n in args.workers.split(",") if n.strip()]
    except ValueError:
        parser.error(f"--workers takes numbers: {args.workers}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="omnihub-bench-"))
    try:
        status, rows = run(args, workdir)
    except HarnessError as exc:
        print(f"harness failure: {exc}", file=sys.stderr)
        status, rows = 2, []
    finally:
        if args.keep_logs:
            print(f"logs and data kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.json and rows:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=2, ensure_ascii=False) + "\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
