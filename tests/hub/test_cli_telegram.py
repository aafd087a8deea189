"""`omnihub channels add telegram` and `channels telegram set-webhook`, as subprocesses,
against the Bot API stand-in."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from storage.crypto import SecretBox
from tests.channels.telegram.flow import new_token
from tests.hub.console import SECRET, Cli, query
from tests.telegram_api import BotApiStandIn


async def test_add_a_bot_and_set_its_webhook(cli: Cli, data_dir: Path, api: BotApiStandIn) -> None:
    token = new_token()
    env: dict[str, str | None] = {"OMNIHUB_SECRET_KEY": SECRET}
    added = await asyncio.to_thread(
        cli,
        "channels", "add", "telegram", "--key", "shopbot", "--token", token, "--api-url", api.url,
        env=env,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert "set-webhook shopbot" in added.stdout
    ((config, sealed),) = query(
        data_dir, "SELECT config, secrets FROM channels WHERE key = 'shopbot'"
    )
    assert token not in sealed and token not in config
    secrets = SecretBox(SECRET).open(sealed)
    assert secrets["token"] == token

    # Without a public URL the hub cannot say where Telegram should call.
    refused = await asyncio.to_thread(
        cli, "channels", "telegram", "set-webhook", "shopbot", env=env
    )
    assert refused.returncode != 0 and "OMNIHUB_PUBLIC_URL" in refused.stderr

    done = await asyncio.to_thread(
        cli,
        "channels", "telegram", "set-webhook", "shopbot",
        env={**env, "OMNIHUB_PUBLIC_URL": "https://hub.example.ru/"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    [call] = api.sent("setWebhook")
    assert call.token == token
    assert call.params["url"] == "https://hub.example.ru/webhooks/telegram/shopbot"
    assert call.params["secret_token"] == secrets["webhook_secret"]
    assert call.params["allowed_updates"] == ["message", "edited_message", "callback_query"]
    listed = await asyncio.to_thread(cli, "channels", "list", "--kind", "telegram", env=env)
    assert "shopbot" in listed.stdout

    bad = await asyncio.to_thread(
        cli, "channels", "add", "telegram", "--key", "other", "--token", "not-a-token", env=env
    )
    assert bad.returncode != 0 and "token" in bad.stderr


async def test_add_a_managers_bot(cli: Cli, data_dir: Path) -> None:
    env: dict[str, str | None] = {"OMNIHUB_SECRET_KEY": SECRET}
    added = await asyncio.to_thread(
        cli,
        "channels", "add", "telegram", "--key", "staffbot", "--token", new_token(),
        "--mode", "polling", "--audience", "managers",
        env=env,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    ((config,),) = query(data_dir, "SELECT config FROM channels WHERE key = 'staffbot'")
    assert json.loads(str(config))["audience"] == "managers"
    bad = await asyncio.to_thread(
        cli,
        "channels", "add", "telegram", "--key", "other", "--token", new_token(),
        "--audience", "everyone",
        env=env,
    )  # fmt: skip
    assert bad.returncode != 0 and "audience" in bad.stderr
