"""Conversation states over HTTP (the app in-process, both databases): the REST API's snooze,
pending, reopen, bulk and transfer with a reason, the worker waking a snooze, and the
workspace's pages for the same actions."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import httpx
from sqlalchemy import select, update

from storage.db import Database
from storage.models import Assignment, Conversation, ManagerRole, OutboxEvent
from storage.types import utcnow
from tests.factories import (
    create_channel,
    create_manager,
    drain,
    ingest_message,
    make_queue,
    manager_with_headers,
)

HUB = "http://hub.test"


async def signed_in(client: httpx.AsyncClient, email: str) -> None:
    response = await client.post(
        "/login",
        data={"email": email, "password": "correct horse battery staple"},
        headers={"Origin": HUB},
    )
    assert response.status_code == 303, response.text


async def _conversations(db: Database, count: int) -> list[int]:
    channel = await create_channel(db)
    return [
        (
            await ingest_message(db, channel, text=f"Вопрос {n}", email=f"p{n}@example.ru")
        ).conversation_id
        for n in range(count)
    ]


async def _status(db: Database, conversation_id: int) -> str:
    async with db.read() as session:
        found = await session.get(Conversation, conversation_id)
        assert found is not None
        return found.status


class TestApi:
    async def test_snooze_then_the_worker_wakes_it_when_the_time_comes(
        self,
        app: object,
        client: httpx.AsyncClient,
        hub_db: Database,
        admin_headers: dict[str, str],
    ) -> None:
        [conversation] = await _conversations(hub_db, 1)
        until = utcnow() + timedelta(minutes=30)
        answer = await client.post(
            f"/api/v1/conversations/{conversation}/snooze",
            json={"until": until.isoformat()},
            headers=admin_headers,
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "snoozed"
        naive = await client.post(
            f"/api/v1/conversations/{conversation}/snooze",
            json={"until": "2030-01-01T09:00:00"},
            headers=admin_headers,
        )
        assert naive.status_code == 422 and naive.json()["error"] == "invalid_snooze"
        await drain(app)
        assert await _status(hub_db, conversation) == "snoozed"  # not due yet
        await drain(app, ahead=timedelta(minutes=31))
        assert await _status(hub_db, conversation) == "open"
        async with hub_db.read() as session:
            topics = list(
                await session.scalars(
                    select(OutboxEvent.topic).where(OutboxEvent.topic.like("conversation.%"))
                )
            )
        assert "conversation.reopened" in topics

    async def test_a_client_message_wakes_a_snoozed_conversation_through_the_worker(
        self,
        app: object,
        client: httpx.AsyncClient,
        hub_db: Database,
        admin_headers: dict[str, str],
    ) -> None:
        channel = await create_channel(hub_db)
        first = await ingest_message(hub_db, channel, email="w@example.ru", thread_key="t-1")
        await drain(app)
        answer = await client.post(
            f"/api/v1/conversations/{first.conversation_id}/pending", headers=admin_headers
        )
        assert answer.status_code == 200 and answer.json()["status"] == "pending"
        again = await ingest_message(hub_db, channel, email="w@example.ru", thread_key="t-1")
        assert again.conversation_id == first.conversation_id
        await drain(app)
        assert await _status(hub_db, first.conversation_id) == "open"

    async def test_reopen_and_visibility(
        self, client: httpx.AsyncClient, hub_db: Database, admin_headers: dict[str, str]
    ) -> None:
        [conversation] = await _conversations(hub_db, 1)
        closed = await client.post(
            f"/api/v1/conversations/{conversation}/close", headers=admin_headers
        )
        assert closed.json()["status"] == "closed"
        reopened = await client.post(
            f"/api/v1/conversations/{conversation}/reopen", headers=admin_headers
        )
        assert reopened.status_code == 200 and reopened.json()["status"] == "open"
        other, other_headers = await manager_with_headers(hub_db)
        owner = await create_manager(hub_db)
        async with hub_db.transaction() as session:
            await session.execute(
                update(Conversation)
                .where(Conversation.id == conversation)
                .values(assignee_id=owner.id)
            )
        hidden = await client.post(
            f"/api/v1/conversations/{conversation}/pending", headers=other_headers
        )
        assert hidden.status_code == 404 and other.id != owner.id

    async def test_bulk_says_what_was_done_and_what_was_refused(
        self, client: httpx.AsyncClient, hub_db: Database
    ) -> None:
        me, headers = await manager_with_headers(hub_db)
        owner = await create_manager(hub_db)
        free, theirs = await _conversations(hub_db, 2)
        async with hub_db.transaction() as session:
            await session.execute(
                update(Conversation).where(Conversation.id == theirs).values(assignee_id=owner.id)
            )
        answer = await client.post(
            "/api/v1/conversations/bulk",
            json={"conversation_ids": [free, theirs], "action": "close"},
            headers=headers,
        )
        assert answer.status_code == 200, answer.text
        assert answer.json() == {
            "done": [free],
            "refused": [{"conversation_id": theirs, "error": "not_found"}],
        }
        assert me.id != owner.id
        nothing = await client.post(
            "/api/v1/conversations/bulk",
            json={"conversation_ids": [free], "action": "snooze"},
            headers=headers,
        )
        assert nothing.status_code == 422 and nothing.json()["error"] == "invalid_snooze"

    async def test_transfer_to_a_queue_keeps_the_reason_in_the_history(
        self, client: httpx.AsyncClient, hub_db: Database, admin_headers: dict[str, str]
    ) -> None:
        [conversation] = await _conversations(hub_db, 1)
        queue = await make_queue(client, admin_headers, [])
        answer = await client.post(
            f"/api/v1/conversations/{conversation}/transfer",
            json={"queue_id": queue["id"], "reason": "нужен юрист"},
            headers=admin_headers,
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["state"] == "waiting"  # nobody in the queue: it waits there
        history = await client.get(
            f"/api/v1/conversations/{conversation}/assignments", headers=admin_headers
        )
        last = history.json()[-1]
        assert (last["reason"], last["queue_id"]) == ("transfer", queue["id"])
        assert last["actor_manager_id"] is None  # an operator's token: no manager acted
        async with hub_db.read() as session:
            recorded = await session.get(Assignment, last["id"])
            assert recorded is not None and recorded.detail["note"] == "нужен юрист"


class TestPages:
    async def test_snooze_waiting_reopen_and_transfer_from_the_action_bar(
        self, client: httpx.AsyncClient, hub_db: Database, admin_headers: dict[str, str]
    ) -> None:
        await create_manager(hub_db, email="olga@example.ru", name="Ольга", role=ManagerRole.ADMIN)
        [conversation] = await _conversations(hub_db, 1)
        queue = await make_queue(client, admin_headers, [], name="<b>Юристы</b>")
        await signed_in(client, "olga@example.ru")
        page = await client.get(f"/inbox/v/open/c/{conversation}?lang=en")
        for action in ("pending", "snooze", "transfer", "close"):
            assert f'data-action="{action}"' in page.text
        assert 'data-action="reopen"' not in page.text
        assert "&lt;b&gt;Юристы&lt;/b&gt;" in page.text and "<b>Юристы" not in page.text

        waiting = await client.post(
            f"/inbox/c/{conversation}/pending", data={"view": "open"}, headers={"Origin": HUB}
        )
        assert waiting.status_code == 303
        assert await _status(hub_db, conversation) == "pending"

        past = await client.post(
            f"/inbox/c/{conversation}/snooze",
            data={"view": "open", "choice": "at", "until": "2020-01-01T09:00"},
            headers={"Origin": HUB},
        )
        assert past.status_code == 422
        assert "Время возврата должно быть в будущем." in past.text
        snoozed = await client.post(
            f"/inbox/c/{conversation}/snooze",
            data={"view": "open", "choice": "tomorrow"},
            headers={"Origin": HUB},
        )
        assert snoozed.status_code == 303
        assert await _status(hub_db, conversation) == "snoozed"
        listing = await client.get("/inbox/v/status-snoozed?lang=en")
        assert f'data-conversation="{conversation}"' in listing.text
        assert "Snoozed until" in listing.text
        assert f'data-conversation="{conversation}"' not in (await client.get("/inbox/v/open")).text

        reopened = await client.post(
            f"/inbox/c/{conversation}/reopen", data={"view": "open"}, headers={"Origin": HUB}
        )
        assert reopened.status_code == 303
        assert await _status(hub_db, conversation) == "open"

        moved = await client.post(
            f"/inbox/c/{conversation}/transfer",
            data={"view": "open", "queue_id": str(queue["id"]), "reason": "<i>договор</i>"},
            headers={"Origin": HUB},
        )
        assert moved.status_code == 303
        page = await client.get(f"/inbox/v/open/c/{conversation}?lang=en")
        assert "transfer · «&lt;i&gt;договор&lt;/i&gt;» · by Ольга" in page.text
        same = await client.post(
            f"/inbox/c/{conversation}/transfer",
            data={"view": "open", "queue_id": str(queue["id"])},
            headers={"Origin": HUB},
        )
        assert same.status_code == 409 and "Разговор уже в этой очереди." in same.text

    async def test_bulk_close_from_the_list_with_a_summary(
        self, client: httpx.AsyncClient, hub_db: Database
    ) -> None:
        await create_manager(hub_db, email="olga@example.ru", name="Ольга")
        owner = await create_manager(hub_db)
        first, second, theirs = await _conversations(hub_db, 3)
        async with hub_db.transaction() as session:
            await session.execute(
                update(Conversation).where(Conversation.id == theirs).values(assignee_id=owner.id)
            )
        await signed_in(client, "olga@example.ru")
        listing = await client.get("/inbox/v/open?lang=en")
        boxes = re.findall(
            r'<input type="checkbox" class="pick" form="bulk" name="ids" value="(\d+)"',
            listing.text,
        )
        assert sorted(int(b) for b in boxes) == sorted([first, second])
        done = await client.post(
            "/inbox/bulk?lang=en",
            data={"ids": [str(first), str(second), str(theirs)], "action": "close", "view": "open"},
            headers={"Origin": HUB, "HX-Request": "true"},
        )
        assert done.status_code == 200
        assert done.headers["HX-Push-Url"] == "/inbox/v/open"
        summary = html.unescape(
            re.search(r'<p class="bulk-summary" role="status">(.*?)</p>', done.text, re.S).group(1)
        )  # type: ignore[union-attr]
        assert "Closed: 2" in summary and f"#{theirs} (not available to you)" in summary
        assert f'data-conversation="{first}"' not in done.text  # the list is the new truth
        assert await _status(hub_db, first) == await _status(hub_db, second) == "closed"
        assert await _status(hub_db, theirs) == "open"
        nothing = await client.post(
            "/inbox/bulk", data={"action": "close", "view": "open"}, headers={"Origin": HUB}
        )
        assert nothing.status_code == 422 and "Сначала выберите разговоры." in nothing.text
        forged = await client.post(
            "/inbox/bulk",
            data={"ids": [str(first)], "action": "close"},
            headers={"Origin": "https://evil.example"},
        )
        assert forged.status_code == 403

    async def test_the_new_views_and_the_sla_sort_render(
        self, client: httpx.AsyncClient, hub_db: Database
    ) -> None:
        await create_manager(hub_db, email="olga@example.ru", name="Ольга")
        late, plain = await _conversations(hub_db, 2)
        async with hub_db.transaction() as session:
            await session.execute(
                update(Conversation)
                .where(Conversation.id == late)
                .values(first_response_due_at=utcnow() - timedelta(minutes=3))
            )
        await signed_in(client, "olga@example.ru")
        breached = await client.get("/inbox/v/sla-breached?lang=en")
        assert breached.status_code == 200 and "SLA missed" in breached.text
        assert f'data-conversation="{late}"' in breached.text
        assert f'data-conversation="{plain}"' not in breached.text
        for slug in ("sla-soon", "claims", "status-snoozed"):
            assert (await client.get(f"/inbox/v/{slug}")).status_code == 200
        by_sla = await client.get("/inbox/v/open?sort=sla")
        order = re.findall(r'<li class="row row-pick[^"]*" data-conversation="(\d+)"', by_sla.text)
        assert order == [str(late), str(plain)]
        assert f'href="/inbox/v/open/c/{late}?sort=sla"' in by_sla.text
        assert (await client.get("/inbox/v/open?sort=nonsense")).status_code == 422
