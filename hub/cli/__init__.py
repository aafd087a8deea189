"""The `omnihub` command: serve, worker, db, managers, tokens, channels."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from hub.logs import configure_logging
from hub.settings import Settings, SettingsError

T = TypeVar("T")


def _settings() -> Settings:
    try:
        settings = Settings()
        _ = settings.secret
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc
    return settings


def _run(factory: Callable[[], Awaitable[T]]) -> T:
    try:
        return asyncio.run(factory())  # type: ignore[arg-type]
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc
    except (ConnectionError, socket.gaierror) as exc:
        # The operator's most common mistake (server down, wrong host): one line, no traceback.
        raise click.ClickException(f"cannot connect: {exc}") from exc


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """omnihub: every client request from email, Telegram, web forms and calls in one place."""


@main.command()
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

    settings = _settings()
    if worker is not None:
        settings.run_worker = worker
    configure_logging(settings.log_level, settings.log_format)
    config = server_config(
        create_app(settings), settings, host or settings.host, port or settings.port
    )
    uvicorn.Server(config).run()


@main.command()
def worker() -> None:
    """Run the outbox worker, outbound delivery and mailbox pollers (any number side by side)."""
    from hub.context import build_context, close_context
    from hub.worker import background_services, run_services

    settings = _settings()
    configure_logging(settings.log_level, settings.log_format)

    async def run() -> None:
        context = await build_context(settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await run_services(background_services(context, settings), stop)
        finally:
            await close_context(context)

    _run(run)


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply migrations (the only way the schema changes)."""
    from storage.migrate import upgrade

    settings = _settings()
    _run(lambda: upgrade(settings.resolved_database_url, revision))
    click.echo(f"database at {revision}")


async def _in_transaction(settings: Settings, work: Callable[[Any], Awaitable[T]]) -> T:
    from storage.db import Database

    database = Database(settings.resolved_database_url, pool_size=1)
    try:
        if settings.embedded:
            from storage.migrate import upgrade

            await upgrade(settings.resolved_database_url)
        else:
            from storage.migrate import SchemaOutOfDate, check_current

            try:
                await check_current(settings.resolved_database_url)
            except SchemaOutOfDate as exc:
                raise click.ClickException(str(exc)) from exc
        async with database.transaction() as session:
            return await work(session)
    finally:
        await database.dispose()


@main.group()
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
    settings = _settings()
    try:
        manager = _run(
            lambda: _in_transaction(
                settings,
                lambda s: create_manager(
                    s, email=email, name=name, role=ManagerRole(role), password=password
                ),
            )
        )
    except HubError as exc:
        raise click.ClickException(str(exc.detail)) from exc
    click.echo(f"manager {manager.id} <{manager.email}> added as {manager.role}")


@main.group()
def tokens() -> None:
    """Bearer tokens for the REST API (ERP/1C integration, scripts)."""


@tokens.command("create")
@click.option("--name", required=True, help="What the token is for")
def tokens_create(name: str) -> None:
    """Create a token and print it once; only its hash is stored."""
    from intake.accounts import create_api_token

    settings = _settings()
    token, record = _run(
        lambda: _in_transaction(settings, lambda s: create_api_token(s, name=name))
    )
    click.echo(token)
    click.echo(f"token {record.id} ({record.name}) created; it is shown only this once", err=True)


@main.group()
def channels() -> None:
    """Entry points: mailboxes, bots, web forms, phone lines."""


@channels.command("list")
@click.option("--kind", default=None, help="Only this kind (webform, email, telegram, telephony)")
def channels_list(kind: str | None) -> None:
    """List channels with their status."""
    from storage.repositories import ChannelRepository

    settings = _settings()

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

    for row in _run(lambda: _in_transaction(settings, work)):
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

    settings = _settings()

    async def work(session: Any) -> None:
        repo = ChannelRepository(session)
        channel = await repo.get_by_key(key)
        if channel is None:
            raise click.ClickException(f"no channel {key!r}")
        await repo.set_active(channel, active)

    _run(lambda: _in_transaction(settings, work))
    click.echo(f"channel {key} {'enabled' if active else 'disabled'}")


@channels.group("add")
def channels_add() -> None:
    """Add a channel of one kind."""


@channels_add.command("webform")
@click.option("--key", required=True, help="Used in the URL: /forms/KEY")
@click.option("--title", required=True, help="Shown on the page (both languages unless --config)")
@click.option("--language", type=click.Choice(["ru", "en"]), default="ru", show_default=True)
@click.option(
    "--allowed-origin",
    "allowed_origins",
    multiple=True,
    help="A site that may post or embed the form, e.g. https://shop.example.ru",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A JSON form configuration (fields, texts, limits)",
)
@click.option(
    "--consent/--no-consent",
    default=None,
    help="A required box: consent to process personal data (default: on for --language ru)",
)
@click.option("--privacy-policy", default=None, help="The privacy policy's URL, linked by the box")
def channels_add_webform(
    key: str,
    title: str,
    language: str,
    allowed_origins: tuple[str, ...],
    config_file: Path | None,
    consent: bool | None,
    privacy_policy: str | None,
) -> None:
    """Add a web form; without --config it has the default form's fields."""
    from pydantic import ValidationError

    from channels.base import CHANNEL_KEY
    from channels.webform.schemas import (
        ConsentConfig,
        FormConfig,
        LocalizedText,
        default_form_config,
    )
    from storage.models import ChannelKind
    from storage.repositories import ChannelRepository

    if not CHANNEL_KEY.match(key):
        raise click.ClickException("the key must be lowercase letters, digits, - or _")
    try:
        if config_file is not None:
            config = FormConfig.model_validate(json.loads(config_file.read_text("utf-8")))
        else:
            config = default_form_config()
            config.title = LocalizedText(ru=title, en=title)
    except (ValidationError, ValueError) as exc:
        raise click.ClickException(f"invalid form configuration: {exc}") from exc
    config.language = language  # type: ignore[assignment]
    if allowed_origins:
        config.allowed_origins = list(allowed_origins)
    # Russian law (152-FZ) wants a form collecting personal data to ask for consent.
    changes: dict[str, Any] = {}
    if consent is not None or config_file is None:
        changes["required"] = consent if consent is not None else language == "ru"
    if privacy_policy is not None:
        changes["policy_url"] = privacy_policy
    try:
        config.consent = ConsentConfig.model_validate({**config.consent.model_dump(), **changes})
    except ValidationError as exc:
        raise click.ClickException(f"invalid consent settings: {exc}") from exc
    settings = _settings()

    async def work(session: Any) -> None:
        repo = ChannelRepository(session)
        if await repo.get_by_key(key) is not None:
            raise click.ClickException(f"a channel with key {key!r} exists")
        await repo.add(
            key=key, kind=ChannelKind.WEBFORM, title=title, config=config.model_dump(mode="json")
        )

    _run(lambda: _in_transaction(settings, work))
    click.echo(f"web form {key} added: /forms/{key}")
    if config.consent.required and not config.consent.policy_url:
        click.echo("warning: the consent box links no policy; add --privacy-policy URL", err=True)


@channels_add.command("email")
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
def channels_add_email(**options: Any) -> None:
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
    settings = _settings()

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

    _run(lambda: _in_transaction(settings, work))
    click.echo(f"mailbox {options['key']} added: {config.from_address}")


@channels_add.command("telephony")
@click.option("--key", required=True, help="Used in the webhook URL: /webhooks/telephony/KEY")
@click.option(
    "--provider", required=True, type=click.Choice(["generic", "twilio", "zadarma", "mango"])
)
@click.option("--title", default=None, help="Shown to managers; defaults to the key")
@click.option("--token", default=None, help="generic: the URL token (made up when omitted)")
@click.option(
    "--auth-token", envvar="OMNIHUB_TWILIO_AUTH_TOKEN", default=None, help="twilio: Auth Token"
)
@click.option(
    "--api-secret", envvar="OMNIHUB_ZADARMA_SECRET", default=None, help="zadarma: API secret"
)
@click.option("--api-key", default=None, help="mango: the VPBX API key")
@click.option("--api-salt", envvar="OMNIHUB_MANGO_SALT", default=None, help="mango: the API salt")
@click.option(
    "--callback-minutes",
    type=int,
    default=30,
    show_default=True,
    help="Working minutes to call a missed call back in",
)
@click.option("--language", type=click.Choice(["ru", "en"]), default="ru", show_default=True)
@click.option("--timezone", default="Europe/Moscow", show_default=True, help="zadarma: times")
@click.option("--public-url", default=None, help="How the provider reaches the hub (twilio)")
@click.option("--dial", multiple=True, help="twilio: a number or client:NAME to ring")
def channels_add_telephony(**options: Any) -> None:
    """Add a phone line; its secrets are stored encrypted."""
    from pydantic import ValidationError

    from channels.telephony.admin import add_telephony_channel, webhook_path
    from channels.telephony.config import TelephonyConfig
    from storage.crypto import SecretBox
    from storage.errors import HubError

    try:
        config = TelephonyConfig(
            provider=options["provider"],
            language=options["language"],
            callback_minutes=options["callback_minutes"],
            timezone=options["timezone"],
            public_url=options["public_url"],
            dial=list(options["dial"]),
        )
    except ValidationError as exc:
        raise click.ClickException(f"invalid phone line settings: {exc}") from exc
    secrets = {
        name: options[name]
        for name in ("token", "auth_token", "api_secret", "api_key", "api_salt")
        if options[name]
    }
    settings = _settings()

    async def work(session: Any) -> dict[str, str]:
        try:
            added = await add_telephony_channel(
                session,
                SecretBox(settings.secret),
                key=options["key"],
                title=options["title"] or options["key"],
                config=config,
                secrets=secrets,
            )
        except HubError as exc:
            raise click.ClickException(str(exc.detail)) from exc
        return added.generated

    generated = _run(lambda: _in_transaction(settings, work))
    token = generated.get("token") or secrets.get("token")
    path = webhook_path(options["key"], options["provider"], token)
    click.echo(f"phone line {options['key']} added: POST {path}")
    if generated:
        click.echo("the token is in the URL; it is shown only this once", err=True)


@channels_add.command("telegram")
@click.option("--key", required=True, help="The channel's key: /webhooks/telegram/KEY")
@click.option(
    "--token",
    envvar="OMNIHUB_TELEGRAM_TOKEN",
    prompt=True,
    hide_input=True,
    help="The bot's token from @BotFather (or OMNIHUB_TELEGRAM_TOKEN; asked for when missing)",
)
@click.option("--title", default=None, help="Shown to managers; defaults to the key")
@click.option("--api-url", default=None, help="A local Bot API server, e.g. http://127.0.0.1:8081")
@click.option(
    "--mode",
    type=click.Choice(["webhook", "polling"]),
    default="webhook",
    show_default=True,
    help="webhook needs a public URL (then `channels telegram set-webhook KEY`)",
)
@click.option(
    "--language",
    type=click.Choice(["ru", "en"]),
    default="ru",
    show_default=True,
    help="For users whose Telegram is in neither language",
)
@click.option(
    "--audience",
    type=click.Choice(["clients", "managers"]),
    default="clients",
    show_default=True,
    help="clients: the client bot; managers: the managers' bot for notifications",
)
def channels_add_telegram(
    key: str,
    token: str,
    title: str | None,
    api_url: str | None,
    mode: str,
    language: str,
    audience: str,
) -> None:
    """Add a Telegram bot; its token is stored encrypted."""
    from pydantic import ValidationError

    from channels.telegram.admin import add_telegram_channel
    from channels.telegram.config import TelegramChannelConfig
    from storage.crypto import SecretBox
    from storage.errors import HubError

    try:
        config = TelegramChannelConfig.model_validate(
            {"mode": mode, "api_url": api_url, "language": language, "audience": audience}
        )
    except ValidationError as exc:
        raise click.ClickException(f"invalid bot settings: {exc}") from exc
    settings = _settings()

    async def work(session: Any) -> None:
        try:
            await add_telegram_channel(
                session,
                SecretBox(settings.secret),
                key=key,
                title=title or key,
                config=config,
                token=token,
            )
        except HubError as exc:
            raise click.ClickException(str(exc.detail)) from exc

    _run(lambda: _in_transaction(settings, work))
    if mode == "webhook":
        click.echo(f"bot {key} added; now run: omnihub channels telegram set-webhook {key}")
    else:
        click.echo(f"bot {key} added; `omnihub worker` (or serve) polls it")


@channels.group("telegram")
def channels_telegram() -> None:
    """Telegram bots: register webhooks."""


@channels_telegram.command("set-webhook")
@click.argument("key")
@click.option("--url", default=None, help="Default: OMNIHUB_PUBLIC_URL + /webhooks/telegram/KEY")
@click.option("--drop-pending", is_flag=True, help="Drop updates Telegram holds for the bot")
def telegram_set_webhook(key: str, url: str | None, drop_pending: bool) -> None:
    """Tell Telegram where to send the bot's updates, with the secret token it must send."""
    from aiogram.exceptions import TelegramAPIError

    from channels.telegram.admin import set_webhook
    from hub.context import build_context, close_context
    from storage.errors import HubError

    settings = _settings()

    async def run() -> str:
        context = await build_context(settings)
        try:
            return await set_webhook(context, key, url, drop_pending=drop_pending)
        except HubError as exc:
            raise click.ClickException(str(exc.detail)) from exc
        except TelegramAPIError as exc:
            raise click.ClickException(f"Telegram refused: {exc.message}") from exc
        finally:
            await close_context(context)

    click.echo(f"webhook of {key} set: {_run(run)}")


@channels.group("quarantine")
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

    settings = _settings()

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

    for row in _run(lambda: _in_transaction(settings, work)):
        click.echo("\t".join(row))


@channels_quarantine.command("retry")
@click.argument("item_id", type=int)
def quarantine_retry(item_id: int) -> None:
    """Take a quarantined email in again."""
    from channels.email.admin import retry_quarantined
    from hub.context import build_context, close_context
    from storage.errors import HubError

    settings = _settings()

    async def run() -> str:
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

    click.echo(_run(run))


if __name__ == "__main__":
    main()
