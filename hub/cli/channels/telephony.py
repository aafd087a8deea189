"""`omnihub channels add telephony`: a phone line."""

from __future__ import annotations

from typing import Any

import click

from hub.cli.base import in_transaction, load_settings, run


@click.command("telephony")
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
def add_telephony(**options: Any) -> None:
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
    settings = load_settings()

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

    generated = run(lambda: in_transaction(settings, work))
    token = generated.get("token") or secrets.get("token")
    path = webhook_path(options["key"], options["provider"], token)
    click.echo(f"phone line {options['key']} added: POST {path}")
    if generated:
        click.echo("the token is in the URL; it is shown only this once", err=True)
