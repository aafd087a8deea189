"""The lead journal over /api/v1/leads: filters, pages, detail, status changes, CSV export."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select, update

from storage.db import Database
from storage.models import ChannelKind, Conversation, Lead, OutboxEvent
from tests.factories import (
    assert_error,
    create_channel,
    create_manager,
    create_token,
    ingest_message,
    manager_with_headers,
)

UTM = {
    "utm_source": "yandex",
    "utm_medium": "cpc",
    "utm_campaign": "winter",
    "utm_term": "купить окна",
    "utm_content": "banner-1",
    "referrer": "https://ya.ru/",
}


async def get_leads(
    client: httpx.AsyncClient, headers: dict[str, str], **params: Any
) -> dict[str, Any]:
    response = await client.get("/api/v1/leads", headers=headers, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def ids(body: dict[str, Any]) -> list[int]:
    return [item["id"] for item in body["items"]]


async def set_lead(db: Database, lead_id: int, **values: Any) -> None:
    async with db.transaction() as session:
        await session.execute(update(Lead).where(Lead.id == lead_id).values(**values))


class TestListLeads:
    async def test_row_shape(
        self, client: httpx.AsyncClient, hub_db: Database, admin_headers: dict[str, str]
    ) -> None:
        channel = await create_channel(hub_db, key="site-main")
        result = await ingest_message(
            hub_db,
            channel,
            name="Иван Петров",
            email="Ivan@Example.ru",
            phone="8 912 345-67-89",
            subject="Окна в дом",
            text="Нужны окна",
            attribution={**UTM, "gclid": "x", "session": "not attribution"},
            form_fields={"area": "40"},
        )
        body = await get_leads(client, admin_headers)
        assert body["next_cursor"] is None
        [item] = body["items"]
        assert item["id"] == result.lead_id
        assert item["status"] == "new"
        assert item["source"] == "webform"
        assert item["title"] == "Окна в дом"
        assert item["channel_key"] == "site-main"
        assert item["channel_id"] == channel.id
        assert item["contact_id"] == result.contact_id
        assert item["contact_name"] == "Иван Петров"
        assert item["email"] == "ivan@example.ru"
        assert item["phone"] == "+79123456789"
        assert item["conversation_id"] == result.conversation_id
        # The known attribution keys, each present (None when absent); nothing else.
        assert item["attribution"] == {**UTM, "gclid": "x", "yclid": None, "page_url": None}
        assert item["form_fields"] == {"area": "40"}
        assert item["assignee_id"] is None
        created = datetime.fromisoformat(item["created_at"])
        assert item["created_at"].endswith("Z") and created.utcoffset() == timedelta(0)

    async def test_cursor_walk_has_no_duplicates_or_gaps(
        self, client: httpx.AsyncClient, hub_db: Database, admin_headers: dict[str, str]
    ) -> None:
        channel = await create_channel(hub_db)
        created = [
            (await ingest_message(hub_db, channel, email=f"c{i}@example.ru")).lead_id
            for i in range(7)
        ]
        seen: list[int] = []
        cursor = None
        pages = 0
        while True:
            params: dict[str, Any] = {"limit": 3}
            if cursor:
                params["cursor"] = cursor
            body = await get_leads(client, admin_headers, **params)
            seen.extend(ids(body))
            pages += 1
            cursor = body["next_cursor"]
            if cursor is None:
                break
            # A lead arriving mid-walk must not shift the pages.
            if pages == 1:
                await ingest_message(hub_db, channel, email="late@example.ru")
        assert pages == 3
        assert seen == sorted(created, reverse=True)  # type: ignore[type-var]

    async def test_exact_last_page_has_no_cursor(
        self, client: httpx.AsyncClient, hub_db: Database, admin_headers: dict[str, str]
    ) -> None:
        channel = await create_channel(hub_db)
        for i in range(4):
            await ingest_message(hub_db, channel, email=f"c{i}@example.ru")
        first = await get_leads(client, admin_headers, limit=2)
        second = await get_leads(client, admin_headers, limit=2, cursor=first["next_cursor"])
        assert len(second["items"]) == 2 and second["next_cursor"] is None

    @pytest.mark.parametrize("cursor", ["garbage", "Y29udGFjdDox", "bGVhZDp4"])
    async def test_bad_cursor(
        self, client: httpx.AsyncClient, admin_headers: dict[str, str], cursor: str
    ) -> None:
        response = await client.get(
            "/api/v1/leads", headers=admin_headers, params={"cursor": cursor}
        )
        assert response.status_code == 422
        assert response.json()["error"] == "invalid_cursor"

    @pytest.mark.parametrize("limit", [0, 201, "x"])
    async def test_bad_limit(
        self, client: httpx.AsyncClient, admin_headers: dict[str, str], limit: Any
    ) -> None:
        response = await client.get("/api/v1/leads", headers=admin_headers, params={"limit": limit})
        assert response.status_code == 422
        assert response.json()["error"] == "invalid_input"


class TestLeadFilters:
    async def test_channel_by_key_or_id_and_source(
        self, client: httpx.AsyncClient, hub_db: Database, admin_headers: dict[str, str]
    ) -> None:
        site = await create_channel(hub_db, key="site")
        bot = await create_channel(hub_db, key="bot", kind=ChannelKind.TELEGRAM)
        on_site = (await ingest_message(hub_db, site, email="a@example.ru")).lead_id
        in_bot = (await ingest_message(hub_db, bot, telegram=1001)).lead_id
        assert ids(await get_leads(client, admin_headers, channel="site")) == [on_site]
        assert ids(await get_leads(client, admin_headers, channel=str(bot.id))) == [in_bot]
        assert ids(await get_leads(client, admin_headers, channel="nope")) == []
        assert ids(await get_leads(client, admin_headers, source="telegram")) == [in_bot]
        assert ids(await get_leads(client, admin_headers, source="webform")) == [on_site]
        response = await client.get(
            "/api/v1/leads", headers=admin_headers, params={"source": "pigeon"}
        )
        assert response.status_code == 422 and response.json()["error"] == "invalid_source"

    async def test_status_one_or_several(
        self, client: httpx.AsyncClient, hub_db: Database, admin_headers: dict[str, str]
    ) -> None:
        channel = await create_channel(hub_db)
        new, spam, won = [
            (await ingest_message(hub_db, channel, email=f"s{i}@example.ru")).lead_id
            for i in range(3)
        ]
        assert spam is not None and won is not None
        await set_lead(hub_db, spam, status="spam")
        await set_lead(hub_db, won, status="converted")
        assert ids(await get_leads(client, admin_headers, status="new")) == [new]
        assert ids(await get_leads(client, admin_headers, status=["spam", "converted"])) == [
            won,
            spam,
        ]
        assert ids(await get_leads(client, admin_headers, status="new,spam")) == [spam, new]
        response = await client.get(
            "/api/v1/leads", headers=admin_headers, params={"status": "lost"}
        )
        assert response.status_code == 422 and response.json()["error"] == "invalid_status"

    async def test_created_range(
        self, client: httpx.AsyncClient, hub_db: Database, admin_headers: dict[str, str]
    ) -> None:
        channel = await create_channel(hub_db)
        jan, feb, mar = [
            (await ingest_message(hub_db, channel, email=f"d{i}@example.ru")).lead_id
            for i in range(3)
        ]
        moscow = datetime(2026, 1, 1, tzinfo=UTC).astimezone(ZoneInfo("Europe/Moscow"))
        for lead_id, month in ((jan, 1), (feb, 2), (mar, 3)):
            assert lead_id is not None
            await set_lead(hub_db, lead_id, created_at=datetime(2026, month, 15, tzinfo=UTC))
        body = await get_leads(
            client,
            admin_headers,
            created_from="2026-02-01T00:00:00Z",
            created_to="2026-03-15T00:00:00Z",  # exclusive
        )
        assert ids(body) == [feb]
        body = await get_leads(client, admin_headers, created_from=moscow.isoformat())
        assert ids(body) == [mar, feb, jan]
        body = await get_leads(client, admin_headers, created_to="2026-01-15T00:00:01+00:00")
        assert ids(body) == [jan]
        response = await client.get(
            "/api/v1/leads", headers=admin_headers, params={"created_from": "2026-02-01T00:00:00"}
        )
        assert response.status_code == 422

    async def test_assignee_and_unassigned(
        self, client: httpx.AsyncClient, hub_db: Database, admin_headers: dict[str, str]
    ) -> None:
        anna = await create_manager(hub_db, name="Анна")
        channel = await create_channel(hub_db)
        mine, free = [
            (await ingest_message(hub_db, channel, email=f"e{i}@example.ru")).lead_id
            for i in range(2)
        ]
        assert mine is not None
        await set_lead(hub_db, mine, assignee_id=anna.id)
        body = await get_leads(client, admin_headers, assignee_id=anna.id)
        assert ids(body) == [mine]
        assert body["items"][0]["assignee_name"] == "Анна"
        assert ids(await get_leads(client, admin_headers, assignee_id="unassigned")) == [free]
        response = await client.get(
            "/api/v1/leads", headers=admin_headers, params={"assignee_id": "anna"}
        )
        assert response.status_code == 422 and response.json()["error"] == "invalid_assignee"

    @pytest.mark.parametrize(
        ("needle", "expected"),
        [
            ("петров", "name"),  # contact name, lower case of "Петров"
            ("ПЕТРОВ", "name"),
            ("ОКНА", "title"),  # title "Пластиковые окна"
            ("подоконник", "summary"),  # text "... Подоконник ..."
            ("IVAN@EXAMPLE", "name"),  # an identity of the same contact
            ("9123456", "name"),
            ("двери", "doors"),
            ("100%", None),  # LIKE wildcards are literal
        ],
    )
    async def test_text_search_is_case_insensitive_in_cyrillic(
        self,
        client: httpx.AsyncClient,
        hub_db: Database,
        admin_headers: dict[str, str],
        needle: str,
        expected: str | None,
    ) -> None:
        channel = await create_channel(hub_db)
        leads = {
            "name": (
                await ingest_message(
                    hub_db,
                    channel,
                    name="Иван Петров",
                    email="ivan@example.ru",
                    phone="+79123456789",
                    text="Позвоните мне",
                )
            ).lead_id,
            "title": (
                await ingest_message(
                    hub_db, channel, email="t@example.ru", subject="Пластиковые окна", text="..."
                )
            ).lead_id,
            "summary": (
                await ingest_message(
                    hub_db, channel, email="s@example.ru", text="Нужен Подоконник, 100 штук"
                )
            ).lead_id,
            "doors": (
                await ingest_message(hub_db, channel, email="d@example.ru", text="ДВЕРИ входные")
            ).lead_id,
        }
        body = await get_leads(client, admin_headers, text=needle)
        assert ids(body) == ([leads[expected]] if expected else [])

    async def test_filters_combine(
        self, client: httpx.AsyncClient, hub_db: Database, admin_headers: dict[str, str]
    ) -> None:
        site = await create_channel(hub_db, key="site")
        other = await create_channel(hub_db, key="other")
        match = (await ingest_message(hub_db, site, email="a@example.ru", text="окна")).lead_id
        await ingest_message(hub_db, other, email="b@example.ru", text="окна")
        await ingest_message(hub_db, site, email="c@example.ru", text="двери")
        body = await get_leads(client, admin_headers, channel="site", text="Окна", status="new")
        assert ids(body) == [match]


class TestGetLead:
    async def test_detail(
        self, client: httpx.AsyncClient, hub_db: Database, admin_headers: dict[str, str]
    ) -> None:
        channel = await create_channel(hub_db, key="site", title="Сайт")
        result = await ingest_message(
            hub_db, channel, name="Мария", email="maria@example.ru", phone="+79001234567"
        )
        response = await client.get(f"/api/v1/leads/{result.lead_id}", headers=admin_headers)
        assert response.status_code == 200
        body = response.json()
        assert body["id"] == result.lead_id
        assert body["conversation_id"] == result.conversation_id
        assert body["channel"] == {
            "id": channel.id,
            "key": "site",
            "kind": "webform",
            "title": "Сайт",
        }
        assert body["contact"]["name"] == "Мария"
        assert {(i["kind"], i["value"]) for i in body["contact"]["identities"]} == {
            ("email", "maria@example.ru"),
            ("phone", "+79001234567"),
        }

    async def test_unknown(self, client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
        response = await client.get("/api/v1/leads/999999", headers=admin_headers)
        assert response.status_code == 404
        assert response.json()["error"] == "not_found"

    @pytest.mark.parametrize("lead_id", ["abc", "0", "99999999999999999999"])
    async def test_ids_outside_the_range_are_invalid(
        self, client: httpx.AsyncClient, admin_headers: dict[str, str], lead_id: str
    ) -> None:
        response = await client.get(f"/api/v1/leads/{lead_id}", headers=admin_headers)
        assert response.status_code == 422
        assert response.json()["error"] == "invalid_input"


class TestChangeLeadStatus:
    async def test_status_change_emits_event(
        self, client: httpx.AsyncClient, hub_db: Database
    ) -> None:
        anna = await create_manager(hub_db)
        token, token_row = await create_token(hub_db, manager_id=anna.id)
        headers = {"Authorization": f"Bearer {token}"}
        channel = await create_channel(hub_db)
        result = await ingest_message(hub_db, channel, email="a@example.ru")
        before = (await client.get(f"/api/v1/leads/{result.lead_id}", headers=headers)).json()

        response = await client.patch(
            f"/api/v1/leads/{result.lead_id}", headers=headers, json={"status": "in_work"}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "in_work"
        assert body["status_changed_at"] > before["status_changed_at"]
        async with hub_db.read() as session:
            events = (
                await session.scalars(
                    select(OutboxEvent).where(OutboxEvent.topic == "lead.status_changed")
                )
            ).all()
        assert [e.payload for e in events] == [
            {
                "lead_id": result.lead_id,
                "from": "new",
                "to": "in_work",
                "actor": {"manager_id": anna.id, "token_id": token_row.id},
            }
        ]
        listed = await get_leads(client, headers, status="in_work")
        assert ids(listed) == [result.lead_id]

    async def test_unknown_status(
        self, client: httpx.AsyncClient, hub_db: Database, admin_headers: dict[str, str]
    ) -> None:
        channel = await create_channel(hub_db)
        result = await ingest_message(hub_db, channel, email="a@example.ru")
        response = await client.patch(
            f"/api/v1/leads/{result.lead_id}", headers=admin_headers, json={"status": "won"}
        )
        assert response.status_code == 422
        assert response.json()["error"] == "invalid_status"
        async with hub_db.read() as session:
            lead = await session.get(Lead, result.lead_id)
            topics = (await session.scalars(select(OutboxEvent.topic))).all()
        assert lead is not None and lead.status == "new"
        assert "lead.status_changed" not in topics

    async def test_only_status_can_be_changed(
        self, client: httpx.AsyncClient, hub_db: Database, admin_headers: dict[str, str]
    ) -> None:
        channel = await create_channel(hub_db)
        result = await ingest_message(hub_db, channel, email="a@example.ru")
        response = await client.patch(
            f"/api/v1/leads/{result.lead_id}",
            headers=admin_headers,
            json={"status": "spam", "title": "renamed"},
        )
        assert response.status_code == 422

    async def test_unknown_lead(
        self, client: httpx.AsyncClient, admin_headers: dict[str, str]
    ) -> None:
        response = await client.patch(
            "/api/v1/leads/424242", headers=admin_headers, json={"status": "spam"}
        )
        assert response.status_code == 404

    async def test_requires_authentication(self, client: httpx.AsyncClient) -> None:
        response = await client.patch("/api/v1/leads/1", json={"status": "spam"})
        assert response.status_code == 401


def parse_csv(response: httpx.Response) -> list[dict[str, str]]:
    text = response.content.decode("utf-8")
    assert text.startswith("\ufeff")
    return list(csv.DictReader(io.StringIO(text[1:], newline="")))


class TestExportCsv:
    async def test_content(
        self, client: httpx.AsyncClient, hub_db: Database, admin_headers: dict[str, str]
    ) -> None:
        anna = await create_manager(hub_db, name="Анна Смирнова")
        channel = await create_channel(hub_db, key="site")
        result = await ingest_message(
            hub_db,
            channel,
            name="Иван Петров",
            email="ivan@example.ru",
            phone="8 (912) 345-67-89",
            subject="Окна, двери\nи «подоконники»",
            attribution=UTM,
        )
        assert result.lead_id is not None
        await set_lead(hub_db, result.lead_id, assignee_id=anna.id)
        response = await client.get("/api/v1/leads/export.csv", headers=admin_headers)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "text/csv; charset=utf-8"
        assert response.headers["content-disposition"].startswith('attachment; filename="leads-')
        assert response.headers["content-disposition"].endswith('.csv"')
        [row] = parse_csv(response)
        assert list(row) == [
            "id",
            "created_at",
            "status",
            "source",
            "channel",
            "title",
            "contact_name",
            "email",
            "phone",
            "utm_source",
            "utm_medium",
            "utm_campaign",
            "utm_term",
            "utm_content",
            "referrer",
            "assignee",
        ]
        assert row["id"] == str(result.lead_id)
        assert datetime.fromisoformat(row["created_at"]).utcoffset() == timedelta(0)
        assert row["status"] == "new"
        assert row["source"] == "webform"
        assert row["channel"] == "site"
        assert row["title"] == "Окна, двери\nи «подоконники»"
        assert row["contact_name"] == "Иван Петров"
        assert row["email"] == "ivan@example.ru"
        assert row["phone"] == "'+79123456789"  # a leading + would start a formula
        assert {key: row[key] for key in UTM} == UTM
        assert row["assignee"] == "Анна Смирнова"

    async def test_formula_injection_is_neutralised(
        self, client: httpx.AsyncClient, hub_db: Database, admin_headers: dict[str, str]
    ) -> None:
        channel = await create_channel(hub_db)
        await ingest_message(
            hub_db,
            channel,
            name="@SUM(A1:A9)",
            email="x@example.ru",
            subject='=HYPERLINK("http://evil.example","click")',
            attribution={"utm_source": "-2+3", "utm_medium": "+cmd", "utm_term": "\t=1"},
        )
        [row] = parse_csv(await client.get("/api/v1/leads/export.csv", headers=admin_headers))
        assert row["title"] == '\'=HYPERLINK("http://evil.example","click")'
        assert row["contact_name"] == "'@SUM(A1:A9)"
        assert row["utm_source"] == "'-2+3"
        assert row["utm_medium"] == "'+cmd"
        assert row["utm_term"] == "'\t=1"
        assert row["email"] == "x@example.ru"

    async def test_filters_apply(
        self, client: httpx.AsyncClient, hub_db: Database, admin_headers: dict[str, str]
    ) -> None:
        site = await create_channel(hub_db, key="site")
        bot = await create_channel(hub_db, key="bot", kind=ChannelKind.TELEGRAM)
        wanted = (await ingest_message(hub_db, bot, telegram=5, name="Ёжиков")).lead_id
        await ingest_message(hub_db, site, email="a@example.ru")
        response = await client.get(
            "/api/v1/leads/export.csv",
            headers=admin_headers,
            params={"source": "telegram", "text": "ёжиков"},
        )
        assert [int(row["id"]) for row in parse_csv(response)] == [wanted]

    async def test_bad_filter_is_refused_before_streaming(
        self, client: httpx.AsyncClient, admin_headers: dict[str, str]
    ) -> None:
        response = await client.get(
            "/api/v1/leads/export.csv", headers=admin_headers, params={"status": "lost"}
        )
        assert response.status_code == 422
        assert response.json()["error"] == "invalid_status"

    async def test_requires_authentication(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/api/v1/leads/export.csv")
        assert response.status_code == 401


class TestVisibility:
    async def test_a_manager_reads_and_changes_only_leads_they_may_see(
        self, client: httpx.AsyncClient, hub_db: Database, admin_headers: dict[str, str]
    ) -> None:
        olga, olga_headers = await manager_with_headers(hub_db, name="Ольга")
        ivan = await create_manager(hub_db, name="Иван")
        channel = await create_channel(hub_db)
        own = await ingest_message(hub_db, channel, name="Свой")
        free = await ingest_message(hub_db, channel, name="Ничей")
        other = await ingest_message(hub_db, channel, name="Чужой")
        async with hub_db.transaction() as session:
            for result, manager_id in ((own, olga.id), (other, ivan.id)):
                await session.execute(
                    update(Conversation)
                    .where(Conversation.id == result.conversation_id)
                    .values(assignee_id=manager_id)
                )

        assert ids(await get_leads(client, olga_headers)) == [free.lead_id, own.lead_id]
        assert ids(await get_leads(client, admin_headers)) == [
            other.lead_id,
            free.lead_id,
            own.lead_id,
        ]
        exported = await client.get("/api/v1/leads/export.csv", headers=olga_headers)
        assert [int(row["id"]) for row in parse_csv(exported)] == [free.lead_id, own.lead_id]
        hidden = f"/api/v1/leads/{other.lead_id}"
        assert_error(await client.get(hidden, headers=olga_headers), 404)
        refused = await client.patch(hidden, headers=olga_headers, json={"status": "spam"})
        assert_error(refused, 404)
        shown = await client.get(hidden, headers=admin_headers)
        assert shown.status_code == 200 and shown.json()["status"] == "new"
        changed = await client.patch(
            f"/api/v1/leads/{own.lead_id}", headers=olga_headers, json={"status": "in_work"}
        )
        assert changed.status_code == 200 and changed.json()["status"] == "in_work"
