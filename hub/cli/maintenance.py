"""`omnihub maintenance`: what the workers do on a timer, run once by hand."""

from __future__ import annotations

from typing import Any

import click

from hub.cli.base import load_settings, run, with_database


@click.group()
def maintenance() -> None:
    """Housekeeping the workers also do on their own."""


@maintenance.command("prune")
def maintenance_prune() -> None:
    """Delete rows past their retention (OMNIHUB_RETENTION_*_DAYS) once; print the counts."""
    from hub.maintenance import prune_once

    settings = load_settings()

    async def work(database: Any) -> dict[str, int]:
        return await prune_once(database, settings)

    for table, deleted in run(lambda: with_database(settings, work)).items():
        click.echo(f"{table}\t{deleted}")
