"""`omnihub channels`: list, enable and disable channels of every kind; `channels add KIND`
and each kind's own commands live in one module per kind beside this one."""

from __future__ import annotations

from typing import Any

import click

from hub.cli.base import in_transaction, load_settings, run
from hub.cli.channels.email import add_email, channels_quarantine
from hub.cli.channels.telegram import add_telegram, channels_telegram
from hub.cli.channels.telephony import add_telephony
from hub.cli.channels.webform import add_webform


@click.group()
def channels() -> None:
    """Entry points: mailboxes, bots, web forms, phone lines."""


@channels.command("list")
@click.option("--kind", default=None, help="Only this kind (webform, email, telegram, telephony)")
def channels_list(kind: str | None) -> None:
    """List channels with their status."""
    from storage.repositories import ChannelRepository

    settings = load_settings()

    async def work(session: Any) -> list[tuple[str, ...]]:
        from channels.email.admin import mailbox_status

        rows: list[tuple[str, ...]] = []
        for c in await ChannelRepository(session).list(kind):
            fetched = ""
            if c.kind == "email":
                state = await mailbox_status(session, c)
                fetched = "last fetch " + (
                    state.last_fetch_at.isoformat(timespec="seconds")
                    if state.last_fetch_at
                    else "never"
                )
                if state.open_quarantine:
                    fetched += f", {state.open_quarantine} quarantined"
                if state.duplicates:
                    fetched += f", {state.duplicates} repeats dropped"
            row = (
                c.kind,
                c.key,
                c.title,
                "active" if c.is_active else "inactive",
                c.status,
                c.last_error or "",
            )
            rows.append((*row, fetched) if fetched else row)
        return rows

    for row in run(lambda: in_transaction(settings, work)):
        click.echo("\t".join(row))


@channels.command("enable")
@click.argument("key")
def channels_enable(key: str) -> None:
    """Enable a channel; a mailbox or polling bot is polled again at once."""
    _set_active(key, True)


@channels.command("disable")
@click.argument("key")
def channels_disable(key: str) -> None:
    """Disable a channel: not polled, takes nothing in; its settings are kept."""
    _set_active(key, False)


def _set_active(key: str, active: bool) -> None:
    from storage.repositories import ChannelRepository

    settings = load_settings()

    async def work(session: Any) -> None:
        repo = ChannelRepository(session)
        channel = await repo.get_by_key(key)
        if channel is None:
            raise click.ClickException(f"no channel {key!r}")
        await repo.set_active(channel, active)

    run(lambda: in_transaction(settings, work))
    click.echo(f"channel {key} {'enabled' if active else 'disabled'}")


@channels.group("add")
def channels_add() -> None:
    """Add a channel of one kind."""


for add_kind in (add_webform, add_email, add_telephony, add_telegram):
    channels_add.add_command(add_kind)
channels.add_command(channels_telegram)
channels.add_command(channels_quarantine)
