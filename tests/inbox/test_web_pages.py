"""The workspace's pages over HTTP (the app in-process, both databases): sign-in, CSRF,
visibility and the headers; the browser tests (tests/e2e/test_inbox.py) do the rest."""

from __future__ import annotations

import httpx
from sqlalchemy import update

from storage.db import Database
from storage.models import Conversation, ManagerRole
from tests.factories import create_channel, create_manager, ingest_message

PASSWORD = "correct horse battery staple"
HUB = "http://hub.test"


async def signed_in(client: httpx.AsyncClient, email: str) -> None:
    response = await client.post(
        "/login", data={"email": email, "password": PASSWORD}, headers={"Origin": HUB}
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/inbox"


async def test_pages_need_a_session_and_carry_a_strict_csp(
    client: httpx.AsyncClient, hub_db: Database
) -> None:
    await create_manager(hub_db, email="olga@example.ru")
    assert (await client.get("/")).headers["location"] == "/login"
    assert (await client.get("/inbox/v/open")).headers["location"] == "/login"
    login = await client.get("/login", headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert "Sign in to omnihub" in login.text
    csp = login.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "frame-ancestors 'none'" in csp
    # No inline script: every script element loads a file of the hub.
    assert login.text.count("<script") == login.text.count('<script src="/static/inbox/')

    wrong = await client.post(
        "/login", data={"email": "olga@example.ru", "password": "nope"}, headers={"Origin": HUB}
    )
    assert wrong.status_code == 401 and "Неверная почта или пароль." in wrong.text
    cross = await client.post(
        "/login",
        data={"email": "olga@example.ru", "password": PASSWORD},
        headers={"Origin": "https://evil.example"},
    )
    assert cross.status_code == 403

    await signed_in(client, "olga@example.ru")
    assert (await client.get("/")).headers["location"] == "/inbox"
    page = await client.get("/inbox/v/unassigned")
    assert page.status_code == 200 and 'id="workspace"' in page.text
    assert (await client.get("/inbox/v/nonsense")).status_code == 404


async def test_logout_is_a_csrf_checked_post_that_ends_the_session(
    client: httpx.AsyncClient, hub_db: Database
) -> None:
    await create_manager(hub_db, email="olga@example.ru")
    await signed_in(client, "olga@example.ru")
    forged = await client.post("/logout", headers={"Origin": "https://evil.example"})
    assert forged.status_code == 403
    assert (await client.get("/inbox/v/open")).status_code == 200
    cookie = client.cookies["omnihub_session"]
    done = await client.post("/logout", headers={"Origin": HUB})
    assert done.status_code == 303 and done.headers["location"] == "/login"
    client.cookies.set("omnihub_session", cookie)  # the old cookie, replayed
    assert (await client.get("/inbox/v/open")).headers["location"] == "/login"


async def test_a_manager_cannot_open_or_answer_what_they_may_not_see(
    client: httpx.AsyncClient, hub_db: Database
) -> None:
    await create_manager(hub_db, email="olga@example.ru")
    other = await create_manager(hub_db, email="ivan@example.ru", role=ManagerRole.MANAGER)
    channel = await create_channel(hub_db)
    result = await ingest_message(hub_db, channel, text="<b>Привет</b>", email="c@example.ru")
    async with hub_db.transaction() as session:
        await session.execute(
            update(Conversation)
            .where(Conversation.id == result.conversation_id)
            .values(assignee_id=other.id)
        )
    await signed_in(client, "olga@example.ru")
    hidden = await client.get(f"/inbox/v/open/c/{result.conversation_id}")
    assert hidden.status_code == 404
    reply = await client.post(
        f"/inbox/c/{result.conversation_id}/messages",
        data={"text": "ответ", "kind": "reply", "view": "open"},
        headers={"Origin": HUB},
    )
    assert reply.status_code == 404
    listing = await client.get("/inbox/v/open")
    assert f'data-conversation="{result.conversation_id}"' not in listing.text


async def test_markup_in_names_and_texts_is_shown_as_text(
    client: httpx.AsyncClient, hub_db: Database
) -> None:
    await create_manager(hub_db, email="olga@example.ru", role=ManagerRole.ADMIN)
    channel = await create_channel(hub_db)
    result = await ingest_message(
        hub_db,
        channel,
        text='<img src=x onerror="alert(1)">',
        email="c@example.ru",
        name="<script>alert(2)</script>",
    )
    await signed_in(client, "olga@example.ru")
    page = await client.get(f"/inbox/v/open/c/{result.conversation_id}")
    assert page.status_code == 200
    assert "<script>alert(2)</script>" not in page.text
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in page.text
    assert '<img src=x onerror="alert(1)">' not in page.text
