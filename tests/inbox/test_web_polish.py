"""Finishing touches of the workspace over HTTP: a conversation's claims linked from its
header (and back), the top bar's button for the shortcuts, a note's @mentions marked, and
SLA rows that move between "due soon" and "breached" as time passes."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select

from hub.settings import Settings
from inbox.web.live import Dispatcher
from intake.visibility import Viewer
from storage.db import Database
from storage.models import ChannelKind, Conversation, OutboxEvent
from tests.factories import (
    create_channel,
    create_claim,
    create_manager,
    default_queue,
    drain,
    go_online,
    ingest_message,
    manager_with_headers,
    post_form,
    set_language,
)
from tests.inbox.test_web_pages import HUB, signed_in
from tests.inbox.test_web_stream import Reader, opened


async def test_a_conversation_links_to_its_claim_and_the_claim_back(
    client: httpx.AsyncClient, hub_db: Database
) -> None:
    await create_manager(hub_db, email="olga@example.ru")
    channel = await create_channel(hub_db, kind=ChannelKind.EMAIL)
    claim = await create_claim(hub_db, channel)
    plain = await ingest_message(hub_db, channel, email="other@example.ru", text="Просто вопрос")
    assert claim.conversation_id is not None
    await signed_in(client, "olga@example.ru")

    page = await client.get(f"/inbox/v/open/c/{claim.conversation_id}")
    assert page.status_code == 200
    head = page.text.split('class="pane-head conv-head"', 1)[1].split("</header>", 1)[0]
    assert re.findall(r'<a href="(/claims/[^"]+)"[^>]*>([^<]+)</a>', head) == [
        (f"/claims/{claim.number}", f"Претензия {claim.number}")
    ]
    back = await client.get(f"/claims/{claim.number}")
    assert f'href="/inbox/v/open/c/{claim.conversation_id}"' in back.text

    without = await client.get(f"/inbox/v/open/c/{plain.conversation_id}")
    assert without.status_code == 200 and "/claims/CLM-" not in without.text


async def test_the_top_bar_has_a_labelled_button_for_the_shortcuts(
    client: httpx.AsyncClient, hub_db: Database
) -> None:
    olga = await create_manager(hub_db, email="olga@example.ru")
    await set_language(hub_db, olga.id, "en")
    await signed_in(client, "olga@example.ru")
    page = await client.get("/inbox/v/open")
    button = re.search(r"<button [^>]*data-keys-open[^>]*>", page.text)
    assert button is not None
    assert 'aria-label="Keyboard shortcuts"' in button.group(0)
    assert 'aria-controls="keys-help"' in button.group(0)
    assert 'id="keys-help"' in page.text  # the dialog it opens
    # A page without the shortcuts' dialog has no button for it.
    claims = await client.get("/claims")
    assert claims.status_code == 200 and "data-keys-open" not in claims.text


async def test_a_notes_mentions_are_marked_and_markup_stays_text(
    client: httpx.AsyncClient, hub_db: Database
) -> None:
    await create_manager(hub_db, email="olga@example.ru", name="Ольга")
    irina = await create_manager(hub_db, email="irina@example.ru", name="Ирина Петрова")
    await create_manager(hub_db, email="b@example.ru", name="<b>Боб</b>")
    form = await create_channel(hub_db)
    taken = await ingest_message(hub_db, form, email="c@example.ru", text="@Ирина Петрова клиент")
    await signed_in(client, "olga@example.ru")
    note = "@ирина петрова и @<b>Боб</b>, <script>alert(1)</script> @Ольга"
    sent = await client.post(
        f"/inbox/c/{taken.conversation_id}/messages",
        data={"text": note, "kind": "note", "mentions": str(irina.id)},
        headers={"Origin": HUB},
    )
    assert sent.status_code == 303, sent.text
    page = (await client.get(f"/inbox/v/open/c/{taken.conversation_id}")).text
    marked = re.findall(r'<mark class="mention">(.*?)</mark>', page)
    assert marked == ["@ирина петрова", "@&lt;b&gt;Боб&lt;/b&gt;", "@Ольга"], marked
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    # The client's own message is never marked, whatever it says.
    assert page.count('<mark class="mention">') == 3


async def _sla_ticks(db: Database, conversation_id: int) -> list[tuple[str, datetime]]:
    async with db.read() as session:
        rows = await session.scalars(
            select(OutboxEvent)
            .where(OutboxEvent.topic == "conversation.sla_clock")
            .order_by(OutboxEvent.due_at)
        )
        return [
            (row.payload["at"], row.due_at)
            for row in rows
            if row.payload["conversation_id"] == conversation_id
        ]


async def _first_due(db: Database, conversation_id: int) -> datetime:
    async with db.read() as session:
        conversation = await session.get(Conversation, conversation_id)
        assert conversation is not None and conversation.first_response_due_at is not None
        return conversation.first_response_due_at


async def test_an_sla_target_ticks_an_hour_before_and_when_it_falls_due(
    app: Any, client: httpx.AsyncClient, hub_db: Database, admin_headers: dict[str, str]
) -> None:
    settings = Settings()
    anna, anna_headers = await manager_with_headers(hub_db, name="Анна")
    await default_queue(client, admin_headers, [anna.id], sla={"normal": {"first_response": 7200}})
    await go_online(client, anna_headers)
    conversation_id = await post_form(client)
    await drain(app, settings=settings)
    due = await _first_due(hub_db, conversation_id)
    assert await _sla_ticks(hub_db, conversation_id) == [
        ("soon", due - timedelta(hours=1)),
        ("due", due),
    ]

    bus = app.state.context.bus
    async with bus.subscribe("conversation.sla_clock") as ticks:
        await drain(app, settings=settings)  # not yet: nothing ticks
        assert await ticks.get(timeout=0.3) is None
        await drain(app, ahead=timedelta(minutes=61), settings=settings)
        soon = await ticks.get(timeout=2)
        assert soon is not None and soon.payload["at"] == "soon"
        assert soon.payload["conversation_id"] == conversation_id
        # Done once: draining again (a retry, another worker) ticks nothing more.
        await drain(app, ahead=timedelta(minutes=61), settings=settings)
        assert await ticks.get(timeout=0.3) is None


async def test_a_row_moves_to_breached_live_when_its_target_falls_due(
    app: Any, client: httpx.AsyncClient, hub_db: Database, admin_headers: dict[str, str]
) -> None:
    settings = Settings()
    anna, anna_headers = await manager_with_headers(hub_db, name="Анна")
    await default_queue(client, admin_headers, [anna.id], sla={"normal": {"first_response": 2}})
    await go_online(client, anna_headers)
    conversation_id = await post_form(client)
    await drain(app, settings=settings)
    due = await _first_due(hub_db, conversation_id)
    # Already within the "due soon" window when it was set: only the tick at the due time.
    assert [at for at, _ in await _sla_ticks(hub_db, conversation_id)] == ["due"]

    dispatcher = Dispatcher(app.state.context.bus, hub_db)
    stream = await opened(dispatcher, "inbox", Viewer(anna.id))
    await stream.next()  # hello: subscribed
    try:
        await asyncio.sleep(max(0.0, (due - datetime.now(due.tzinfo)).total_seconds()) + 0.2)
        await drain(app, settings=settings)  # the real clock, no time travel
        seen: list[dict[str, Any]] = []
        while not any(change["topic"] == "conversation.sla_clock" for change in seen):
            chunk = await stream.next()
            if chunk.startswith("id:") and "event: change" in chunk:
                seen.append(json.loads(chunk.split("data: ", 1)[1]))
        [tick] = [change for change in seen if change["topic"] == "conversation.sla_clock"]
        assert tick["conversation_id"] == conversation_id
        assert "sla-breached" in tick["views"] and "sla-soon" not in tick["views"]
    finally:
        await dispatcher.close()


async def _next_event(stream: Reader, kind: str) -> dict[str, Any]:
    while True:
        chunk = await stream.next()
        if f"event: {kind}\n" in chunk:
            parsed: dict[str, Any] = json.loads(chunk.split("data: ", 1)[1])
            return parsed


async def test_open_contact_panels_hear_an_edit_and_a_merge_made_elsewhere(
    app: Any, client: httpx.AsyncClient, hub_db: Database
) -> None:
    olga = await create_manager(hub_db, email="olga@example.ru")
    mailbox = await create_channel(hub_db, kind=ChannelKind.EMAIL)
    form = await create_channel(hub_db)
    by_mail = await ingest_message(hub_db, mailbox, email="anna@example.ru", name="Анна К.")
    by_form = await ingest_message(hub_db, form, phone="+79123456789", name="Анна")
    await ingest_message(hub_db, form, email="anna@example.ru", phone="+79123456789")
    await signed_in(client, "olga@example.ru")
    dispatcher = Dispatcher(app.state.context.bus, hub_db)
    stream = await opened(dispatcher, "inbox", Viewer(olga.id))
    await stream.next()  # hello: subscribed
    try:
        base = f"/inbox/contacts/{by_mail.contact_id}"
        saved = await client.post(base, data={"name": "Анна Котова"}, headers={"Origin": HUB})
        assert saved.status_code in (200, 303), saved.text
        await drain(app)
        assert await _next_event(stream, "contact") == {"contact_id": by_mail.contact_id}

        merged = await client.post(
            f"{base}/merge",
            data={"other_contact_id": by_form.contact_id, "view": "open"},
            headers={"Origin": HUB},
        )
        assert merged.status_code == 303, merged.text
        await drain(app)
        assert await _next_event(stream, "contact") == {
            "contact_id": by_mail.contact_id,
            "merged_contact_id": by_form.contact_id,
        }
    finally:
        await dispatcher.close()
