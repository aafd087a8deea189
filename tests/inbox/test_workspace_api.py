"""Canned replies, read positions and contact merges over /api/v1."""

from __future__ import annotations

import httpx

from storage.db import Database
from tests.factories import create_channel, ingest_message, manager_with_headers


class TestCannedApi:
    async def test_create_list_render_change_delete(
        self, client: httpx.AsyncClient, hub_db: Database, admin_headers: dict[str, str]
    ) -> None:
        anna, headers = await manager_with_headers(hub_db, name="Анна")
        channel = await create_channel(hub_db)
        result = await ingest_message(hub_db, channel, name="Пётр", text="Где заказ?")

        shared = await client.post(
            "/api/v1/canned-replies",
            headers=admin_headers,
            json={
                "shortcut": "hi",
                "title": "Привет",
                "body": "Здравствуйте, {client_name}!",
                "shared": True,
            },
        )
        assert shared.status_code == 201, shared.text
        refused = await client.post(
            "/api/v1/canned-replies",
            headers=headers,
            json={"shortcut": "x", "title": "x", "body": "{who}", "shared": False},
        )
        assert refused.status_code == 422
        assert refused.json()["error"] == "invalid_body"
        not_admin = await client.post(
            "/api/v1/canned-replies",
            headers=headers,
            json={"shortcut": "y", "title": "y", "body": "y", "shared": True},
        )
        assert not_admin.status_code == 403
        own = await client.post(
            "/api/v1/canned-replies",
            headers=headers,
            json={
                "shortcut": "num",
                "title": "Номер",
                "body": "Заявка №{request_number}, {manager_name}",
            },
        )
        assert own.status_code == 201, own.text

        listed = await client.get("/api/v1/canned-replies", headers=headers, params={"q": "/n"})
        assert [item["shortcut"] for item in listed.json()] == ["num"]
        text = await client.get(
            f"/api/v1/canned-replies/{own.json()['id']}/text",
            headers=headers,
            params={"conversation_id": result.conversation_id},
        )
        assert text.json() == {"text": f"Заявка №{result.lead_id}, Анна"}
        changed = await client.patch(
            f"/api/v1/canned-replies/{own.json()['id']}", headers=headers, json={"title": "№"}
        )
        assert changed.json()["title"] == "№"
        gone = await client.delete(f"/api/v1/canned-replies/{own.json()['id']}", headers=headers)
        assert gone.status_code == 204
        listed = await client.get("/api/v1/canned-replies", headers=headers)
        assert [item["shortcut"] for item in listed.json()] == ["hi"]
        assert anna.id > 0

    async def test_marking_a_conversation_read(
        self, client: httpx.AsyncClient, hub_db: Database, admin_headers: dict[str, str]
    ) -> None:
        _anna, headers = await manager_with_headers(hub_db)
        channel = await create_channel(hub_db)
        result = await ingest_message(hub_db, channel)

        read = await client.post(
            f"/api/v1/conversations/{result.conversation_id}/read", headers=headers
        )
        assert read.status_code == 204, read.text
        foreign = await client.post(
            f"/api/v1/conversations/{result.conversation_id}/read",
            headers=headers,
            json={"message_id": 10**9},
        )
        assert foreign.status_code == 422
        operator = await client.post(
            f"/api/v1/conversations/{result.conversation_id}/read", headers=admin_headers
        )
        assert operator.status_code == 422
        missing = await client.post("/api/v1/conversations/999999/read", headers=headers)
        assert missing.status_code == 404


class TestMergeApi:
    async def test_merge_and_its_record(self, client: httpx.AsyncClient, hub_db: Database) -> None:
        anna, headers = await manager_with_headers(hub_db)
        channel = await create_channel(hub_db)
        kept = await ingest_message(hub_db, channel, email="kept@example.ru")
        gone = await ingest_message(hub_db, channel, email="gone@example.ru")

        merged = await client.post(
            f"/api/v1/contacts/{kept.contact_id}/merge",
            headers=headers,
            json={"other_contact_id": gone.contact_id},
        )
        assert merged.status_code == 201, merged.text
        assert merged.json()["moved"]["conversations"] == [gone.conversation_id]
        assert merged.json()["manager_id"] == anna.id
        again = await client.post(
            f"/api/v1/contacts/{kept.contact_id}/merge",
            headers=headers,
            json={"other_contact_id": gone.contact_id},
        )
        assert again.status_code == 404
        itself = await client.post(
            f"/api/v1/contacts/{kept.contact_id}/merge",
            headers=headers,
            json={"other_contact_id": kept.contact_id},
        )
        assert itself.json()["error"] == "same_contact"
        history = await client.get(f"/api/v1/contacts/{kept.contact_id}/merges", headers=headers)
        assert [item["from_contact_id"] for item in history.json()] == [gone.contact_id]
