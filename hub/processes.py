"""`omnihub serve --workers N`: N answering processes and the outbox worker in its own.

One process of Python uses one core. With `--workers N` the command binds the listening
socket once and starts, as children in their own process group:

- N HTTP processes (`python -m hub.processes http --fd K`), each serving the same socket
  with the app's worker loop off: the kernel hands each new connection to one of them;
- one worker process (`python -m hub.processes worker`, what `omnihub worker` runs:
  outbox, delivery, pollers), unless `--no-worker`.

The parent only supervises. SIGTERM or SIGINT reaches it (Ctrl-C reaches only it: the
children are in their own group) and it passes SIGTERM on once, waits for each child's
graceful stop and kills what is left after `STOP_SECONDS`. A child that exits on its own
stops the others and the command exits non-zero: restarting is the service manager's
job (systemd, Docker), which sees the failure. A child whose parent is gone stops itself.

The processes share nothing in memory, so what must be shared goes through Redis (live
updates, the bots' dialogues, rate limits): several processes need `OMNIHUB_REDIS_URL`,
on SQLite too. SQLite's one writer is shared through the file's lock: each process
commits in turn. Before the children start, the parent builds the hub's context once, so
the embedded install's migrations and the default form are made before they race for it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from types import FrameType

from hub.logs import configure_logging
from hub.settings import Settings, SettingsError

log = logging.getLogger(__name__)

STOP_SECONDS = 30.0  # a child's graceful stop (open requests, the worker's batch)
ORPHAN_CHECK_SECONDS = 1.0


def check_workers(settings: Settings, workers: int) -> None:
    """Refuse a setup where several processes would each keep their own shared state."""
    if workers < 1:
        raise SettingsError("--workers takes a number of processes, 1 or more")
    if not settings.redis_url:
        raise SettingsError(
            "serving with --workers needs OMNIHUB_REDIS_URL: the processes share live "
            "updates, the bots' dialogues and rate limits through Redis"
        )


async def _prepare(settings: Settings) -> None:
    from hub.context import build_context, close_context

    await close_context(await build_context(settings))


def serve_processes(settings: Settings, host: str, port: int, workers: int) -> int:
    """Run N HTTP processes on one socket and, if `settings.run_worker`, the worker
    process, until SIGTERM or SIGINT; the exit status for the command."""
    check_workers(settings, workers)
    asyncio.run(_prepare(settings))
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, backlog=settings.backlog)
    fd = sock.fileno()
    roles = ["http"] * workers + (["worker"] if settings.run_worker else [])
    stopping = threading.Event()

    def stop(signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop)
    children: list[subprocess.Popen[bytes]] = []
    failed: str | None = None
    try:
        for role in roles:
            command = [sys.executable, "-m", "hub.processes", role]
            if role == "http":
                command += ["--fd", str(fd)]
            children.append(subprocess.Popen(command, pass_fds=(fd,), process_group=0))
        sock.close()  # the children hold it now
        log.info(
            "serving on http://%s:%d with %d HTTP processes%s",
            host,
            port,
            workers,
            " and a worker process" if settings.run_worker else "",
        )
        while failed is None and not stopping.wait(0.2):
            for role, child in zip(roles, children, strict=True):
                if child.poll() is not None:
                    failed = f"the {role} process {child.pid} exited with {child.returncode}"
                    log.error("%s; stopping the others", failed)
                    break
    finally:
        sock.close()
        _stop(children)
    return 1 if failed is not None else 0


def _stop(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_SECONDS
    for child in children:
        try:
            child.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("process %d did not stop in %.0f s; killing it", child.pid, STOP_SECONDS)
            child.kill()
            child.wait()


def _stop_when_orphaned() -> None:
    """SIGTERM to this process once its parent (the supervisor) is gone."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(ORPHAN_CHECK_SECONDS)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="orphan-watch", daemon=True).start()


def run_http(settings: Settings, fd: int) -> None:
    """One HTTP process on an inherited listening socket, without the worker loop."""
    import uvicorn

    from hub.app import create_app
    from hub.serving import server_config

    settings.run_worker = False
    sock = socket.socket(fileno=fd)
    config = server_config(create_app(settings), settings, settings.host, settings.port)
    uvicorn.Server(config).run(sockets=[sock])


async def worker_services(settings: Settings) -> None:
    """What `omnihub worker` runs: the outbox worker, outbound delivery and pollers, until
    SIGTERM or SIGINT."""
    from hub.context import build_context, close_context
    from hub.worker import background_services, run_services

    context = await build_context(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await run_services(background_services(context, settings), stop)
    finally:
        await close_context(context)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m hub.processes")
    parser.add_argument("role", choices=("http", "worker"))
    parser.add_argument("--fd", type=int, help="the listening socket (http)")
    args = parser.parse_args(argv)
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    _stop_when_orphaned()
    if args.role == "http":
        run_http(settings, args.fd)
    else:
        asyncio.run(worker_services(settings))


if __name__ == "__main__":
    main()
