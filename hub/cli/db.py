"""`omnihub db`: the database schema."""

from __future__ import annotations

import click

from hub.cli.base import load_settings, run


@click.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply migrations (the only way the schema changes)."""
    from storage.migrate import upgrade

    settings = load_settings()
    run(lambda: upgrade(settings.resolved_database_url, revision))
    click.echo(f"database at {revision}")
