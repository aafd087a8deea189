"""The calls page and the ringing call's card over HTTP (the app in-process, both databases):
callbacks overdue first, marking one done, who sees what, CSRF and hostile names; the
browser test (tests/e2e/test_calls_page.py) does the pop-up itself."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from storage.models import Call, Contact, Conversation, Manager, ManagerRole, Task, TaskStatus
from storage.types import utcnow
from tests.channels.telephony.conftest import PhoneHub
from tests.factories import create_manager, create_token, make_queue
from tests.inbox.test_web_stream import data, open_stream, served
from tests.intake.test_calls_desk import missed_calls

PASSWORD = "correct horse battery staple"
HUB = "http://hub.test"


@pytest.fixture
async def hub(app: Any, client: httpx.AsyncClient) -> PhoneHub:
    token, _row = await create_token(app.state.context.db, name="operator")
    phones = PhoneHub(app, client, {"Authorization": f"Bearer {token}"})
    await phones.line("pbx", "generic")
    return phones


async def signed_in(client: httpx.AsyncClient, email: str) -> str:
    """Sign in; the page's CSRF token."""
    response = await client.post(
        "/login", data={"email": email, "password": PASSWORD}, headers={"Origin": HUB}
    )
    assert response.status_code == 303, response.text
    page = await client.get("/calls")
    assert page.status_code == 200, page.text
    found = re.search(r'<meta name="csrf-token" content="([0-9a-f]+)">', page.text)
    assert found is not None
    return found.group(1)


async def missed(hub: PhoneHub, call_id: str, number: str) -> None:
    for event, extra in (("newCall", {}), ("hangup", {"cause": "cancel"})):
        fields: dict[str, Any] = {"event": event, "callId": call_id, "direction": "in"}
        fields.update({"from": number, **extra})
        response = await hub.generic("pbx", **fields)
        assert response.status_code == 200, response.text


async def task_of(hub: PhoneHub, phone: str) -> Task:
    async with hub.db.read() as session:
        return (await session.scalars(select(Task).where(Task.phone == phone))).one()


async def due_in(hub: PhoneHub, phone: str, minutes: int) -> int:
    task = await task_of(hub, phone)
    async with hub.db.transaction() as session:
        await session.execute(
            update(Task)
            .where(Task.id == task.id)
            .values(due_at=utcnow() + timedelta(minutes=minutes))
        )
    return task.id


def task_ids(page: str) -> list[int]:
    return [int(i) for i in re.findall(r'data-task="(\d+)"', page)]


class TestCallbacks:
    async def test_overdue_first_then_by_due_time(
        self, hub: PhoneHub, client: httpx.AsyncClient
    ) -> None:
        await create_manager(hub.db, email="olga@example.ru")
        await missed(hub, "c-1", "+79123456701")
        await missed(hub, "c-2", "+79123456702")
        await missed(hub, "c-3", "+79123456703")
        await missed(hub, "c-4", "+79123456702")  # the same number again: one callback
        later = await due_in(hub, "+79123456701", 30)
        late = await due_in(hub, "+79123456702", -10)
        latest = await due_in(hub, "+79123456703", -60)
        await signed_in(client, "olga@example.ru")

        page = await client.get("/calls?lang=en")

        assert page.status_code == 200
        assert task_ids(page.text) == [latest, late, later]
        rows = page.text.split('data-task="')[1:]
        assert ["Overdue" in row for row in rows] == [True, True, False]
        assert "+7 912 345-67-02" in rows[1] and "missed 2 times" in rows[1]
        # The recent calls below, newest first, the missed ones marked.
        recent = page.text.split('id="recent-calls"')[1]
        assert (
            recent.count('<span class="call-state">missed</span>') == 4
            and "+7 912 345-67-03" in recent
        )

    async def test_mark_done_leaves_the_open_list_once(
        self, hub: PhoneHub, client: httpx.AsyncClient
    ) -> None:
        olga = await create_manager(hub.db, email="olga@example.ru")
        await missed(hub, "c-1", "+79123456701")
        task = await task_of(hub, "+79123456701")
        csrf = await signed_in(client, "olga@example.ru")

        done = await client.post(f"/calls/tasks/{task.id}/done", data={"csrf_token": csrf})

        assert done.status_code == 303 and done.headers["location"] == "/calls"
        closed = await task_of(hub, "+79123456701")
        assert (closed.status, closed.closed_by_manager_id) == (TaskStatus.DONE, olga.id)
        page = await client.get("/calls")
        assert task_ids(page.text) == []
        again = await client.post(
            f"/calls/tasks/{task.id}/done", data={"csrf_token": csrf}, headers={"Origin": HUB}
        )
        assert again.status_code == 409
        assert "Этот перезвон уже закрыт." in again.text

    async def test_a_post_without_the_token_or_from_elsewhere_is_refused(
        self, hub: PhoneHub, client: httpx.AsyncClient
    ) -> None:
        await create_manager(hub.db, email="olga@example.ru")
        await missed(hub, "c-1", "+79123456701")
        task = await task_of(hub, "+79123456701")
        csrf = await signed_in(client, "olga@example.ru")

        bare = await client.post(f"/calls/tasks/{task.id}/done", data={})
        forged = await client.post(
            f"/calls/tasks/{task.id}/done",
            data={"csrf_token": csrf},
            headers={"Origin": "https://evil.example"},
        )
        wrong = await client.post(f"/calls/tasks/{task.id}/done", data={"csrf_token": "0" * 64})

        assert [r.status_code for r in (bare, forged, wrong)] == [403, 403, 403]
        assert (await task_of(hub, "+79123456701")).status == TaskStatus.OPEN

    async def test_more_callbacks_follow_a_keyset_page_at_a_time(
        self, hub: PhoneHub, client: httpx.AsyncClient
    ) -> None:
        await create_manager(hub.db, email="olga@example.ru")
        await missed_calls(hub.db, 52, 0)
        await signed_in(client, "olga@example.ru")

        first = await client.get("/calls?lang=en")
        assert first.status_code == 200
        callbacks = first.text.split('id="recent-calls"')[0]
        shown = task_ids(callbacks)
        assert len(shown) == 50 and '<span class="count">52</span>' in callbacks
        more = re.search(r'href="(/calls\?due_after=[^"]+)" hx-get="\1"', callbacks)
        assert more is not None and "More callbacks" in callbacks
        rest = await client.get(html.unescape(more.group(1)))
        assert rest.status_code == 200
        tail = task_ids(rest.text.split('id="recent-calls"')[0])
        assert len(tail) == 2 and not set(tail) & set(shown)
        assert "data-more-callbacks" not in rest.text  # the last page
        async with hub.db.read() as session:
            every = (await session.scalars(select(Task.id).order_by(Task.due_at, Task.id))).all()
        assert shown + tail == list(every)
        russian = await client.get("/calls?lang=ru")
        assert "Ещё обратные звонки" in russian.text
        forged = await client.get("/calls", params={"due_after": "bm90LWEtY3Vyc29y"})
        assert forged.status_code == 404
        # A tab that paged on and refreshes live asks for as many as it showed: all 52,
        # nothing more to page; fewer than a page is still a page.
        again = await client.get("/calls?shown=52")
        assert task_ids(again.text.split('id="recent-calls"')[0]) == list(every)
        assert "data-more-callbacks" not in again.text
        few = await client.get("/calls?shown=3")
        assert task_ids(few.text.split('id="recent-calls"')[0]) == shown
        assert (await client.get("/calls?shown=0")).status_code == 422


class TestRecentCalls:
    async def test_recordings_link_to_the_provider_and_missed_ones_filter(
        self, hub: PhoneHub, client: httpx.AsyncClient
    ) -> None:
        await create_manager(hub.db, email="olga@example.ru")
        await missed(hub, "c-1", "+79123456701")
        for event, extra in (
            ("newCall", {}),
            ("answer", {}),
            ("hangup", {"cause": "normalClearing"}),
        ):
            fields: dict[str, Any] = {"event": event, "callId": "c-2", "direction": "in"}
            fields.update({"from": "+79123456702", **extra})
            assert (await hub.generic("pbx", **fields)).status_code == 200
        await missed(hub, "c-3", "+79123456703")
        urls = {"c-2": "https://rec.example/c-2.mp3?sig=a&b=1", "c-3": "javascript:alert(1)"}
        async with hub.db.transaction() as session:
            for provider_call_id, url in urls.items():
                await session.execute(
                    update(Call)
                    .where(Call.provider_call_id == provider_call_id)
                    .values(recording_url=url)
                )
        await signed_in(client, "olga@example.ru")

        page = await client.get("/calls?lang=en")
        links = re.findall(r'<a class="call-recording" href="([^"]*)" rel="([^"]*)"', page.text)
        assert links == [("https://rec.example/c-2.mp3?sig=a&amp;b=1", "noopener noreferrer")]
        assert "javascript:" not in page.text
        missed_only = await client.get("/calls?show=missed")
        calls = re.findall(r'data-call="(\d+)"', missed_only.text)
        assert len(calls) == 2 and "+7 912 345-67-02" not in missed_only.text
        assert (await client.get("/calls?after=nonsense")).status_code == 404


class TestVisibility:
    async def test_a_manager_sees_only_the_calls_of_conversations_they_may_see(
        self, hub: PhoneHub, client: httpx.AsyncClient
    ) -> None:
        await create_manager(hub.db, email="olga@example.ru")
        other = await create_manager(hub.db, email="ivan@example.ru")
        await create_manager(hub.db, email="boss@example.ru", role=ManagerRole.ADMIN)
        await missed(hub, "c-1", "+79123456701")
        await missed(hub, "c-2", "+79123456702")
        hidden = await task_of(hub, "+79123456702")
        shown = await task_of(hub, "+79123456701")
        queue = (await make_queue(client, hub.headers, [other.id]))["id"]
        async with hub.db.transaction() as session:
            await session.execute(
                update(Conversation)
                .where(Conversation.id == hidden.conversation_id)
                .values(assignee_id=other.id, queue_id=queue)
            )
            call = (await session.scalars(select(Call).where(Call.provider_call_id == "c-2"))).one()
        csrf = await signed_in(client, "olga@example.ru")

        page = await client.get("/calls")
        assert task_ids(page.text) == [shown.id]
        assert "+7 912 345-67-02" not in page.text
        assert (await client.get(f"/calls/ring/{call.id}")).status_code == 404
        refused = await client.post(f"/calls/tasks/{hidden.id}/done", data={"csrf_token": csrf})
        assert refused.status_code == 404 and "Этого перезвона больше нет." in refused.text
        assert "+7 912 345-67-02" not in refused.text
        assert (await task_of(hub, "+79123456702")).status == TaskStatus.OPEN

        await client.post("/logout", headers={"Origin": HUB})
        await signed_in(client, "ivan@example.ru")
        assert task_ids((await client.get("/calls")).text) == [shown.id, hidden.id]
        await client.post("/logout", headers={"Origin": HUB})
        await signed_in(client, "boss@example.ru")
        assert sorted(task_ids((await client.get("/calls")).text)) == sorted([shown.id, hidden.id])

    async def test_pages_need_a_session(self, hub: PhoneHub, client: httpx.AsyncClient) -> None:
        await missed(hub, "c-1", "+79123456701")
        task = await task_of(hub, "+79123456701")
        assert (await client.get("/calls")).headers["location"] == "/login"
        assert (await client.get(f"/calls/ring/{task.call_id}")).headers["location"] == "/login"


class TestRingingCard:
    async def test_the_card_shows_who_calls_their_conversations_and_last_contact(
        self, hub: PhoneHub, client: httpx.AsyncClient
    ) -> None:
        await create_manager(hub.db, email="olga@example.ru")
        await missed(hub, "c-1", "+79123456701")
        contact = await hub.contact_of("+79123456701")
        async with hub.db.transaction() as session:
            await session.execute(
                update(Contact)
                .where(Contact.id == contact.id)
                .values(name='<img src=x onerror="alert(1)">', company="ООО «Ромашка»")
            )
        fields: dict[str, Any] = {"event": "newCall", "callId": "c-2", "direction": "in"}
        fields["from"] = "+79123456701"
        response = await hub.generic("pbx", **fields)
        assert response.status_code == 200
        async with hub.db.read() as session:
            call = (await session.scalars(select(Call).where(Call.provider_call_id == "c-2"))).one()
        await signed_in(client, "olga@example.ru")

        card = await client.get(f"/calls/ring/{call.id}?lang=en")

        assert card.status_code == 200
        assert 'role="dialog"' in card.text and 'data-state="ringing"' in card.text
        assert '<img src=x onerror="alert(1)">' not in card.text
        assert "&lt;img src=x onerror=" in card.text
        assert "ООО «Ромашка»" in card.text and "+7 912 345-67-01" in card.text
        assert f'href="/inbox/v/open/c/{call.conversation_id}"' in card.text
        assert "Last in touch" in card.text  # the first, missed call
        assert "<script" not in card.text

    async def test_a_manager_whose_phone_rang_sees_the_card_of_a_call_they_may_not_see(
        self, hub: PhoneHub, client: httpx.AsyncClient
    ) -> None:
        olga = await create_manager(hub.db, email="olga@example.ru")
        ivan = await create_manager(hub.db, email="ivan@example.ru")
        other = await create_manager(hub.db, email="petr@example.ru")
        async with hub.db.transaction() as session:
            for manager, extension in ((olga, "100"), (ivan, "101")):
                await session.execute(
                    update(Manager).where(Manager.id == manager.id).values(extension=extension)
                )
        await hub.line("zd", "zadarma", {"api_secret": ZADARMA_SECRET})
        inbound = {"caller_id": "79123456705", "called_did": "74951234567"}
        await zadarma(hub, "NOTIFY_START", **inbound)
        call = await call_of(hub, "zd-1")
        queue = (await make_queue(client, hub.headers, [other.id]))["id"]
        async with hub.db.transaction() as session:
            await session.execute(
                update(Conversation)
                .where(Conversation.id == call.conversation_id)
                .values(assignee_id=other.id, queue_id=queue)
            )
        await zadarma(hub, "NOTIFY_INTERNAL", internal="100", **inbound)

        await signed_in(client, "olga@example.ru")
        card = await client.get(f"/calls/ring/{call.id}")
        assert card.status_code == 200 and "+7 912 345-67-05" in card.text
        assert "/inbox/v/open/c/" not in card.text  # the conversation stays out of sight
        await client.post("/logout", headers={"Origin": HUB})
        await signed_in(client, "ivan@example.ru")  # his phone did not ring
        assert (await client.get(f"/calls/ring/{call.id}")).status_code == 404


ZADARMA_SECRET = "zadarma-api-secret-0123"
ZADARMA_START = "2026-11-28 13:15:00"


async def zadarma(hub: PhoneHub, event: str, **fields: str) -> None:
    """A Zadarma notification of the call zd-1, signed as Zadarma signs them."""
    data = {"event": event, "call_start": ZADARMA_START, "pbx_call_id": "zd-1", **fields}
    signed = data.get("caller_id", "") + data.get("called_did", "") + ZADARMA_START
    response = await hub.zadarma("zd", data, signed=signed)
    assert response.status_code == 200, response.text


async def call_of(hub: PhoneHub, provider_call_id: str) -> Call:
    async with hub.db.read() as session:
        query = select(Call).where(Call.provider_call_id == provider_call_id)
        return (await session.scalars(query)).one()


async def test_a_tab_opened_while_the_phone_rings_shows_the_card(
    app: Any, hub: PhoneHub, client: httpx.AsyncClient
) -> None:
    await create_manager(hub.db, email="olga@example.ru")
    ivan = await create_manager(hub.db, email="ivan@example.ru")
    for provider_id, number in (("r-1", "+79123456711"), ("r-2", "+79123456712")):
        fields: dict[str, Any] = {"event": "newCall", "callId": provider_id, "direction": "in"}
        response = await hub.generic("pbx", **{**fields, "from": number})
        assert response.status_code == 200, response.text
    first, second = await call_of(hub, "r-1"), await call_of(hub, "r-2")
    async with hub.db.transaction() as session:  # the second caller is Ivan's: so is its ring
        await session.execute(
            update(Conversation)
            .where(Conversation.id == second.conversation_id)
            .values(assignee_id=ivan.id)
        )
    await signed_in(client, "olga@example.ru")

    async def cards() -> list[dict[str, Any]]:
        async with served(app) as port:
            _reader, writer, frames = await open_stream(port, client)
            writer.close()
        return [data(f) for f in frames.decode().split("\n\n") if "event: call\n" in f]

    assert await cards() == [{"call_id": first.id, "state": "ringing", "topic": "call.ringing"}]
    response = await hub.generic(
        "pbx", event="hangup", callId="r-1", direction="in", cause="cancel"
    )
    assert response.status_code == 200, response.text
    assert await cards() == []
