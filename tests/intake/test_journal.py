"""intake.journal: cursors, CSV building, case variants and services on both backends."""

from __future__ import annotations

import csv
import io
from datetime import datetime

import pytest
from sqlalchemy import select, update

from intake.journal import (
    Actor,
    LeadFilters,
    change_lead_status,
    decode_cursor,
    encode_cursor,
    iter_leads_csv,
    list_leads,
)
from intake.journal_repository import spellings
from intake.visibility import Viewer
from storage.db import Database
from storage.errors import InvalidInput, NotFound
from storage.models import Conversation, OutboxEvent
from tests.factories import create_channel, create_manager, ingest_message


class TestCursor:
    def test_round_trip(self) -> None:
        cursor = encode_cursor("lead", 12345)
        assert "12345" not in cursor
        assert decode_cursor("lead", cursor) == 12345

    @pytest.mark.parametrize("cursor", ["", "!!!", "bGVhZDp4", "Y29udGFjdDox", "bGVhZDotMQ", "é"])
    def test_foreign_cursors_are_refused(self, cursor: str) -> None:
        # bGVhZDp4 = "lead:x", Y29udGFjdDox = "contact:1", bGVhZDotMQ = "lead:-1"
        with pytest.raises(InvalidInput) as caught:
            decode_cursor("lead", cursor)
        assert caught.value.code == "invalid_cursor"


class TestSpellings:
    def test_cyrillic_variants(self) -> None:
        assert set(spellings("иван петров")) >= {
            "иван петров",
            "ИВАН ПЕТРОВ",
            "Иван петров",
            "Иван Петров",
        }

    def test_no_duplicates(self) -> None:
        assert spellings("123") == ["123"]


class TestListLeads:
    @pytest.mark.parametrize("limit", [0, 201])
    async def test_limit_bounds(self, db: Database, limit: int) -> None:
        async with db.read() as session:
            with pytest.raises(InvalidInput):
                await list_leads(session, LeadFilters(), None, limit)

    async def test_naive_dates_are_refused(self, db: Database) -> None:
        async with db.read() as session:
            with pytest.raises(InvalidInput):
                await list_leads(session, LeadFilters(created_from=datetime(2026, 1, 1)))


class TestChangeLeadStatus:
    async def test_emits_event_once(self, db: Database) -> None:
        channel = await create_channel(db)
        result = await ingest_message(db, channel, email="a@example.ru")
        assert result.lead_id is not None
        for _ in range(2):  # the second call changes nothing
            async with db.transaction() as session:
                lead = await change_lead_status(session, result.lead_id, "spam", Actor(token_id=7))
        assert lead.status == "spam"
        async with db.read() as session:
            events = (
                await session.scalars(
                    select(OutboxEvent).where(OutboxEvent.topic == "lead.status_changed")
                )
            ).all()
        assert [e.payload for e in events] == [
            {
                "lead_id": result.lead_id,
                "from": "new",
                "to": "spam",
                "actor": {"manager_id": None, "token_id": 7},
            }
        ]

    async def test_unknown_lead(self, db: Database) -> None:
        with pytest.raises(NotFound):
            async with db.transaction() as session:
                await change_lead_status(session, 404, "spam", Actor())


class TestIterLeadsCsv:
    async def test_pages_stream_without_gaps(self, db: Database) -> None:
        channel = await create_channel(db, key="site")
        ids = [
            (
                await ingest_message(db, channel, email=f"c{i}@example.ru", text=f"заявка {i}")
            ).lead_id
            for i in range(5)
        ]
        chunks = [chunk async for chunk in iter_leads_csv(db.read, LeadFilters(), page_size=2)]
        # BOM and header, then one chunk per page: 2 + 2 + 1.
        assert len(chunks) == 4
        assert chunks[0].startswith("\ufeffid,created_at,")
        rows = list(csv.DictReader(io.StringIO("".join(chunks).lstrip("\ufeff"))))
        assert [int(row["id"]) for row in rows] == sorted(ids, reverse=True)  # type: ignore[type-var]

    async def test_a_viewers_rows_in_the_callers_columns_and_separator(self, db: Database) -> None:
        channel = await create_channel(db, key="site")
        manager = await create_manager(db)
        other = await create_manager(db)
        results = [await ingest_message(db, channel, name=f"=Клиент {i}; «{i}»") for i in range(5)]
        async with db.transaction() as session:
            await session.execute(
                update(Conversation)
                .where(Conversation.id == results[1].conversation_id)
                .values(assignee_id=other.id)
            )
        chunks = [
            chunk
            async for chunk in iter_leads_csv(
                db.read,
                LeadFilters(),
                page_size=2,
                viewer=Viewer(manager.id),
                header=["Номер", "-Имя"],
                cells=lambda row: [row.lead.id, row.contact_name],
                delimiter=";",
            )
        ]
        assert chunks[0] == "\ufeffНомер;'-Имя\r\n"
        rows = list(csv.reader(io.StringIO("".join(chunks[1:])), delimiter=";"))
        # Newest first, without the lead of another manager's conversation.
        expected = [[str(r.lead_id), f"'=Клиент {i}; «{i}»"] for i, r in enumerate(results)]
        del expected[1]
        assert rows == expected[::-1]

    async def test_empty_journal_is_just_the_header(self, db: Database) -> None:
        chunks = [chunk async for chunk in iter_leads_csv(db.read, LeadFilters())]
        assert chunks == [
            "\ufeffid,created_at,status,source,channel,title,contact_name,email,"
            "phone,utm_source,utm_medium,utm_campaign,utm_term,utm_content,"
            "referrer,assignee\r\n"
        ]
