"""The form cache: submissions that find its entry run out share one read of the form."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import event

from channels.webform.service import FormCache
from storage.db import Database
from storage.errors import NotFound
from tests.channels.webform.conftest import add_form


def count_form_reads(db: Database) -> list[str]:
    """The statements that read channels, as the database runs them."""
    reads: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM channels" in statement:
            reads.append(statement)

    event.listen(db.read_engine.sync_engine, "before_cursor_execute", seen)
    return reads


async def test_concurrent_gets_of_an_expired_form_read_it_once(db: Database) -> None:
    channel = await add_form(db, "shop")
    cache = FormCache(ttl=0.05)
    reads = count_form_reads(db)

    forms = await asyncio.gather(*(cache.get(db, "shop") for _ in range(50)))
    assert {form.channel_id for form in forms} == {channel.id}
    assert len(reads) == 1

    assert (await cache.get(db, "shop")).channel_id == channel.id
    assert len(reads) == 1  # still fresh

    await asyncio.sleep(0.1)  # the entry has run out
    forms = await asyncio.gather(*(cache.get(db, "shop") for _ in range(50)))
    assert {form.channel_id for form in forms} == {channel.id}
    assert len(reads) == 2


async def test_an_unknown_form_is_refused_to_every_waiter_and_read_again_later(
    db: Database,
) -> None:
    cache = FormCache()
    reads = count_form_reads(db)
    outcomes = await asyncio.gather(
        *(cache.get(db, "nowhere") for _ in range(10)), return_exceptions=True
    )
    assert all(isinstance(o, NotFound) and o.code == "unknown_form" for o in outcomes)
    assert len(reads) == 1
    with pytest.raises(NotFound):
        await cache.get(db, "nowhere")
    assert len(reads) == 2  # a refusal is not cached: a form added later is found
