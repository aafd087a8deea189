"""`omnihub managers`: the people who answer clients."""

from __future__ import annotations

import sys

import click

from hub.cli.base import in_transaction, load_settings, run


@click.group()
def managers() -> None:
    """People who answer clients."""


@managers.command("add")
@click.option("--email", required=True)
@click.option("--name", required=True)
@click.option(
    "--role", type=click.Choice(["admin", "manager"]), default="manager", show_default=True
)
@click.option(
    "--password", default=None, help="Asked for when omitted (and a terminal is attached)"
)
def managers_add(email: str, name: str, role: str, password: str | None) -> None:
    """Add a manager; the password is stored as an argon2 hash."""
    from intake.accounts import create_manager
    from storage.errors import HubError
    from storage.models import ManagerRole

    if password is None and sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    settings = load_settings()
    try:
        manager = run(
            lambda: in_transaction(
                settings,
                lambda s: create_manager(
                    s, email=email, name=name, role=ManagerRole(role), password=password
                ),
            )
        )
    except HubError as exc:
        raise click.ClickException(str(exc.detail)) from exc
    click.echo(f"manager {manager.id} <{manager.email}> added as {manager.role}")
