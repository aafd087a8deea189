"""Contacts over /api/v1/contacts: search by any notation, one person across channels."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from storage.db import Database
from storage.models import ChannelKind
from tests.factories import create_channel, ingest_message


async def search(client: httpx.AsyncClient, headers: dict[str, str], **params: Any) -> list[int]:
    response = await client.get("/api/v1/contacts", headers=headers, params=params)
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


class TestSearchContacts:
    @pytest.mark.parametrize(
        "phone", ["8 (912) 345-67-89", "+7 912 345 67 89", "79123456789", "0079123456789"]
    )
    async def test_phone_in_any_notation(
        self,
        client: httpx.AsyncClient,
        hub_db: Database,
        admin_headers: dict[str, str],
        phone: str,
    ) -> None:
        channel = await create_channel(hub_db)
        wanted = (await ingest_message(hub_db, channel, phone="+79123456789")).contact_id
        await ingest_message(hub_db, channel, phone="+79990000000")
        assert await search(client, admin_headers, phone=phone) == [wanted]
        assert await search(client, admin_headers, q=phone) == [wanted]

    async def test_phone_fragment(
        self, client: httpx.AsyncClient, hub_db: Database, admin_headers: dict[str, str]
    ) -> None:
        channel = await create_channel(hub_db)
        wanted = (await ingest_message(hub_db, channel, phone="+79123456789")).contact_id
        assert await search(client, admin_headers, phone="345-67") == [wanted]

    async def test_phone_without_digits_is_invalid(
        self, client: httpx.AsyncClient, admin_headers: dict[str, str]
    ) -> None:
        response = await client.get(
            "/api/v1/contacts", headers=admin_headers, params={"phone": "call me"}
        )
        assert response.status_code == 422
        assert response.json()["error"] == "invalid_phone"

    async def test_email_and_name(
        self, client: httpx.AsyncClient, hub_db: Database, admin_headers: dict[str, str]
    ) -> None:
        channel = await create_channel(hub_db)
        olga = (
            await ingest_message(hub_db, channel, email="Olga@Example.ru", name="Ольга Иванова")
        ).contact_id
        petr = (
            await ingest_message(hub_db, channel, email="petr@example.ru", name="Пётр Иванов")
        ).contact_id
        assert await search(client, admin_headers, email="OLGA@example.RU") == [olga]
        assert await search(client, admin_headers, email="example.ru") == [petr, olga]
        assert await search(client, admin_headers, name="иванов") == [petr, olga]
        assert await search(client, admin_headers, name="ИВАНОВА") == [olga]
        assert await search(client, admin_headers, q="пётр") == [petr]
        assert await search(client, admin_headers, q="olga@") == [olga]
        assert await search(client, admin_headers, name="иванов", email="petr@example.ru") == [petr]
        assert await search(client, admin_headers, q="Сидоров") == []

    async def test_pages(
        self, client: httpx.AsyncClient, hub_db: Database, admin_headers: dict[str, str]
    ) -> None:
        channel = await create_channel(hub_db)
        created = [
            (await ingest_message(hub_db, channel, email=f"p{i}@example.ru")).contact_id
            for i in range(5)
        ]
        seen: list[int] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            response = await client.get("/api/v1/contacts", headers=admin_headers, params=params)
            body = response.json()
            seen.extend(item["id"] for item in body["items"])
            cursor = body["next_cursor"]
            if cursor is None:
                break
        assert seen == sorted(created, reverse=True)

    async def test_lead_cursor_is_not_a_contact_cursor(
        self, client: httpx.AsyncClient, hub_db: Database, admin_headers: dict[str, str]
    ) -> None:
        channel = await create_channel(hub_db)
        for i in range(2):
            await ingest_message(hub_db, channel, email=f"l{i}@example.ru")
        leads = await client.get("/api/v1/leads", headers=admin_headers, params={"limit": 1})
        response = await client.get(
            "/api/v1/contacts",
            headers=admin_headers,
            params={"cursor": leads.json()["next_cursor"]},
        )
        assert response.status_code == 422
        assert response.json()["error"] == "invalid_cursor"


class TestGetContact:
    async def test_conversations_across_channels(
        self, client: httpx.AsyncClient, hub_db: Database, admin_headers: dict[str, str]
    ) -> None:
        site = await create_channel(hub_db, key="site")
        mail = await create_channel(hub_db, key="mailbox", kind=ChannelKind.EMAIL)
        first = await ingest_message(hub_db, site, email="anna@example.ru", name="Анна")
        second = await ingest_message(
            hub_db, mail, email="ANNA@example.ru", phone="+79001112233", subject="Re: окна"
        )
        assert first.contact_id == second.contact_id

        response = await client.get(f"/api/v1/contacts/{first.contact_id}", headers=admin_headers)
        assert response.status_code == 200
        body = response.json()
        assert body["name"] == "Анна"
        assert [(i["kind"], i["value"]) for i in body["identities"]] == [
            ("email", "anna@example.ru"),
            ("phone", "+79001112233"),
        ]
        conversations = {c["channel_key"]: c for c in body["conversations"]}
        assert set(conversations) == {"site", "mailbox"}
        assert conversations["site"]["id"] == first.conversation_id
        assert conversations["site"]["lead_id"] == first.lead_id
        assert conversations["site"]["channel_kind"] == "webform"
        assert conversations["mailbox"]["id"] == second.conversation_id
        assert conversations["mailbox"]["channel_kind"] == "email"
        assert conversations["mailbox"]["subject"] == "Re: окна"
        assert conversations["mailbox"]["status"] == "open"
        assert conversations["mailbox"]["last_message_at"] is not None
        assert body["merge_suggestions"] == []

    async def test_open_merge_suggestions(
        self, client: httpx.AsyncClient, hub_db: Database, admin_headers: dict[str, str]
    ) -> None:
        channel = await create_channel(hub_db)
        by_email = await ingest_message(hub_db, channel, email="k@example.ru")
        by_phone = await ingest_message(hub_db, channel, phone="+79005556677")
        await ingest_message(hub_db, channel, email="k@example.ru", phone="+79005556677")
        for contact_id in (by_email.contact_id, by_phone.contact_id):
            response = await client.get(f"/api/v1/contacts/{contact_id}", headers=admin_headers)
            [suggestion] = response.json()["merge_suggestions"]
            assert suggestion["contact_id"] == by_email.contact_id
            assert suggestion["other_contact_id"] == by_phone.contact_id
            assert suggestion["status"] == "open"

    async def test_unknown(self, client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
        response = await client.get("/api/v1/contacts/31337", headers=admin_headers)
        assert response.status_code == 404
        assert response.json()["error"] == "not_found"
