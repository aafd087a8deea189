"""Telephony benchmark: call events per second through the hub's webhook against a bare
FastAPI endpoint with the same payload.

For each storage backend the hub runs as `omnihub serve` on a fresh database with one
Generic CTI (Zammad-compatible) phone line, added with `omnihub channels add telephony`,
and takes the same closed-loop load as the bare app (`bench/bare_telephony.py`: same
framework and server, validates the same event, no storage). The order is bare, hub,
bare, hub, bare; each hub run is compared with the mean of the two bare runs around it.

The events: every call is a new caller; three calls in four are answered (newCall,
answer, hangup) and one in four is missed (newCall, hangup with cause cancel), which
opens a callback task. A call's events are spaced apart in the stream (its answer 97
events after its newCall, its hangup 97 after that), so they reach the hub in order
but never side by side, as a PBX sends them.

    python -m bench.telephony [--duration 10] [--concurrency 32] [--backends sqlite,postgresql]

Target: the hub at least 50% of the bare endpoint's events/s. Exits non-zero only when
the harness fails; a missed target is printed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

from bench.bare_telephony import TOKEN
from bench.ingest import (
    BACKENDS,
    HUB_CMD,
    HUB_UPGRADE_CMD,
    ROOT,
    HarnessError,
    Measurement,
    Server,
    _clean_env,
    _command,
    _hub_env,
    _tail,
    postgres_database,
    postgres_unreachable,
)
from bench.load import CLIENTS
from bench.sustained import measure_load, seed_staff, sqlite_url

TARGET_RATIO = 0.5
KEY = "bench"
PATH = f"/webhooks/telephony/{KEY}/{TOKEN}"
LAG = 97  # events between one call's newCall, answer and hangup
BARE_CMD = (
    "{python} -m uvicorn bench.bare_telephony:app --host {host} --port {port}"
    " --no-access-log --log-level warning"
)
ADD_LINE = ["channels", "add", "telephony", "--key", KEY, "--provider", "generic"]


class CallEvents:
    """Generic CTI events of many calls, interleaved: event t is call t's newCall, call
    (t - LAG)'s answer or call (t - 2 LAG)'s hangup, in turn."""

    def __init__(self, start: int = 1) -> None:
        self.start = start
        self.step = 0

    def number(self, call: int) -> str:
        return f"7912{call % 10_000_000:07d}"  # a Russian mobile, as PBXs send it

    def event(self, call: int, name: str) -> dict[str, Any]:
        missed = call % 4 == 3
        event: dict[str, Any] = {
            "event": name,
            "from": self.number(call),
            "to": "74951234567",
            "direction": "in",
            "callId": f"bench-{call}",
            "user": ["Анна Смирнова"],
        }
        if name == "answer":
            event["answeringNumber"] = "101"
        if name == "hangup":
            event["cause"] = "cancel" if missed else "normalClearing"
        return event

    def next_event(self) -> dict[str, Any]:
        while True:
            step, self.step = self.step, self.step + 1
            phase, index = step % 3, step // 3
            call = self.start + index - phase * LAG
            if call < self.start:
                continue
            if phase == 1 and call % 4 == 3:
                continue  # a missed call is never answered
            return self.event(call, ("newCall", "answer", "hangup")[phase])

    def next_body(self) -> bytes:
        return json.dumps(self.next_event(), ensure_ascii=False, separators=(",", ":")).encode()


def measure(
    server: Server,
    backend: str,
    target: str,
    args: argparse.Namespace,
    database_url: str | None = None,
) -> Measurement:
    """One closed-loop run; against a hub (`database_url`) also until its backlog is empty."""
    events = CallEvents(start=args.next_call)
    args.next_call += 10_000_000
    where = "bare endpoint" if target == "bare" else f"hub on {backend}"
    result, sustained = measure_load(
        server.url,
        where,
        database_url,
        unit="events/s",
        concurrency=args.concurrency,
        duration=args.duration,
        warmup=args.warmup,
        client=args.client,
        bodies=events.next_body,
        path=PATH,
    )
    return Measurement(backend, target, result, sustained=sustained)


def _cli(args: list[str], env: dict[str, str], log: Path, timeout: float) -> str:
    argv = _command("{omnihub}") + args
    done = subprocess.run(
        argv,
        cwd=ROOT,
        env=env,
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
        check=False,
        text=True,
    )
    with log.open("a") as out:
        out.write(done.stdout + done.stderr)
    if done.returncode != 0:
        raise HarnessError(f"omnihub {' '.join(args)} exited with {done.returncode}\n{_tail(log)}")
    return done.stdout


def sanity_check(server: Server, api_token: str) -> list[str]:
    """One answered and one missed call through the hub, read back from the journal."""
    problems: list[str] = []
    events = CallEvents(start=900_000_000)
    answered = [events.event(900_000_000, name) for name in ("newCall", "answer", "hangup")]
    missed = [events.event(900_000_003, name) for name in ("newCall", "hangup")]
    with httpx.Client(base_url=server.url, timeout=30.0) as client:
        for event in answered + missed:
            response = client.post(PATH, json=event)
            if (response.status_code, response.text) != (200, "{}"):
                problems.append(
                    f"{event['event']} answered {response.status_code}: {response.text}"
                )
        journal = client.get(
            "/api/v1/calls", headers={"Authorization": f"Bearer {api_token}"}
        ).json()
        states = sorted(call["state"] for call in journal.get("items", []))
        if states != ["completed", "missed"]:
            problems.append(f"the journal holds {states}, not one completed and one missed call")
        tasks = client.get("/api/v1/tasks", headers={"Authorization": f"Bearer {api_token}"})
        if len(tasks.json().get("items", [])) != 1:
            problems.append(f"expected one callback task, got {tasks.text[:300]}")
    return problems


def measure_hub(backend: str, args: argparse.Namespace, workdir: Path) -> Measurement:
    data_dir = Path(tempfile.mkdtemp(prefix=f"hub-{backend}-", dir=workdir))
    log = workdir / f"hub-{backend}.log"
    with contextlib.ExitStack() as stack:
        database_url = None
        if backend == "postgresql":
            database_url = stack.enter_context(postgres_database(args.pg_url))
        env = _hub_env(data_dir, database_url)
        if args.no_worker:
            env["OMNIHUB_RUN_WORKER"] = "0"
        if database_url:
            _cli(HUB_UPGRADE_CMD.split()[1:], env, log, args.startup_timeout)
        _cli([*ADD_LINE, "--token", TOKEN], env, log, args.startup_timeout)
        api_token = _cli(["tokens", "create", "--name", "bench"], env, log, 60).strip()
        hub = Server(f"hub ({backend})", HUB_CMD, env, log)
        hub.start(args.startup_timeout)
        stack.callback(hub.stop)
        for problem in sanity_check(hub, api_token):
            print(f"  hub on {backend}: {problem}", flush=True)
        url = database_url or sqlite_url(data_dir)
        seed_staff(url)
        return measure(hub, backend, "hub", args, url)
    raise AssertionError("unreachable")


def report(bares: list[Measurement], hubs: list[tuple[Measurement, list[Measurement]]]) -> None:
    print()
    print(f"call events through the webhook, {bares[0].result.concurrency} connections")
    header = (
        f"{'backend':11} {'target':6} {'events/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}"
        f" {'hub/bare':>9} {'sustained/s':>12} {'sust/bare':>10}"
    )
    print(header)
    print("-" * len(header))
    for hub, around in hubs:
        bare_rps = sum(m.result.rps for m in around) / len(around)
        bare_p50 = sum(m.result.p50_ms for m in around) / len(around)
        bare_p99 = sum(m.result.p99_ms for m in around) / len(around)
        errors = sum(m.result.errors for m in around)
        h = hub.result
        ratio = h.rps / bare_rps if bare_rps else 0.0
        sustained_ratio = hub.sustained_rps / bare_rps if bare_rps else 0.0
        print(
            f"{hub.backend:11} {'bare':6} {bare_rps:10.1f} {bare_p50:8.2f} {bare_p99:8.2f} "
            f"{errors:7d} {'':>9} {bare_rps:12.1f}"
        )
        print(
            f"{hub.backend:11} {'hub':6} {h.rps:10.1f} {h.p50_ms:8.2f} {h.p99_ms:8.2f} "
            f"{h.errors:7d} {ratio:9.2f} {hub.sustained_rps:12.1f} {sustained_ratio:10.2f}"
        )
        met = ratio >= TARGET_RATIO and h.errors == 0
        print(
            f"verdict {hub.backend}: {'MET' if met else 'NOT MET'}: hub/bare {ratio:.0%} "
            f"(target >= {TARGET_RATIO:.0%}), errors {h.errors}; "
            f"sustained/bare {sustained_ratio:.0%} (for information)"
        )
    runs = ", ".join(f"{m.result.rps:.0f}" for m in bares)
    print(f"bare runs in order: {runs} events/s")


def run(args: argparse.Namespace, workdir: Path) -> int:
    bare = Server("bare endpoint", BARE_CMD, _clean_env(), workdir / "bare.log")
    bare.start(args.startup_timeout)
    bares: list[Measurement] = []
    hubs: list[tuple[Measurement, list[Measurement]]] = []
    status = 0
    try:
        print(
            f"measuring {args.duration:g} s after {args.warmup:g} s warmup, "
            f"{args.concurrency} connections",
            flush=True,
        )
        bares.append(measure(bare, "-", "bare", args))
        for backend in args.backends:
            if backend == "postgresql":
                reason = postgres_unreachable(args.pg_url)
                if reason:
                    print(f"  skipping postgresql: {reason}", flush=True)
                    continue
            try:
                hub = measure_hub(backend, args, workdir)
            except HarnessError as exc:
                print(f"\nharness failure on {backend}: {exc}", file=sys.stderr, flush=True)
                status = 2
                continue
            bares.append(measure(bare, "-", "bare", args))
            hubs.append((hub, bares[-2:]))
    finally:
        bare.stop()
    if hubs:
        report(bares, hubs)
    return status


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.telephony",
        description="Call events/s through the hub's telephony webhook against a bare endpoint.",
    )
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--client", choices=CLIENTS, default="raw")
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--startup-timeout", type=float, default=60.0)
    parser.add_argument("--keep-logs", action="store_true")
    parser.add_argument(
        "--no-worker",
        action="store_true",
        help="serve without the in-process outbox worker (for a look at what it costs)",
    )
    args = parser.parse_args(argv)
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = set(args.backends) - set(BACKENDS)
    if unknown:
        parser.error(f"unknown backend(s): {', '.join(sorted(unknown))}")
    args.next_call = 1
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="omnihub-bench-telephony-"))
    try:
        status = run(args, workdir)
    except HarnessError as exc:
        print(f"harness failure: {exc}", file=sys.stderr)
        status = 2
    finally:
        if args.keep_logs:
            print(f"logs and data kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
