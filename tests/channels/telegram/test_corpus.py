"""Bot API samples written by others (../shared/corpora/telegram) through the real webhook:
each is stored as a message or cleanly ignored; what is not an update is refused."""

from __future__ import annotations

import itertools
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from storage.models import Message
from tests.channels.telegram.flow import BotHub
from tests.conftest import CORPORA, PostgresTemplates, missing_part
from tests.telegram_api import BotApiStandIn

SAMPLES = CORPORA / "telegram"
FILES = sorted(SAMPLES.rglob("*.json")) if SAMPLES.is_dir() else []
_ids = itertools.count(1)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
async def corpus_hub(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    sqlite_template: Path,
    postgres_templates: PostgresTemplates,
) -> AsyncIterator[BotHub]:
    """One hub per backend for all the samples (a hub per sample would be slow)."""
    from hub.app import create_app
    from hub.settings import Settings

    data_dir = tmp_path_factory.mktemp("corpus")
    clone = None
    if request.param == "sqlite":
        shutil.copyfile(sqlite_template, data_dir / "omnihub.db")
        url = f"sqlite+aiosqlite:///{data_dir / 'omnihub.db'}"
    else:
        await postgres_templates.ensure()
        if postgres_templates.error:
            missing_part(postgres_templates.error)
        url = clone = await postgres_templates.clone()
    settings = Settings(
        data_dir=data_dir,
        database_url=url,
        secret_key="test-secret-key-0123456789abcdef",  # type: ignore[arg-type]
        redis_url=None,
        run_worker=False,
        log_format="text",
    )
    api = BotApiStandIn()
    await api.start()
    application = create_app(settings)
    try:
        async with application.router.lifespan_context(application):
            transport = httpx.ASGITransport(app=application)
            async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as http:
                hub = BotHub(application, http, api)
                await hub.setup()
                yield hub
    finally:
        await api.close()
        if clone is not None:
            await postgres_templates.drop(str(make_url(clone).database))


def _as_update(sample: Any) -> Any:
    """A bare Message is wrapped in an Update; ids are made unique per sample (the
    samples reuse one chat and one message id, which would make them duplicates)."""
    if isinstance(sample, dict) and "message_id" in sample and "update_id" not in sample:
        sample = {"update_id": 0, "message": sample}
    if isinstance(sample, dict) and "update_id" in sample:
        n = next(_ids)
        sample = {**sample, "update_id": 900_000_000 + n}
        for kind in ("message", "edited_message"):
            if isinstance(sample.get(kind), dict):
                sample[kind] = {**sample[kind], "message_id": 800_000 + n}
    return sample


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
async def test_sample_is_stored_or_cleanly_ignored(corpus_hub: BotHub, path: Path) -> None:
    if not FILES:
        missing_part(f"no Telegram samples at {SAMPLES}")
    update = _as_update(json.loads(path.read_bytes()))  # noqa: ASYNC240
    before = len(await corpus_hub.messages())

    response = await corpus_hub.post(json.dumps(update).encode())

    messages = await corpus_hub.messages()
    if not isinstance(update, dict) or "update_id" not in update:
        # An empty stub upstream, or not an update at all: refused, nothing stored.
        assert response.status_code == 400, response.text
        assert len(messages) == before
        return
    assert response.status_code == 200, response.text
    message = update.get("message")
    if isinstance(message, dict) and message.get("chat", {}).get("type") == "private":
        key = f"tg:{message['chat']['id']}:{message['message_id']}"
        async with corpus_hub.context.db.read() as session:
            stored = (
                await session.scalars(select(Message).where(Message.external_id == key))
            ).one()
        assert stored.text == (message.get("text") or message.get("caption") or stored.text)
        if "location" in message:
            assert stored.text.startswith("geo:")
        assert stored.meta["telegram"]["user_id"] == message["from"]["id"]
    else:
        # Edits of messages the hub never had, payments' queries: answered, nothing stored.
        assert len(messages) == before


def test_the_corpus_is_there() -> None:
    if not FILES:
        missing_part(f"no Telegram samples at {SAMPLES}")
    assert len(FILES) >= 10
