"""The manager's own presence from the workspace (the app in-process, both databases): the
top bar shows it, a tab's heartbeat sets and renews it without rewriting the row on every
beat, going online emits the event that routes what waits, away and offline are chosen."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import func, select

from storage.db import Database
from storage.models import Manager, OutboxEvent
from storage.types import utcnow
from tests.factories import create_manager, set_language
from tests.inbox.test_web_pages import HUB, signed_in

BEAT = {"Origin": HUB, "X-Heartbeat": "1"}


async def _presence(db: Database, manager_id: int) -> tuple[str, object]:
    async with db.read() as session:
        manager = await session.get(Manager, manager_id)
        assert manager is not None
        return manager.presence, manager.presence_expires_at


async def _went_online(db: Database) -> int:
    async with db.read() as session:
        return int(
            await session.scalar(
                select(func.count())
                .select_from(OutboxEvent)
                .where(OutboxEvent.topic == "manager.presence_changed")
            )
            or 0
        )


async def test_the_top_bar_sets_and_a_tab_renews_the_managers_presence(
    client: httpx.AsyncClient, hub_db: Database
) -> None:
    manager = await create_manager(hub_db, email="olga@example.ru")
    await set_language(hub_db, manager.id, "en")
    await signed_in(client, "olga@example.ru")
    page = (await client.get("/inbox/v/open")).text
    assert '<select id="presence-state" name="state" class="presence-offline">' in page
    assert '<option value="offline" selected>Offline</option>' in page
    assert '<script src="/static/inbox/presence.js" defer></script>' in page

    beat = await client.post("/inbox/presence", data={"state": "online"}, headers=BEAT)
    assert beat.status_code == 204, beat.text
    state, expires = await _presence(hub_db, manager.id)
    assert state == "online" and expires is not None
    assert await _went_online(hub_db) == 1
    # Another tab's beat a moment later changes nothing (no write, no second event).
    again = await client.post("/inbox/presence", data={"state": "online"}, headers=BEAT)
    assert again.status_code == 204
    assert await _presence(hub_db, manager.id) == (state, expires)
    assert await _went_online(hub_db) == 1
    page = (await client.get("/inbox/v/open")).text
    assert '<option value="online" selected>Online</option>' in page

    # Chosen without JavaScript: the form posts and leads back to the workspace.
    away = await client.post("/inbox/presence", data={"state": "away"}, headers={"Origin": HUB})
    assert away.status_code == 303 and away.headers["location"] == "/inbox"
    state, expires = await _presence(hub_db, manager.id)
    assert state == "away" and expires is not None and expires > utcnow() + timedelta(seconds=60)
    off = await client.post("/inbox/presence", data={"state": "offline"}, headers=BEAT)
    assert off.status_code == 204
    assert await _presence(hub_db, manager.id) == ("offline", None)


async def test_presence_refuses_an_unknown_state_and_a_foreign_page(
    client: httpx.AsyncClient, hub_db: Database
) -> None:
    manager = await create_manager(hub_db, email="olga@example.ru")
    await signed_in(client, "olga@example.ru")
    unknown = await client.post("/inbox/presence", data={"state": "busy"}, headers=BEAT)
    assert unknown.status_code == 422
    foreign = await client.post(
        "/inbox/presence",
        data={"state": "online"},
        headers={"Origin": "https://evil.example", "X-Heartbeat": "1"},
    )
    assert foreign.status_code == 403
    assert await _presence(hub_db, manager.id) == ("offline", None)
    signed_out = httpx.AsyncClient(transport=client._transport, base_url=str(client.base_url))
    async with signed_out:
        refused = await signed_out.post("/inbox/presence", data={"state": "online"}, headers=BEAT)
    assert refused.status_code in (200, 303)
    assert await _presence(hub_db, manager.id) == ("offline", None)
