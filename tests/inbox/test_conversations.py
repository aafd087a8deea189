"""Conversations and their messages over /api/v1/conversations."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import update

from intake.schemas import AttachmentIn
from storage.db import Database
from storage.models import ChannelKind, Conversation
from tests.factories import create_channel, create_manager, ingest_message


async def listed(client: httpx.AsyncClient, headers: dict[str, str], **params: Any) -> list[int]:
    response = await client.get("/api/v1/conversations", headers=headers, params=params)
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


class TestListConversations:
    async def test_filters(
        self, client: httpx.AsyncClient, hub_db: Database, admin_headers: dict[str, str]
    ) -> None:
        anna = await create_manager(hub_db)
        site = await create_channel(hub_db, key="site")
        bot = await create_channel(hub_db, key="bot", kind=ChannelKind.TELEGRAM)
        a = await ingest_message(hub_db, site, email="a@example.ru", name="Алиса")
        b = await ingest_message(hub_db, bot, telegram=42)
        c = await ingest_message(hub_db, site, email="a@example.ru")
        async with hub_db.transaction() as session:
            await session.execute(
                update(Conversation)
                .where(Conversation.id == a.conversation_id)
                .values(status="closed", assignee_id=anna.id)
            )
        everything = [c.conversation_id, b.conversation_id, a.conversation_id]
        assert await listed(client, admin_headers) == everything
        assert await listed(client, admin_headers, status="closed") == [a.conversation_id]
        assert await listed(client, admin_headers, status="open,pending") == [
            c.conversation_id,
            b.conversation_id,
        ]
        assert await listed(client, admin_headers, channel="bot") == [b.conversation_id]
        assert await listed(client, admin_headers, channel=str(site.id)) == [
            c.conversation_id,
            a.conversation_id,
        ]
        assert await listed(client, admin_headers, contact_id=a.contact_id) == [
            c.conversation_id,
            a.conversation_id,
        ]
        assert await listed(client, admin_headers, assignee_id=anna.id) == [a.conversation_id]
        assert await listed(client, admin_headers, assignee_id="unassigned") == [
            c.conversation_id,
            b.conversation_id,
        ]

        response = await client.get("/api/v1/conversations", headers=admin_headers)
        first = response.json()["items"][-1]
        assert first["channel_key"] == "site" and first["channel_kind"] == "webform"
        assert first["contact_name"] == "Алиса"
        assert first["lead_id"] == a.lead_id

    async def test_unknown_status(
        self, client: httpx.AsyncClient, admin_headers: dict[str, str]
    ) -> None:
        response = await client.get(
            "/api/v1/conversations", headers=admin_headers, params={"status": "archived"}
        )
        assert response.status_code == 422
        assert response.json()["error"] == "invalid_status"

    async def test_cursor_walk(
        self, client: httpx.AsyncClient, hub_db: Database, admin_headers: dict[str, str]
    ) -> None:
        channel = await create_channel(hub_db)
        created = [
            (await ingest_message(hub_db, channel, email=f"w{i}@example.ru")).conversation_id
            for i in range(5)
        ]
        seen: list[int] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            response = await client.get(
                "/api/v1/conversations", headers=admin_headers, params=params
            )
            body = response.json()
            seen.extend(item["id"] for item in body["items"])
            cursor = body["next_cursor"]
            if cursor is None:
                break
        assert seen == sorted(created, reverse=True)


class TestGetConversation:
    async def test_detail(
        self, client: httpx.AsyncClient, hub_db: Database, admin_headers: dict[str, str]
    ) -> None:
        channel = await create_channel(hub_db, key="site")
        result = await ingest_message(
            hub_db, channel, email="v@example.ru", name="Вера", subject="Вопрос"
        )
        response = await client.get(
            f"/api/v1/conversations/{result.conversation_id}", headers=admin_headers
        )
        assert response.status_code == 200
        body = response.json()
        assert body["id"] == result.conversation_id
        assert body["subject"] == "Вопрос"
        assert body["lead_id"] == result.lead_id
        assert body["channel_key"] == "site"
        assert body["contact"]["id"] == result.contact_id
        assert body["contact"]["identities"][0]["value"] == "v@example.ru"

    @pytest.mark.parametrize(
        "path", ["/api/v1/conversations/777", "/api/v1/conversations/777/messages"]
    )
    async def test_unknown(
        self, client: httpx.AsyncClient, admin_headers: dict[str, str], path: str
    ) -> None:
        response = await client.get(path, headers=admin_headers)
        assert response.status_code == 404
        assert response.json()["error"] == "not_found"


class TestMessages:
    async def test_oldest_first_with_attachments(
        self, client: httpx.AsyncClient, hub_db: Database, admin_headers: dict[str, str]
    ) -> None:
        channel = await create_channel(hub_db)
        photo = AttachmentIn(
            filename="окно.jpg", content_type="image/jpeg", size=2048, sha256="ab" * 32
        )
        first = await ingest_message(
            hub_db, channel, email="m@example.ru", text="Первое", thread_key="t-1"
        )
        for text in ("Второе", "Третье"):
            await ingest_message(
                hub_db,
                channel,
                email="m@example.ru",
                text=text,
                thread_key="t-1",
                attachments=[photo] if text == "Второе" else None,
            )
        url = f"/api/v1/conversations/{first.conversation_id}/messages"
        response = await client.get(url, headers=admin_headers)
        assert response.status_code == 200
        body = response.json()
        assert [m["text"] for m in body["items"]] == ["Первое", "Второе", "Третье"]
        assert body["next_cursor"] is None
        assert body["items"][0]["direction"] == "inbound"
        assert body["items"][0]["attachments"] == []
        [attachment] = body["items"][1]["attachments"]
        assert {k: attachment[k] for k in ("filename", "content_type", "size", "sha256")} == {
            "filename": "окно.jpg",
            "content_type": "image/jpeg",
            "size": 2048,
            "sha256": "ab" * 32,
        }

        page = await client.get(url, headers=admin_headers, params={"limit": 2})
        assert [m["text"] for m in page.json()["items"]] == ["Первое", "Второе"]
        rest = await client.get(
            url, headers=admin_headers, params={"limit": 2, "cursor": page.json()["next_cursor"]}
        )
        assert [m["text"] for m in rest.json()["items"]] == ["Третье"]
        assert rest.json()["next_cursor"] is None
