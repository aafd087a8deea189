"""`omnihub channels add webform`: a hosted web form."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import click

from hub.cli.base import in_transaction, load_settings, run


@click.command("webform")
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
def add_webform(
    key: str,
    title: str,
    language: Literal["ru", "en"],
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
    config.language = language
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
    settings = load_settings()

    async def work(session: Any) -> None:
        repo = ChannelRepository(session)
        if await repo.get_by_key(key) is not None:
            raise click.ClickException(f"a channel with key {key!r} exists")
        await repo.add(
            key=key, kind=ChannelKind.WEBFORM, title=title, config=config.model_dump(mode="json")
        )

    run(lambda: in_transaction(settings, work))
    click.echo(f"web form {key} added: /forms/{key}")
    if config.consent.required and not config.consent.policy_url:
        click.echo("warning: the consent box links no policy; add --privacy-policy URL", err=True)
