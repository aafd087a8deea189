"""`omnihub serve` (the HTTP server) and `omnihub worker` (the background services)."""

from __future__ import annotations

import sys

import click

from hub.cli.base import load_settings, run
from hub.logs import configure_logging
from hub.settings import SettingsError


@click.command()
@click.option("--host", default=None, help="Interface to listen on [OMNIHUB_HOST, 127.0.0.1]")
@click.option("--port", type=int, default=None, help="Port [OMNIHUB_PORT, 8000]")
@click.option(
    "--worker/--no-worker",
    default=None,
    help="Run the outbox worker (in this process, or in its own with --workers) "
    "[OMNIHUB_RUN_WORKER, on]",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Answer in N processes on one socket, the outbox worker in a process of its own "
    "(needs OMNIHUB_REDIS_URL); without it: one process for everything",
)
def serve(host: str | None, port: int | None, worker: bool | None, workers: int | None) -> None:
    """Start the hub's HTTP server (and, by default, its worker loop)."""
    settings = load_settings()
    if worker is not None:
        settings.run_worker = worker
    configure_logging(settings.log_level, settings.log_format)
    host, port = host or settings.host, port or settings.port
    if workers is not None:
        from hub.processes import serve_processes

        try:
            status = serve_processes(settings, host, port, workers)
        except SettingsError as exc:
            raise click.ClickException(str(exc)) from exc
        sys.exit(status)

    import uvicorn

    from hub.app import create_app
    from hub.serving import server_config

    uvicorn.Server(server_config(create_app(settings), settings, host, port)).run()


@click.command()
def worker() -> None:
    """Run the outbox worker, outbound delivery and mailbox pollers (any number side by side)."""
    from hub.processes import worker_services

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    run(lambda: worker_services(settings))
