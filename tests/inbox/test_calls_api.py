"""The telephony API: phone lines, the call journal with filters, tasks, the blocklist and
managers' extensions."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.channels.telephony.conftest import CLIENT, PhoneHub
from tests.factories import create_manager, create_token


@pytest.fixture
async def hub(app: Any, client: httpx.AsyncClient) -> PhoneHub:
    token, _row = await create_token(app.state.context.db, name="operator")
    return PhoneHub(app, client, {"Authorization": f"Bearer {token}"})


async def calls_of(hub: PhoneHub) -> None:
    """Three calls: a missed and an answered one from the client, an outbound one."""
    await hub.line("pbx", "generic")
    await hub.manager("anna", extension="101")
    events = [
        ("newCall", "c-1", "in", "89123456789", {}),
        ("hangup", "c-1", "in", "89123456789", {"cause": "cancel"}),
        ("newCall", "c-2", "in", "+79990001122", {}),
        ("answer", "c-2", "in", "+79990001122", {"answeringNumber": "101"}),
        ("newCall", "o-1", "out", "101", {"to": "89123456789", "answeringNumber": "101"}),
    ]
    for event, call_id, direction, number, extra in events:
        response = await hub.generic(
            "pbx", event=event, callId=call_id, direction=direction, **{"from": number}, **extra
        )
        assert response.status_code == 200, response.text


class TestLines:
    async def test_adding_a_line_gives_its_webhook_once(self, hub: PhoneHub) -> None:
        body = await hub.line("pbx", "generic", callback_minutes=15)

        token = body["generated_secrets"]["token"]
        assert body["webhook_path"] == f"/webhooks/telephony/pbx/{token}"
        assert body["kind"] == "telephony"
        assert body["config"]["callback_minutes"] == 15
        shown = await hub.client.get("/api/v1/channels/pbx", headers=hub.headers)
        assert shown.status_code == 200
        assert token not in shown.text  # sealed; never shown again
        assert shown.json()["config"]["provider"] == "generic"

    async def test_refuses_what_cannot_work(self, hub: PhoneHub) -> None:
        refused = [
            await hub.client.post(
                "/api/v1/channels/telephony",
                headers=hub.headers,
                json={"key": "pbx", "config": config},
            )
            for config in (
                {"provider": "twilio"},
                {"provider": "asterisk"},
                {"provider": "generic", "timezone": "Mars/Olympus"},
            )
        ]

        assert [(r.status_code, r.json()["error"]) for r in refused] == [
            (422, "missing_secret"),
            (422, "unknown_provider"),
            (422, "invalid_input"),
        ]

    async def test_only_administrators_add_lines(self, hub: PhoneHub) -> None:
        manager = await create_manager(hub.db)
        token, _ = await create_token(hub.db, manager_id=manager.id)

        response = await hub.client.post(
            "/api/v1/channels/telephony",
            headers={"Authorization": f"Bearer {token}"},
            json={"key": "pbx", "config": {"provider": "generic"}},
        )

        assert response.status_code == 403


class TestCallJournal:
    async def test_filters(self, hub: PhoneHub) -> None:
        await calls_of(hub)

        async def ids(query: str) -> list[str]:
            response = await hub.client.get(f"/api/v1/calls?{query}", headers=hub.headers)
            assert response.status_code == 200, response.text
            return [c["provider_call_id"] for c in response.json()["items"]]

        assert await ids("") == ["o-1", "c-2", "c-1"]
        assert await ids("state=missed") == ["c-1"]
        assert await ids("state=missed,answered") == ["c-2", "c-1"]
        assert await ids("direction=outbound") == ["o-1"]
        assert await ids("number=8%20912%20345-67-89") == ["o-1", "c-1"]
        assert await ids("channel=pbx&limit=1") == ["o-1"]
        contact = await hub.contact_of(CLIENT)
        assert await ids(f"contact_id={contact.id}&direction=inbound") == ["c-1"]

    async def test_pages_and_one_call(self, hub: PhoneHub) -> None:
        await calls_of(hub)

        first = (await hub.client.get("/api/v1/calls?limit=2", headers=hub.headers)).json()
        rest = await hub.client.get(
            f"/api/v1/calls?limit=2&cursor={first['next_cursor']}", headers=hub.headers
        )
        assert [c["provider_call_id"] for c in rest.json()["items"]] == ["c-1"]
        assert rest.json()["next_cursor"] is None
        one = await hub.client.get(f"/api/v1/calls/{first['items'][1]['id']}", headers=hub.headers)
        assert (one.json()["state"], one.json()["agent"]) == ("answered", "101")
        missing = await hub.client.get("/api/v1/calls/999999", headers=hub.headers)
        assert missing.status_code == 404

    async def test_bad_filters_are_422_and_strangers_401(self, hub: PhoneHub) -> None:
        refused = {
            query: await hub.client.get(f"/api/v1/calls?{query}", headers=hub.headers)
            for query in (
                "state=lost",
                "direction=sideways",
                "number=12",
                "channel=nope",
                "cursor=bogus",
            )
        }

        assert {q: (r.status_code, r.json()["error"]) for q, r in refused.items()} == {
            "state=lost": (422, "invalid_state"),
            "direction=sideways": (422, "invalid_direction"),
            "number=12": (422, "invalid_phone"),
            "channel=nope": (422, "unknown_channel"),
            "cursor=bogus": (422, "invalid_cursor"),
        }
        assert (await hub.client.get("/api/v1/calls")).status_code == 401


class TestTasks:
    async def test_open_then_done_by_hand(self, hub: PhoneHub) -> None:
        await calls_of(hub)
        manager = await create_manager(hub.db, email="olga@example.ru")
        token, _ = await create_token(hub.db, manager_id=manager.id)
        olga = {"Authorization": f"Bearer {token}"}

        listed = (await hub.client.get("/api/v1/tasks", headers=hub.headers)).json()["items"]
        # The outbound call to the client was not answered: the callback is still open.
        assert [(t["kind"], t["phone"], t["status"]) for t in listed] == [
            ("callback", CLIENT, "open")
        ]
        task_id = listed[0]["id"]
        done = await hub.client.post(
            f"/api/v1/tasks/{task_id}/done", headers=olga, json={"note": "Перезвонила"}
        )
        assert done.status_code == 200, done.text
        assert (done.json()["status"], done.json()["closed_by_manager_id"]) == ("done", manager.id)
        again = await hub.client.post(f"/api/v1/tasks/{task_id}/done", headers=olga, json={})
        assert (again.status_code, again.json()["error"]) == (409, "task_closed")
        assert (await hub.client.get("/api/v1/tasks", headers=hub.headers)).json()["items"] == []
        closed = await hub.client.get("/api/v1/tasks?status=done", headers=hub.headers)
        assert [t["note"] for t in closed.json()["items"]] == ["Перезвонила"]
        mine = await hub.client.get("/api/v1/tasks?status=all&assignee_id=me", headers=olga)
        assert mine.json()["items"] == []

    async def test_bad_status_is_422(self, hub: PhoneHub) -> None:
        response = await hub.client.get("/api/v1/tasks?status=later", headers=hub.headers)

        assert (response.status_code, response.json()["error"]) == (422, "invalid_status")


class TestBlocklist:
    async def test_block_list_and_unblock(self, hub: PhoneHub) -> None:
        added = await hub.client.post(
            "/api/v1/telephony/blocklist",
            headers=hub.headers,
            json={"number": "+7 912 345-67-89", "reason": "реклама"},
        )
        assert added.status_code == 201
        twice = await hub.client.post(
            "/api/v1/telephony/blocklist", headers=hub.headers, json={"number": "89123456789"}
        )
        assert (twice.status_code, twice.json()["error"]) == (409, "already_blocked")
        anonymous = await hub.client.post(
            "/api/v1/telephony/blocklist", headers=hub.headers, json={"number": "Anonymous"}
        )
        assert anonymous.json()["number"] == "anonymous"

        listed = await hub.client.get("/api/v1/telephony/blocklist", headers=hub.headers)
        assert [b["number"] for b in listed.json()] == [CLIENT, "anonymous"]
        removed = await hub.client.delete(
            "/api/v1/telephony/blocklist/89123456789", headers=hub.headers
        )
        assert removed.status_code == 204
        gone = await hub.client.delete(f"/api/v1/telephony/blocklist/{CLIENT}", headers=hub.headers)
        assert gone.status_code == 404


class TestManagerLine:
    async def test_a_manager_sets_their_own_extension(self, hub: PhoneHub) -> None:
        manager = await create_manager(hub.db)
        other = await create_manager(hub.db)
        token, _ = await create_token(hub.db, manager_id=manager.id)
        headers = {"Authorization": f"Bearer {token}"}

        own = await hub.client.put(
            f"/api/v1/managers/{manager.id}/telephony",
            headers=headers,
            json={"extension": "105", "phone": "8 912 111 22 33"},
        )
        assert own.json() == {"manager_id": manager.id, "extension": "105", "phone": "+79121112233"}
        theirs = await hub.client.put(
            f"/api/v1/managers/{other.id}/telephony", headers=headers, json={"extension": "106"}
        )
        assert theirs.status_code == 403
        bad = await hub.client.put(
            f"/api/v1/managers/{manager.id}/telephony", headers=headers, json={"phone": "12"}
        )
        assert (bad.status_code, bad.json()["error"]) == (422, "invalid_phone")
