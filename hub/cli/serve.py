"""`omnihub serve` (the HTTP server) and `omnihub worker` (the background services)."""

from __future__ import annotations

import asyncio
import signal

import click

from hub.cli.base import load_settings, run
from hub.logs import configure_logging


@click.command()
@click.option("--host", default=None, help="Interface to listen on [OMNIHUB_HOST, 127.0.0.1]")
@click.option("--port", type=int, default=None, help="Port [OMNIHUB_PORT, 8000]")
@click.option(
    "--worker/--no-worker",
    default=None,
    help="Run the outbox worker in this process [OMNIHUB_RUN_WORKER, on]",
)
def serve(host: str | None, port: int | None, worker: bool | None) -> None:
    """Start the hub's HTTP server (and, by default, its worker loop)."""
    import uvicorn

    from hub.app import create_app
    from hub.serving import server_config

    settings = load_settings()
    if worker is not None:
        settings.run_worker = worker
    configure_logging(settings.log_level, settings.log_format)
    config = server_config(
        create_app(settings), settings, host or settings.host, port or settings.port
    )
    uvicorn.Server(config).run()


@click.command()
def worker() -> None:
    """Run the outbox worker, outbound delivery and mailbox pollers (any number side by side)."""
    from hub.context import build_context, close_context
    from hub.worker import background_services, run_services

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)

    async def services() -> None:
        context = await build_context(settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await run_services(background_services(context, settings), stop)
        finally:
            await close_context(context)

    run(services)
