"""`omnihub tokens`: Bearer tokens for the REST API."""

from __future__ import annotations

import click

from hub.cli.base import in_transaction, load_settings, run


@click.group()
def tokens() -> None:
    """Bearer tokens for the REST API (ERP/1C integration, scripts)."""


@tokens.command("create")
@click.option("--name", required=True, help="What the token is for")
def tokens_create(name: str) -> None:
    """Create a token and print it once; only its hash is stored."""
    from intake.accounts import create_api_token

    settings = load_settings()
    token, record = run(lambda: in_transaction(settings, lambda s: create_api_token(s, name=name)))
    click.echo(token)
    click.echo(f"token {record.id} ({record.name}) created; it is shown only this once", err=True)
