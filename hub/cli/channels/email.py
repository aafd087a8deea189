"""`omnihub channels add email` (a mailbox) and `omnihub channels quarantine` (the email
that could not be taken in)."""

from __future__ import annotations

from typing import Any

import click

from hub.cli.base import in_transaction, load_settings, run


@click.command("email")
@click.option("--key", required=True, help="The channel's key, e.g. support")
@click.option("--title", default=None, help="Shown to managers; defaults to the address")
@click.option("--imap-host", required=True)
@click.option("--imap-port", type=int, default=None, help="Default 993 (tls) or 143")
@click.option(
    "--imap-security",
    type=click.Choice(["tls", "starttls", "plain"]),
    default="tls",
    show_default=True,
)
@click.option("--imap-user", required=True)
@click.option(
    "--imap-password",
    envvar="OMNIHUB_IMAP_PASSWORD",
    prompt=True,
    hide_input=True,
    help="Or OMNIHUB_IMAP_PASSWORD; asked for when missing",
)
@click.option("--folder", default="INBOX", show_default=True)
@click.option(
    "--after-fetch",
    type=click.Choice(["seen", "move", "none"]),
    default="seen",
    show_default=True,
    help="Mark fetched mail seen, move it to --move-to, or leave it; never deleted",
)
@click.option("--move-to", default="omnihub", show_default=True)
@click.option("--smtp-host", required=True)
@click.option("--smtp-port", type=int, default=None, help="Default 465 (tls), 587 or 25")
@click.option(
    "--smtp-security",
    type=click.Choice(["tls", "starttls", "plain"]),
    default="tls",
    show_default=True,
)
@click.option("--smtp-user", default=None, help="Defaults to --imap-user")
@click.option(
    "--smtp-password",
    envvar="OMNIHUB_SMTP_PASSWORD",
    default=None,
    help="Or OMNIHUB_SMTP_PASSWORD; defaults to the IMAP password",
)
@click.option(
    "--smtp-login/--no-smtp-login",
    default=True,
    show_default=True,
    help="Log in to SMTP; --no-smtp-login for a relay that takes mail without a login",
)
@click.option("--from-address", required=True, help="The mailbox's address")
@click.option("--from-name", default="", help="Display name of replies")
@click.option("--acknowledge/--no-acknowledge", default=False, help="Confirm new requests")
@click.option("--language", type=click.Choice(["ru", "en"]), default="ru", show_default=True)
@click.option("--poll-seconds", type=float, default=60.0, show_default=True)
@click.option("--no-idle", is_flag=True, help="Poll even if the server offers IDLE")
def add_email(**options: Any) -> None:
    """Add a mailbox: IMAP for intake, SMTP for replies. Passwords are stored encrypted."""
    from pydantic import ValidationError

    from channels.email.admin import add_email_channel
    from channels.email.config import EmailChannelConfig, EmailSecrets
    from storage.crypto import SecretBox
    from storage.errors import HubError

    login = options["smtp_login"]
    if not login and (options["smtp_user"] or options["smtp_password"]):
        raise click.UsageError(
            "--smtp-user and --smtp-password need SMTP login, not --no-smtp-login"
        )
    imap_tls = options["imap_security"] == "tls"
    smtp_port = (
        options["smtp_port"] or {"tls": 465, "starttls": 587, "plain": 25}[options["smtp_security"]]
    )
    try:
        config = EmailChannelConfig.model_validate(
            {
                "imap": {
                    "host": options["imap_host"],
                    "port": options["imap_port"] or (993 if imap_tls else 143),
                    "security": options["imap_security"],
                    "user": options["imap_user"],
                    "folder": options["folder"],
                    "after_fetch": options["after_fetch"],
                    "move_to": options["move_to"],
                    "idle": not options["no_idle"],
                    "poll_seconds": options["poll_seconds"],
                },
                "smtp": {
                    "host": options["smtp_host"],
                    "port": smtp_port,
                    "security": options["smtp_security"],
                    "user": (options["smtp_user"] or options["imap_user"]) if login else None,
                },
                "from_address": options["from_address"],
                "from_name": options["from_name"],
                "acknowledge": options["acknowledge"],
                "language": options["language"],
            }
        )
    except ValidationError as exc:
        raise click.ClickException(f"invalid mailbox settings: {exc}") from exc
    secrets = EmailSecrets(
        imap_password=options["imap_password"],
        smtp_password=(options["smtp_password"] or options["imap_password"]) if login else None,
    )
    settings = load_settings()

    async def work(session: Any) -> None:
        try:
            await add_email_channel(
                session,
                SecretBox(settings.secret),
                key=options["key"],
                title=options["title"] or config.from_address,
                config=config,
                secrets=secrets,
            )
        except HubError as exc:
            raise click.ClickException(str(exc.detail)) from exc

    run(lambda: in_transaction(settings, work))
    click.echo(f"mailbox {options['key']} added: {config.from_address}")


@click.group("quarantine")
def channels_quarantine() -> None:
    """Email that could not be taken in, kept with its reason."""


@channels_quarantine.command("list")
@click.option("--key", default=None, help="Only this mailbox")
@click.option("--all", "show_all", is_flag=True, help="Also released ones")
def quarantine_list(key: str | None, show_all: bool) -> None:
    """List quarantined email: id, mailbox, when, sender, subject, reason."""
    from storage.email_repository import EmailRepository
    from storage.models import QuarantineStatus
    from storage.repositories import ChannelRepository

    settings = load_settings()

    async def work(session: Any) -> list[tuple[str, ...]]:
        channel_id = None
        keys = {c.id: c.key for c in await ChannelRepository(session).list("email")}
        if key is not None:
            channel_id = next((i for i, k in keys.items() if k == key), None)
            if channel_id is None:
                raise click.ClickException(f"no mailbox {key!r}")
        items = await EmailRepository(session).quarantined(
            channel_id, None if show_all else QuarantineStatus.OPEN
        )
        return [
            (
                str(i.id),
                keys.get(i.channel_id, "?"),
                i.created_at.isoformat(timespec="seconds"),
                i.status,
                i.sender or "",
                i.subject or "",
                i.reason,
            )
            for i in items
        ]

    for row in run(lambda: in_transaction(settings, work)):
        click.echo("\t".join(row))


@channels_quarantine.command("retry")
@click.argument("item_id", type=int)
def quarantine_retry(item_id: int) -> None:
    """Take a quarantined email in again."""
    from channels.email.admin import retry_quarantined
    from hub.context import build_context, close_context
    from storage.errors import HubError

    settings = load_settings()

    async def retry() -> str:
        context = await build_context(settings)
        try:
            taken = await retry_quarantined(context, item_id)
        except HubError as exc:
            raise click.ClickException(str(exc.detail)) from exc
        finally:
            await close_context(context)
        if taken.message_id is not None:
            return f"taken in: message {taken.message_id}, conversation {taken.conversation_id}"
        raise click.ClickException(f"still quarantined: {taken.reason}")

    click.echo(run(retry))
