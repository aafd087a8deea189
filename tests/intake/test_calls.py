"""The call journal's state machine on both backends: any order, any repeat, one call."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from intake.calls.book import finish_calls, prepare_calls
from intake.calls.events import (
    CallChannel,
    CallEvent,
    CallEventKind,
    EndCause,
    blocklist_key,
    call_text,
    client_number,
)
from intake.calls.journal import record_call_event
from intake.ingest import IntakeConfig
from storage.db import Database
from storage.models import (
    Call,
    CallDirection,
    ChannelKind,
    Contact,
    Lead,
    Message,
    OutboxEvent,
)
from tests.factories import create_channel

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
CLIENT = "+79123456789"
NOW = T0 + timedelta(minutes=5)


def ringing(call_id: str = "c1", at: int = 0) -> CallEvent:
    return CallEvent(
        CallEventKind.RINGING,
        call_id,
        CallDirection.INBOUND,
        "89123456789",
        "74951234567",
        at=T0 + timedelta(seconds=at),
    )


def answered(call_id: str = "c1", at: int = 5) -> CallEvent:
    return CallEvent(CallEventKind.ANSWERED, call_id, at=T0 + timedelta(seconds=at), agent="101")


def hangup(call_id: str = "c1", at: int = 65, answered: bool | None = None) -> CallEvent:
    cause = None if answered is None else (EndCause.NORMAL if answered else EndCause.CANCEL)
    return CallEvent(
        CallEventKind.ENDED,
        call_id,
        at=T0 + timedelta(seconds=at),
        answered=answered,
        cause=cause,
    )


async def apply(db: Database, channel_id: int, *events: CallEvent) -> None:
    line = CallChannel(channel_id, ChannelKind.TELEPHONY)
    for event in events:
        for attempt in range(5):  # the boundary's retry on a concurrent first event
            try:
                async with db.transaction() as session:
                    book = await prepare_calls(session, [(line, event)], IntakeConfig(), NOW)
                    await record_call_event(session, line, event, IntakeConfig(), book)
                    await finish_calls(book)
                break
            except IntegrityError:
                if attempt == 4:
                    raise


async def count(db: Database, model: type) -> int:
    async with db.read() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def only_call(db: Database) -> Call:
    async with db.read() as session:
        return (await session.scalars(select(Call))).one()


@pytest.fixture
async def line(db: Database) -> int:
    return (await create_channel(db, key="pbx", kind=ChannelKind.TELEPHONY)).id


class TestOrder:
    @pytest.mark.parametrize(
        "order",
        list(itertools.permutations(range(3))),
        ids=lambda order: "-".join(("ring", "answer", "hangup")[i] for i in order),
    )
    async def test_an_answered_call_comes_out_the_same_in_any_order(
        self, db: Database, line: int, order: tuple[int, ...]
    ) -> None:
        events = [ringing(), answered(), hangup()]

        await apply(db, line, *(events[i] for i in order))

        call = await only_call(db)
        assert call.state == "completed"
        assert call.started_at == T0
        assert (call.answered_at, call.ended_at) == (
            T0 + timedelta(seconds=5),
            T0 + timedelta(seconds=65),
        )
        assert (call.wait_seconds, call.talk_seconds) == (5, 60)
        assert (await count(db, Lead), await count(db, Message)) == (1, 1)

    @pytest.mark.parametrize("first", ["ringing", "hangup"])
    async def test_a_missed_call_comes_out_the_same_in_either_order(
        self, db: Database, line: int, first: str
    ) -> None:
        events = [ringing(), hangup(answered=False)]
        await apply(db, line, *(events if first == "ringing" else events[::-1]))

        call = await only_call(db)
        assert (call.state, call.end_reason, call.wait_seconds) == ("missed", "cancel", 65)
        async with db.read() as session:
            message = (await session.scalars(select(Message))).one()
        assert message.text == f"Пропущенный звонок с {CLIENT}"


class TestRepeats:
    async def test_every_event_ten_times_stores_one_call(self, db: Database, line: int) -> None:
        for event in (ringing(), answered(), hangup()):
            await apply(db, line, *[event] * 10)

        assert await count(db, Call) == 1
        assert (await count(db, Contact), await count(db, Lead), await count(db, Message)) == (
            1,
            1,
            1,
        )
        async with db.read() as session:
            topics = (await session.scalars(select(OutboxEvent.topic))).all()
        assert sorted(t for t in topics if t.startswith("call.")) == [
            "call.answered",
            "call.ended",
            "call.ringing",
        ]

    async def test_concurrent_first_events_store_one_call(self, db: Database, line: int) -> None:
        await asyncio.gather(*(apply(db, line, ringing()) for _ in range(6)))

        assert (await count(db, Call), await count(db, Lead), await count(db, Contact)) == (
            1,
            1,
            1,
        )

    async def test_two_calls_of_one_caller_continue_one_conversation(
        self, db: Database, line: int
    ) -> None:
        await apply(db, line, ringing("c1"), hangup("c1", answered=False))
        await apply(db, line, ringing("c2", at=600), answered("c2", at=605))

        async with db.read() as session:
            calls = (await session.scalars(select(Call).order_by(Call.id))).all()
        assert calls[0].conversation_id == calls[1].conversation_id
        assert calls[0].contact_id == calls[1].contact_id
        assert await count(db, Lead) == 1


class TestNumbers:
    @pytest.mark.parametrize(
        ("raw", "expected"),
        [
            ("+7 912 345-67-89", CLIENT),
            ("89123456789", CLIENT),
            ("79123456789", CLIENT),
            ("sip:+79123456789@pbx.example.ru", CLIENT),
            ("493055571600", "+493055571600"),
            ("anonymous", None),
            ("101", None),
            ("", None),
            (None, None),
        ],
    )
    def test_client_number(self, raw: str | None, expected: str | None) -> None:
        assert client_number(raw, "RU") == expected

    def test_blocklist_keeps_what_is_not_a_number_as_it_came(self) -> None:
        assert blocklist_key("Anonymous", "RU") == "anonymous"
        assert blocklist_key("8 912 345 67 89", "RU") == CLIENT

    def test_call_text_in_english(self) -> None:
        call = Call(direction="inbound", state="completed", client_number=CLIENT, talk_seconds=125)
        assert call_text(call, "en") == f"Incoming call from {CLIENT}, talked 2:05"
