"""Filing claims through intake from any channel: numbers, idempotency, lifecycle rules."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from intake.claims.service import ClaimIn, change_status, file_claim, rate_claim
from storage.db import Database
from storage.errors import Conflict, InvalidInput
from storage.models import ChannelKind, Lead
from tests.factories import create_channel


def _claim(channel_id: int, n: int, **changes: object) -> ClaimIn:
    values: dict[str, object] = {
        "channel_id": channel_id,
        "channel_kind": ChannelKind.EMAIL,
        "external_id": f"mail-{n}",
        "reason": "billing",
        "description": "Дважды списали оплату за заказ",
        "email": f"client{n}@example.ru",
    }
    values.update(changes)
    return ClaimIn(**values)  # type: ignore[arg-type]


async def test_concurrent_filings_get_consecutive_numbers(db: Database) -> None:
    channel = await create_channel(db, kind=ChannelKind.EMAIL)

    async def one(n: int) -> str:
        for _ in range(5):
            try:
                async with db.transaction() as session:
                    return (await file_claim(session, _claim(channel.id, n))).claim.number
            except Exception:  # a lost race on SQLite's lock or a PostgreSQL retry
                await asyncio.sleep(0.01)
        raise AssertionError("not filed")

    numbers = await asyncio.gather(*(one(n) for n in range(12)))

    year = datetime.now(UTC).year
    assert sorted(numbers) == [f"CLM-{year}-{i:06d}" for i in range(1, 13)]


async def test_filing_is_idempotent_and_opens_a_claim_lead(db: Database) -> None:
    channel = await create_channel(db, kind=ChannelKind.EMAIL)
    async with db.transaction() as session:
        filed = await file_claim(session, _claim(channel.id, 1, order_ref="  A-7  "))
    async with db.transaction() as session:
        again = await file_claim(session, _claim(channel.id, 1))
        lead = await session.get(Lead, filed.claim.lead_id)
    assert again.duplicate and again.claim.id == filed.claim.id
    assert lead is not None and lead.kind == "claim" and lead.source == "email"
    assert filed.claim.order_ref == "A-7" and filed.claim.email == "client1@example.ru"


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"reason": "weather"}, "invalid_reason"),
        ({"description": "   "}, "empty_description"),
        ({"email": None}, "no_contact"),
        ({"phone": "12"}, "invalid_phone"),
    ],
)
async def test_invalid_claims_are_refused(
    db: Database, changes: dict[str, object], code: str
) -> None:
    channel = await create_channel(db, kind=ChannelKind.EMAIL)
    with pytest.raises(InvalidInput) as refused:
        async with db.transaction() as session:
            await file_claim(session, _claim(channel.id, 1, **changes))
    assert refused.value.code == code


async def test_lifecycle_rules(db: Database) -> None:
    channel = await create_channel(db, kind=ChannelKind.EMAIL)
    async with db.transaction() as session:
        claim = (await file_claim(session, _claim(channel.id, 1))).claim
    async with db.transaction() as session:
        with pytest.raises(Conflict):
            await rate_claim(session, claim.id, contact_id=claim.contact_id, rating=5)
        await change_status(
            session, claim.id, "rejected", manager_id=None, resolution="Оплата одна"
        )
    async with db.transaction() as session:
        with pytest.raises(Conflict):
            await change_status(session, claim.id, "in_review", manager_id=None)
