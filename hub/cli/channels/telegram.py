"""`omnihub channels add telegram` (a bot) and `omnihub channels telegram` (its webhook)."""

from __future__ import annotations

from typing import Any

import click

from hub.cli.base import in_transaction, load_settings, run


@click.command("telegram")
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
@click.option(
    "--greeting/--no-greeting",
    default=False,
    show_default=True,
    help="Answer a new chat at once (the hub's text, or --greeting-ru/--greeting-en)",
)
@click.option(
    "--greeting-ru",
    default=None,
    help="Own greeting in Russian; placeholders {number}, {subject}, {opens}",
)
@click.option("--greeting-en", default=None, help="Own greeting in English; the same placeholders")
def add_telegram(
    key: str,
    token: str,
    title: str | None,
    api_url: str | None,
    mode: str,
    language: str,
    audience: str,
    greeting: bool,
    greeting_ru: str | None,
    greeting_en: str | None,
) -> None:
    """Add a Telegram bot; its token is stored encrypted."""
    from pydantic import ValidationError

    from channels.telegram.admin import add_telegram_channel
    from channels.telegram.config import TelegramChannelConfig
    from storage.crypto import SecretBox
    from storage.errors import HubError

    if (greeting_ru or greeting_en) and not greeting:
        raise click.UsageError("--greeting-ru/--greeting-en need --greeting")
    # Without working hours (the CLI sets none) the in-hours text is the one always sent.
    said = {
        lang: {"in_hours": text}
        for lang, text in (("ru", greeting_ru), ("en", greeting_en))
        if text
    }
    try:
        config = TelegramChannelConfig.model_validate(
            {
                "mode": mode,
                "api_url": api_url,
                "language": language,
                "audience": audience,
                "greeting": {"enabled": greeting, **said},
            }
        )
    except ValidationError as exc:
        raise click.ClickException(f"invalid bot settings: {exc}") from exc
    settings = load_settings()

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

    run(lambda: in_transaction(settings, work))
    if mode == "webhook":
        click.echo(f"bot {key} added; now run: omnihub channels telegram set-webhook {key}")
    else:
        click.echo(f"bot {key} added; `omnihub worker` (or serve) polls it")


@click.group("telegram")
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

    settings = load_settings()

    async def register() -> str:
        context = await build_context(settings)
        try:
            return await set_webhook(context, key, url, drop_pending=drop_pending)
        except HubError as exc:
            raise click.ClickException(str(exc.detail)) from exc
        except TelegramAPIError as exc:
            raise click.ClickException(f"Telegram refused: {exc.message}") from exc
        finally:
            await close_context(context)

    click.echo(f"webhook of {key} set: {run(register)}")
