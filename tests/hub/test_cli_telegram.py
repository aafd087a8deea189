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


async def test_the_greeting_is_off_unless_asked_for_and_can_carry_own_texts(
    cli: Cli, data_dir: Path
) -> None:
    env: dict[str, str | None] = {"OMNIHUB_SECRET_KEY": SECRET}

    def greeting_of(key: str) -> dict[str, object]:
        ((config,),) = query(data_dir, f"SELECT config FROM channels WHERE key = '{key}'")
        greeting: dict[str, object] = json.loads(str(config))["greeting"]
        return greeting

    plain = await asyncio.to_thread(
        cli, "channels", "add", "telegram", "--key", "quiet", "--token", new_token(), env=env
    )
    assert plain.returncode == 0, plain.stderr
    assert greeting_of("quiet")["enabled"] is False

    greeted = await asyncio.to_thread(
        cli,
        "channels", "add", "telegram", "--key", "hello", "--token", new_token(),
        "--greeting", "--greeting-ru", "Заявка {number} принята", "--greeting-en", "Got it",
        env=env,
    )  # fmt: skip
    assert greeted.returncode == 0, greeted.stderr
    greeting = greeting_of("hello")
    assert greeting["enabled"] is True
    assert greeting["ru"] == {"in_hours": "Заявка {number} принята", "out_of_hours": None}
    assert greeting["en"] == {"in_hours": "Got it", "out_of_hours": None}

    default_text = await asyncio.to_thread(
        cli, "channels", "add", "telegram", "--key", "std", "--token", new_token(),
        "--greeting", env=env,
    )  # fmt: skip
    assert default_text.returncode == 0, default_text.stderr
    assert greeting_of("std")["enabled"] is True
    assert greeting_of("std")["ru"] == {"in_hours": None, "out_of_hours": None}

    # A text without --greeting would be stored but never sent: refused, nothing added.
    text_only = await asyncio.to_thread(
        cli, "channels", "add", "telegram", "--key", "half", "--token", new_token(),
        "--greeting-ru", "Здравствуйте", env=env,
    )  # fmt: skip
    assert text_only.returncode != 0 and "--greeting" in text_only.stderr
    unknown = await asyncio.to_thread(
        cli, "channels", "add", "telegram", "--key", "odd", "--token", new_token(),
        "--greeting", "--greeting-en", "Hi {name}", env=env,
    )  # fmt: skip
    assert unknown.returncode != 0 and "placeholder" in unknown.stderr
    assert query(data_dir, "SELECT key FROM channels WHERE key IN ('half', 'odd')") == []
