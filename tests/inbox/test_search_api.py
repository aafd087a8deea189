"""GET /api/v1/search: what matches, what a manager may see, and what is refused."""

from __future__ import annotations

import httpx
from sqlalchemy import update

from storage.db import Database
from storage.models import Conversation
from tests.factories import create_channel, ingest_message, manager_with_headers


class TestSearchApi:
    async def test_matches_with_a_marked_snippet_and_a_cursor(
        self, client: httpx.AsyncClient, hub_db: Database, admin_headers: dict[str, str]
    ) -> None:
        channel = await create_channel(hub_db)
        ids = [
            (
                await ingest_message(hub_db, channel, text=f"Верните деньги за заказ {n}")
            ).conversation_id
            for n in range(3)
        ]
        await ingest_message(hub_db, channel, text="Спасибо за помощь")

        first = await client.get(
            "/api/v1/search", headers=admin_headers, params={"q": "деньгами", "limit": 2}
        )
        assert first.status_code == 200, first.text
        body = first.json()
        assert [item["conversation"]["id"] for item in body["items"]] == ids[:0:-1]
        assert [part["text"] for part in body["items"][0]["snippet"] if part["hit"]] == ["деньги"]
        second = await client.get(
            "/api/v1/search",
            headers=admin_headers,
            params={"q": "деньгами", "cursor": body["next_cursor"]},
        )
        assert [item["conversation"]["id"] for item in second.json()["items"]] == [ids[0]]
        assert second.json()["next_cursor"] is None

    async def test_a_manager_does_not_find_another_managers_conversation(
        self, client: httpx.AsyncClient, hub_db: Database
    ) -> None:
        channel = await create_channel(hub_db)
        anna, anna_headers = await manager_with_headers(hub_db, name="Анна")
        boris, _ = await manager_with_headers(hub_db, name="Борис")
        theirs = (await ingest_message(hub_db, channel, text="секретный договор")).conversation_id
        async with hub_db.transaction() as session:
            await session.execute(
                update(Conversation).where(Conversation.id == theirs).values(assignee_id=boris.id)
            )

        response = await client.get("/api/v1/search", headers=anna_headers, params={"q": "договор"})

        assert response.status_code == 200
        assert response.json()["items"] == []
        assert anna.id != boris.id

    async def test_refusals(self, client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
        empty = await client.get("/api/v1/search", headers=admin_headers, params={"q": " ?! "})
        assert empty.status_code == 422
        assert empty.json()["error"] == "invalid_query"
        long = await client.get("/api/v1/search", headers=admin_headers, params={"q": "я" * 201})
        assert long.status_code == 422
        anonymous = await client.get("/api/v1/search", params={"q": "заказ"})
        assert anonymous.status_code == 401
