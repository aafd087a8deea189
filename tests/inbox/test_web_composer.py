"""The workspace's composer over HTTP (the app in-process, both databases): files with a
reply and their authorised downloads, the size limit, the channels offered, notes whose
@mentions notify the colleague (the bus, and their live stream); the browser tests
(tests/e2e/test_composer.py) do the typing."""

from __future__ import annotations

import dataclasses
import html
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from inbox.web.live import Dispatcher
from intake.inbox import Viewer
from storage.db import Database
from storage.models import Attachment, ChannelKind, Conversation, Manager, ManagerRole, Message
from tests.factories import (
    create_channel,
    create_manager,
    drain,
    ingest_message,
    set_language,
)
from tests.inbox.test_web_pages import HUB, signed_in
from tests.inbox.test_web_stream import opened

PDF = b"%PDF-1.4\n%%EOF\n"


async def _messages(db: Database, conversation_id: int) -> list[Message]:
    async with db.read() as session:
        return list(
            (
                await session.scalars(
                    select(Message)
                    .where(Message.conversation_id == conversation_id)
                    .order_by(Message.id)
                )
            ).all()
        )


async def test_a_reply_takes_files_and_the_timeline_links_them_for_who_may_see(
    client: httpx.AsyncClient, hub_db: Database
) -> None:
    await create_manager(hub_db, email="olga@example.ru", role=ManagerRole.ADMIN)
    await create_manager(hub_db, email="ivan@example.ru", role=ManagerRole.MANAGER)
    mailbox = await create_channel(hub_db, kind=ChannelKind.EMAIL)
    taken = await ingest_message(hub_db, mailbox, email="c@example.ru")
    await signed_in(client, "olga@example.ru")
    sent = await client.post(
        f"/inbox/c/{taken.conversation_id}/messages",
        data={"text": "Счёт и фото", "kind": "reply", "view": "open"},
        files=[
            ("files", ("<img src=x onerror=alert(1)> счёт.pdf", PDF, "application/pdf")),
            ("files", ("box.png", b"\x89PNG\r\n\x1a\nxx", "image/png")),
            ("files", ("", b"", "application/octet-stream")),  # the empty file input
        ],
        headers={"Origin": HUB},
    )
    assert sent.status_code == 303, sent.text
    reply = (await _messages(hub_db, taken.conversation_id))[-1]
    async with hub_db.read() as session:
        files = (
            await session.scalars(
                select(Attachment).where(Attachment.message_id == reply.id).order_by(Attachment.id)
            )
        ).all()
    assert [(f.filename, f.content_type) for f in files] == [
        ("<img src=x onerror=alert(1)> счёт.pdf", "application/pdf"),
        ("box.png", "image/png"),
    ]
    page = await client.get(f"/inbox/v/open/c/{taken.conversation_id}")
    assert f'href="/inbox/a/{files[0].id}"' in page.text
    assert "<img src=x" not in page.text and html.escape("<img src=x") in page.text

    pdf = await client.get(f"/inbox/a/{files[0].id}")
    assert pdf.status_code == 200 and pdf.content == PDF
    # Never shown as a page of the hub: downloaded, under its UTF-8 name.
    assert pdf.headers["content-type"] == "application/octet-stream"
    assert pdf.headers["content-disposition"].startswith("attachment;")
    assert "filename*=UTF-8''%3Cimg%20src%3Dx" in pdf.headers["content-disposition"]
    assert "sandbox" in pdf.headers["content-security-policy"]
    picture = await client.get(f"/inbox/a/{files[1].id}")
    assert picture.headers["content-type"] == "image/png"
    assert picture.headers["content-disposition"].startswith("inline;")

    # A manager who may not see the conversation gets no file, nor a hint it exists.
    await client.post("/logout", headers={"Origin": HUB})
    await signed_in(client, "ivan@example.ru")
    other = await create_manager(hub_db, email="petr@example.ru")
    async with hub_db.transaction() as session:
        conversation = await session.get(Conversation, taken.conversation_id)
        assert conversation is not None
        conversation.assignee_id = other.id
    assert (await client.get(f"/inbox/a/{files[0].id}")).status_code == 404
    assert (await client.get("/inbox/a/999999")).status_code == 404


async def test_a_file_over_the_limit_is_refused_in_the_managers_words(
    client: httpx.AsyncClient, hub_db: Database, app: Any
) -> None:
    manager = await create_manager(hub_db, email="olga@example.ru", role=ManagerRole.ADMIN)
    await set_language(hub_db, manager.id, "en")
    context = app.state.context
    context.intake = dataclasses.replace(context.intake, reply_file_max_bytes=1024)
    mailbox = await create_channel(hub_db, kind=ChannelKind.EMAIL)
    taken = await ingest_message(hub_db, mailbox, email="c@example.ru")
    await signed_in(client, "olga@example.ru")
    page = await client.get(f"/inbox/v/open/c/{taken.conversation_id}")
    assert 'data-file-limit="1024"' in page.text
    refused = await client.post(
        f"/inbox/c/{taken.conversation_id}/messages",
        data={"text": "Большой файл", "kind": "reply", "view": "open"},
        files=[("files", ("big.pdf", b"x" * 1025, "application/pdf"))],
        headers={"Origin": HUB},
    )
    assert refused.status_code == 413
    assert refused.json()["detail"].startswith("The file big.pdf is over")
    assert [m.text for m in await _messages(hub_db, taken.conversation_id)] == [
        "Здравствуйте, хочу заказать"
    ]


async def test_the_composer_offers_the_ways_to_the_client_or_says_there_is_none(
    client: httpx.AsyncClient, hub_db: Database
) -> None:
    manager = await create_manager(hub_db, email="olga@example.ru", role=ManagerRole.ADMIN)
    await set_language(hub_db, manager.id, "en")
    form = await create_channel(hub_db)
    line = await create_channel(hub_db, kind=ChannelKind.TELEPHONY)
    mailbox = await create_channel(hub_db, kind=ChannelKind.EMAIL, title="Sales")
    with_email = await ingest_message(hub_db, form, email="anna@example.ru")
    phone_only = await ingest_message(hub_db, line, phone="+79161234567")
    await signed_in(client, "olga@example.ru")

    page = (await client.get(f"/inbox/v/open/c/{with_email.conversation_id}")).text
    assert f'name="channel_id" value="{mailbox.id}"' in page
    assert "anna@example.ru" in page and "cannot be answered in writing" not in page
    sent = await client.post(
        f"/inbox/c/{with_email.conversation_id}/messages",
        data={"text": "Ответ письмом", "kind": "reply", "channel_id": str(mailbox.id)},
        headers={"Origin": HUB},
    )
    assert sent.status_code == 303, sent.text
    assert (await _messages(hub_db, with_email.conversation_id))[-1].channel_id == mailbox.id

    page = (await client.get(f"/inbox/v/open/c/{phone_only.conversation_id}")).text
    assert "This client cannot be answered in writing" in page
    assert 'value="reply" disabled' in page and 'name="files"' not in page
    refused = await client.post(
        f"/inbox/c/{phone_only.conversation_id}/messages",
        data={"text": "Ответ", "kind": "reply", "channel_id": str(mailbox.id)},
        headers={"Origin": HUB},
    )
    assert refused.status_code == 422 and refused.json()["error"] == "unreachable_channel"


async def test_a_notes_mention_notifies_the_colleague_on_the_bus_and_their_stream(
    app: Any, client: httpx.AsyncClient, hub_db: Database
) -> None:
    olga = await create_manager(hub_db, email="olga@example.ru", name="Ольга")
    await set_language(hub_db, olga.id, "en")
    irina = await create_manager(hub_db, email="irina@example.ru", name="Ирина Петрова")
    boris = await create_manager(hub_db, email="boris@example.ru", name="Борис")
    form = await create_channel(hub_db)
    taken = await ingest_message(hub_db, form, email="c@example.ru", name="Анна")
    await signed_in(client, "olga@example.ru")

    found = await client.get("/api/v1/mentionable-managers", params={"q": "пет"})
    assert found.json() == [{"id": irina.id, "name": "Ирина Петрова"}]

    bus = app.state.context.bus
    dispatcher = Dispatcher(bus, hub_db)
    stream = await opened(dispatcher, "inbox", Viewer(irina.id, False))
    await stream.next()  # hello: subscribed
    async with (
        bus.subscribe(f"manager.{irina.id}") as for_irina,
        bus.subscribe(f"manager.{boris.id}") as for_boris,
    ):
        sent = await client.post(
            f"/inbox/c/{taken.conversation_id}/messages",
            # Boris's id is only the page's suggestion: his name is not in the note.
            data={
                "text": "@Ирина Петрова, клиент просит скидку",
                "kind": "note",
                "mentions": f"{irina.id},{boris.id}",
            },
            headers={"Origin": HUB},
        )
        assert sent.status_code == 303, sent.text
        await drain(app)
        told = await for_irina.get(timeout=2)
        assert told is not None
        assert told.payload["kind"] == "mentioned"
        assert told.payload["title"] == (
            f"Ольга упоминает вас в заметке к разговору #{taken.conversation_id}"
        )
        assert told.payload["title_en"] == (
            f"Ольга mentioned you in a note on conversation #{taken.conversation_id}"
        )
        assert told.payload["data"]["note"] == "@Ирина Петрова, клиент просит скидку"
        assert await for_boris.get(timeout=0.3) is None
    note = (await _messages(hub_db, taken.conversation_id))[-1]
    assert note.direction == "note" and note.meta == {"mentions": [irina.id]}

    # Irina's open tab hears it as a `notification`, after the note's own change.
    try:
        chunks: list[str] = []
        while not any("event: notification" in chunk for chunk in chunks):
            chunks.append(await stream.next())
        assert "mentioned" in chunks[-1]
    finally:
        await dispatcher.close()


@pytest.mark.parametrize("kind", ["reply", "note"])
async def test_an_empty_text_is_refused_whatever_the_kind(
    client: httpx.AsyncClient, hub_db: Database, kind: str
) -> None:
    await create_manager(hub_db, email="olga@example.ru", role=ManagerRole.ADMIN)
    mailbox = await create_channel(hub_db, kind=ChannelKind.EMAIL)
    taken = await ingest_message(hub_db, mailbox, email="c@example.ru")
    await signed_in(client, "olga@example.ru")
    refused = await client.post(
        f"/inbox/c/{taken.conversation_id}/messages",
        data={"text": "   ", "kind": kind},
        headers={"Origin": HUB},
    )
    assert refused.status_code == 422


async def test_a_canned_reply_is_filled_only_for_a_conversation_one_may_see(
    client: httpx.AsyncClient, hub_db: Database
) -> None:
    await create_manager(hub_db, email="ivan@example.ru", role=ManagerRole.MANAGER)
    other = await create_manager(hub_db, email="petr@example.ru")
    form = await create_channel(hub_db)
    mine = await ingest_message(hub_db, form, email="a@example.ru", name="Анна")
    theirs = await ingest_message(hub_db, form, email="b@example.ru", name="Борис Секретов")
    async with hub_db.transaction() as session:
        conversation = await session.get(Conversation, theirs.conversation_id)
        assert conversation is not None
        conversation.assignee_id = other.id
    await signed_in(client, "ivan@example.ru")
    made = await client.post(
        "/api/v1/canned-replies",
        json={"shortcut": "hi", "title": "Привет", "body": "Здравствуйте, {client_name}!"},
        headers={"Origin": HUB},
    )
    assert made.status_code == 201, made.text
    reply_id = made.json()["id"]
    shown = await client.get(
        f"/api/v1/canned-replies/{reply_id}/text", params={"conversation_id": mine.conversation_id}
    )
    assert shown.json() == {"text": "Здравствуйте, Анна!"}
    hidden = await client.get(
        f"/api/v1/canned-replies/{reply_id}/text",
        params={"conversation_id": theirs.conversation_id},
    )
    assert hidden.status_code == 404 and "Секретов" not in hidden.text


async def test_a_known_address_without_a_mailbox_to_write_from_is_said_so(
    client: httpx.AsyncClient, hub_db: Database
) -> None:
    manager = await create_manager(hub_db, email="olga@example.ru", role=ManagerRole.ADMIN)
    await set_language(hub_db, manager.id, "en")
    form = await create_channel(hub_db)
    taken = await ingest_message(hub_db, form, email="anna@example.ru")
    await signed_in(client, "olga@example.ru")

    page = (await client.get(f"/inbox/v/open/c/{taken.conversation_id}")).text
    assert "their address is known, but no mailbox or bot is set up" in page
    assert "no email address or Telegram is known" not in page
    assert 'value="reply" disabled' in page


async def test_a_mention_of_a_manager_deactivated_since_stays_marked(
    client: httpx.AsyncClient, hub_db: Database
) -> None:
    await create_manager(hub_db, email="olga@example.ru", name="Ольга")
    irina = await create_manager(hub_db, email="irina@example.ru", name="Ирина Петрова")
    form = await create_channel(hub_db)
    taken = await ingest_message(hub_db, form, email="c@example.ru", name="Анна")
    await signed_in(client, "olga@example.ru")
    sent = await client.post(
        f"/inbox/c/{taken.conversation_id}/messages",
        data={"text": "@Ирина Петрова, проверь <b>оплату</b>", "kind": "note",
              "mentions": str(irina.id)},
        headers={"Origin": HUB},
    )  # fmt: skip
    assert sent.status_code == 303, sent.text
    marked = '<mark class="mention">@Ирина Петрова</mark>, проверь &lt;b&gt;оплату&lt;/b&gt;'
    page = await client.get(f"/inbox/v/unassigned/c/{taken.conversation_id}")
    assert marked in page.text
    async with hub_db.transaction() as session:
        await session.execute(update(Manager).where(Manager.id == irina.id).values(is_active=False))
    page = await client.get(f"/inbox/v/unassigned/c/{taken.conversation_id}")
    assert marked in page.text  # written when she was a colleague: still a mention
    # She may no longer be mentioned: a new note names her as plain text.
    again = await client.post(
        f"/inbox/c/{taken.conversation_id}/messages",
        data={"text": "@Ирина Петрова ушла", "kind": "note", "mentions": str(irina.id)},
        headers={"Origin": HUB},
    )
    assert again.status_code == 303
    page = await client.get(f"/inbox/v/unassigned/c/{taken.conversation_id}")
    assert page.text.count('<mark class="mention">') == 1
    assert '<div class="text">@Ирина Петрова ушла</div>' in page.text
