"""The workspace's pages over HTTP (the app in-process, both databases): sign-in, CSRF,
visibility and the headers; the browser tests (tests/e2e/test_inbox.py) do the rest."""

from __future__ import annotations

import html
import re
from urllib.parse import urlencode

import httpx
from sqlalchemy import update

from storage.db import Database
from storage.models import Conversation, ManagerRole
from tests.factories import create_channel, create_manager, ingest_message, make_queue

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


async def test_search_lists_visible_matches_with_marked_words_and_a_next_page(
    client: httpx.AsyncClient, hub_db: Database
) -> None:
    await create_manager(hub_db, email="olga@example.ru")
    other = await create_manager(hub_db, email="ivan@example.ru", role=ManagerRole.MANAGER)
    channel = await create_channel(hub_db)
    ids = [
        (
            await ingest_message(
                hub_db,
                channel,
                text=f"Верните деньги <b>за</b> заказ {n}",
                email=f"c{n}@example.ru",
            )
        ).conversation_id
        for n in range(51)
    ]
    await ingest_message(hub_db, channel, text="Спасибо за помощь", email="thanks@example.ru")
    theirs = await ingest_message(hub_db, channel, text="деньги не вернули", email="x@example.ru")
    async with hub_db.transaction() as session:
        await session.execute(
            update(Conversation)
            .where(Conversation.id == theirs.conversation_id)
            .values(assignee_id=other.id)
        )
    await create_manager(hub_db, email="anna@example.ru", role=ManagerRole.MANAGER)
    await signed_in(client, "anna@example.ru")

    page = await client.get("/inbox/search", params={"q": "деньгами"})
    assert page.status_code == 200
    assert 'id="search-q"' in page.text and 'value="деньгами"' in page.text
    views = page.text.split('id="views"', 1)[1].split("</nav>", 1)[0]
    assert 'aria-current="page"' not in views  # no view is the current one
    rows = re.findall(r'<li class="row[^"]*" data-conversation="(\d+)"', page.text)
    # The latest match first, fifty on a page, none of another manager's conversations.
    assert [int(row) for row in rows] == ids[:0:-1]
    assert "<mark>деньги</mark>" in page.text and "&lt;b&gt;за&lt;/b&gt;" in page.text
    quoted = "%D0%B4%D0%B5%D0%BD%D1%8C%D0%B3%D0%B0%D0%BC%D0%B8"
    assert f'href="/inbox/search/c/{ids[50]}?q={quoted}"' in page.text
    more = re.search(r'<li class="more"><a href="([^"]+)"', page.text)
    assert more is not None
    second = await client.get(html.unescape(more.group(1)))
    rows = re.findall(r'<li class="row[^"]*" data-conversation="(\d+)"', second.text)
    assert [int(row) for row in rows] == [ids[0]]
    assert '<li class="more">' not in second.text

    opened = await client.get(f"/inbox/search/c/{ids[3]}", params={"q": "деньгами"})
    assert opened.status_code == 200
    assert f'data-conversation="{ids[3]}"' in opened.text and 'id="timeline"' in opened.text
    assert "<mark>деньги</mark>" in opened.text
    assert '<input type="hidden" name="q" value="деньгами">' in opened.text
    note = await client.post(
        f"/inbox/c/{ids[3]}/messages",
        data={"text": "проверить оплату", "kind": "note", "view": "unassigned", "q": "деньгами"},
        headers={"Origin": HUB},
    )
    assert note.status_code == 303
    assert note.headers["location"] == f"/inbox/search/c/{ids[3]}?q={quoted}"
    hidden = await client.get(f"/inbox/search/c/{theirs.conversation_id}", params={"q": "деньги"})
    assert hidden.status_code == 404


async def test_search_says_in_plain_words_what_is_wrong_with_the_query(
    client: httpx.AsyncClient, hub_db: Database
) -> None:
    await create_manager(hub_db, email="olga@example.ru")
    await signed_in(client, "olga@example.ru")
    empty = await client.get("/inbox/search", params={"q": "  "})
    assert empty.status_code == 200
    assert "Введите слово, имя, почту, телефон или номер заявки, чтобы искать." in empty.text
    marks = await client.get("/inbox/search", params={"q": "?!", "lang": "en"})
    assert "The query has no letters or digits to search for." in marks.text
    long = await client.get("/inbox/search", params={"q": "слово " * 40, "lang": "en"})
    assert "The query is too long: at most 200 characters." in long.text
    cursor = await client.get("/inbox/search", params={"q": "заказ", "after": "nonsense"})
    assert "Ссылка на следующие результаты устарела" in cursor.text
    nothing = await client.get("/inbox/search", params={"q": "бегемот", "lang": "en"})
    assert "Nothing found." in nothing.text


async def test_take_then_close_through_the_page_and_the_history_says_so(
    client: httpx.AsyncClient, hub_db: Database
) -> None:
    olga = await create_manager(hub_db, email="olga@example.ru", name="Ольга")
    channel = await create_channel(hub_db)
    result = await ingest_message(hub_db, channel, text="Нужна помощь", email="c@example.ru")
    conversation = result.conversation_id
    await signed_in(client, "olga@example.ru")
    page = await client.get(f"/inbox/v/unassigned/c/{conversation}")
    assert 'data-action="take"' in page.text and 'data-action="close"' in page.text

    forged = await client.post(
        f"/inbox/c/{conversation}/take", headers={"Origin": "https://evil.example"}
    )
    assert forged.status_code == 403
    taken = await client.post(
        f"/inbox/c/{conversation}/take", data={"view": "unassigned"}, headers={"Origin": HUB}
    )
    assert taken.status_code == 303
    assert taken.headers["location"] == f"/inbox/v/unassigned/c/{conversation}"
    async with hub_db.transaction() as session:
        stored = await session.get(Conversation, conversation)
        assert stored is not None and stored.assignee_id == olga.id
    page = await client.get(f"/inbox/v/mine/c/{conversation}")
    assert 'data-action="take"' not in page.text  # already mine
    assert "История назначений (1)" in page.text and "взят · кем: Ольга" in page.text

    closed = await client.post(
        f"/inbox/c/{conversation}/close", data={"view": "mine"}, headers={"Origin": HUB}
    )
    assert closed.status_code == 303
    page = await client.get(f"/inbox/v/mine/c/{conversation}?lang=en")
    assert "Assignment history (1)" in page.text and "assigned: Ольга · taken" in page.text
    assert 'data-action="close"' not in page.text and 'data-action="take"' not in page.text
    async with hub_db.transaction() as session:
        stored = await session.get(Conversation, conversation)
        assert stored is not None and stored.status == "closed"

    again = await client.post(
        f"/inbox/c/{conversation}/take", data={"view": "mine"}, headers={"Origin": HUB}
    )
    assert again.status_code == 409
    assert '<p class="actions-error" role="alert">Разговор закрыт.</p>' in again.text


async def test_an_action_comes_back_beside_the_same_list_in_its_order_or_search(
    client: httpx.AsyncClient, hub_db: Database
) -> None:
    await create_manager(hub_db, email="olga@example.ru", name="Ольга")
    channel = await create_channel(hub_db)
    first = await ingest_message(hub_db, channel, text="Где счёт?", email="a@example.ru")
    second = await ingest_message(hub_db, channel, text="Где накладная?", email="b@example.ru")
    one, two = first.conversation_id, second.conversation_id
    await signed_in(client, "olga@example.ru")

    # Opened from the list sorted by SLA: the forms carry the order, the answer keeps it.
    page = await client.get(f"/inbox/v/unassigned/c/{one}", params={"sort": "sla"})
    assert '<input type="hidden" name="sort" value="sla">' in page.text
    taken = await client.post(
        f"/inbox/c/{one}/take", data={"view": "unassigned", "sort": "sla"}, headers={"Origin": HUB}
    )
    assert taken.status_code == 303
    assert taken.headers["location"] == f"/inbox/v/unassigned/c/{one}?sort=sla"
    pending = await client.post(
        f"/inbox/c/{one}/pending", data={"view": "mine", "sort": "sla"}, headers={"Origin": HUB}
    )
    assert pending.headers["location"] == f"/inbox/v/mine/c/{one}?sort=sla"
    # A refusal shows the same list in the same order beside the words.
    hidden = update(Conversation).where(Conversation.id == one).values(status="closed")
    async with hub_db.transaction() as session:
        await session.execute(hidden)
    refused = await client.post(
        f"/inbox/c/{one}/pending",
        data={"view": "mine", "sort": "sla"},
        headers={"Origin": HUB, "HX-Request": "true"},
    )
    assert refused.status_code == 200  # htmx swaps only a 2xx answer
    assert '<p class="actions-error" role="alert">Разговор закрыт.</p>' in refused.text
    assert '<option value="sla" selected>' in refused.text
    assert f'href="/inbox/v/mine/c/{one}?sort=sla"' not in refused.text  # closed: not in Mine

    # Opened from a search: the answer goes back beside its results.
    found = await client.get(f"/inbox/search/c/{two}", params={"q": "накладная"})
    assert '<input type="hidden" name="q" value="накладная">' in found.text
    closed = await client.post(
        f"/inbox/c/{two}/close",
        data={"view": "unassigned", "q": "накладная"},
        headers={"Origin": HUB},
    )
    assert closed.headers["location"] == f"/inbox/search/c/{two}?{urlencode({'q': 'накладная'})}"
    again = await client.post(
        f"/inbox/c/{two}/take",
        data={"view": "unassigned", "q": "накладная"},
        headers={"Origin": HUB},
    )
    assert again.status_code == 409 and 'id="search-q"' in again.text
    assert 'value="накладная"' in again.text and "Разговор закрыт." in again.text
    # Without a list's order, the plain address as before.
    plain = await client.post(
        f"/inbox/c/{two}/reopen", data={"view": "status-closed"}, headers={"Origin": HUB}
    )
    assert plain.headers["location"] == f"/inbox/v/status-closed/c/{two}"


async def test_a_manager_may_not_give_away_a_colleagues_conversation(
    client: httpx.AsyncClient, hub_db: Database, admin_headers: dict[str, str]
) -> None:
    olga = await create_manager(hub_db, email="olga@example.ru", name="Ольга")
    ivan = await create_manager(hub_db, email="ivan@example.ru", name="Иван")
    outsider = await create_manager(hub_db, email="petr@example.ru", name="Пётр")
    queue = await make_queue(client, admin_headers, [olga.id, ivan.id])
    channel = await create_channel(hub_db)
    mine = (await ingest_message(hub_db, channel, email="a@example.ru")).conversation_id
    his = (await ingest_message(hub_db, channel, email="b@example.ru")).conversation_id
    async with hub_db.transaction() as session:
        await session.execute(
            update(Conversation)
            .where(Conversation.id.in_([mine, his]))
            .values(queue_id=queue["id"], assignee_id=None)
        )
        await session.execute(
            update(Conversation).where(Conversation.id == his).values(assignee_id=ivan.id)
        )
    await signed_in(client, "olga@example.ru")

    # Ivan's conversation: visible through the queue, but not Olga's to give away.
    page = await client.get(f"/inbox/v/open/c/{his}")
    assert page.status_code == 200 and 'data-action="assign"' not in page.text
    refused = await client.post(
        f"/inbox/c/{his}/assign",
        data={"manager_id": str(olga.id), "view": "open"},
        headers={"Origin": HUB},
    )
    assert refused.status_code == 403
    assert "Это разговор коллеги: передать его другому может только администратор." in (
        refused.text
    )
    async with hub_db.transaction() as session:
        stored = await session.get(Conversation, his)
        assert stored is not None and stored.assignee_id == ivan.id

    # One nobody has: to a member of its queue, yes; to someone outside it, no.
    page = await client.get(f"/inbox/v/open/c/{mine}")
    assert f'<option value="{ivan.id}">Иван</option>' in page.text
    assert f'value="{outsider.id}"' not in page.text
    outside = await client.post(
        f"/inbox/c/{mine}/assign",
        data={"manager_id": str(outsider.id), "view": "open"},
        headers={"Origin": HUB},
    )
    assert outside.status_code == 403 and "не работает в очереди" in outside.text
    given = await client.post(
        f"/inbox/c/{mine}/assign",
        data={"manager_id": str(ivan.id), "view": "open"},
        headers={"Origin": HUB},
    )
    assert given.status_code == 303
    page = await client.get(f"/inbox/v/open/c/{mine}")
    assert "назначен: Иван · вручную · кем: Ольга" in page.text
