"""The Bot API stand-in and a hub with one bot channel on it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.channels.telegram.flow import BotHub
from tests.telegram_api import BotApiStandIn


@pytest.fixture
async def api() -> AsyncIterator[BotApiStandIn]:
    stand_in = BotApiStandIn()
    await stand_in.start()
    try:
        yield stand_in
    finally:
        await stand_in.close()


@pytest.fixture
async def hub(app: Any, client: httpx.AsyncClient, api: BotApiStandIn) -> BotHub:
    bot_hub = BotHub(app, client, api)
    await bot_hub.setup()
    return bot_hub
