"""The routing API end to end: the real app, the real outbox worker drained by the test."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from routing.engine import RoutingConfig, RoutingEngine
from storage.db import Database
from storage.models import ManagerRole
from storage.types import utcnow
from tests.factories import (
    assert_error,
    drain,
    go_online,
    make_queue,
    manager_with_headers,
    post_form,
    routing_of,
)


async def history(
    client: httpx.AsyncClient, headers: dict[str, str], conversation_id: int
) -> list[dict[str, Any]]:
    response = await client.get(
        f"/api/v1/conversations/{conversation_id}/assignments", headers=headers
    )
    assert response.status_code == 200, response.text
    result: list[dict[str, Any]] = response.json()
    return result


# Queues


async def test_queue_crud_and_validation(
    client: httpx.AsyncClient, hub_db: Database, admin_headers: dict[str, str]
):
    supervisor, supervisor_headers = await manager_with_headers(hub_db)
    url = "/api/v1/queues"
    sla = {
        "normal": {"first_response": 3600, "next_response": 7200},
        "urgent": {"first_response": 600},
    }
    hours = {"timezone": "Europe/Moscow", "week": {"mon": [["09:00", "18:00"]]}}
    response = await client.post(
        url,
        json={
            "key": "sales",
            "name": "Продажи",
            "strategy": "strict_order",
            "forward_after_seconds": 600,
            "supervisor_id": supervisor.id,
            "sla": sla,
            "working_hours": hours,
            "sla_breach_action": "forward",
        },
        headers=admin_headers,
    )
    assert response.status_code == 201, response.text
    queue = response.json()
    assert queue["key"] == "sales"
    assert queue["strategy"] == "strict_order"
    assert queue["forward_after_seconds"] == 600
    assert queue["sla"] == sla
    assert queue["working_hours"]["week"] == {"mon": [["09:00", "18:00"]]}
    assert queue["member_ids"] == []
    assert queue["retry_seconds"] == 300 and queue["is_active"] is True

    assert_error(
        await client.post(url, json={"key": "sales", "name": "x"}, headers=admin_headers),
        409,
        "duplicate_key",
    )
    invalid = [
        {"key": "a", "name": "x", "strategy": "strict_order"},  # no forward time
        {"key": "a", "name": "x", "strategy": "strict_order", "forward_after_seconds": 59},
        {"key": "a", "name": "x", "strategy": "strict_order", "forward_after_seconds": 43201},
        {"key": "a", "name": "x", "sla": {"normal": {"first_response": 0}}},
        {"key": "a", "name": "x", "sla": {"someday": {"first_response": 60}}},
        {"key": "a", "name": "x", "strategy": "sometimes"},
        {"key": "a", "name": "x", "sla_breach_action": "panic"},
        {"key": "a", "name": "x", "working_hours": {"week": {"mon": [["18:00", "09:00"]]}}},
        {"key": "A B", "name": "x"},
        {"key": "a", "name": ""},
        {"key": "a", "name": "x", "color": "red"},
    ]
    for body in invalid:
        assert_error(await client.post(url, json=body, headers=admin_headers), 422, "invalid_input")
    assert_error(
        await client.post(
            url, json={"key": "a", "name": "x", "supervisor_id": 999999}, headers=admin_headers
        ),
        422,
        "unknown_manager",
    )
    # Managers read, administrators change.
    assert_error(
        await client.post(url, json={"key": "b", "name": "x"}, headers=supervisor_headers),
        403,
        "admin_required",
    )
    assert_error(await client.get(url), 401)
    listed = await client.get(url, headers=supervisor_headers)
    assert [q["key"] for q in listed.json()] == ["sales"]

    one = f"{url}/{queue['id']}"
    assert (await client.get(one, headers=supervisor_headers)).json()["name"] == "Продажи"
    # The result of a PATCH is validated as a whole.
    assert_error(
        await client.patch(one, json={"forward_after_seconds": None}, headers=admin_headers),
        422,
        "invalid_input",
    )
    response = await client.patch(
        one,
        json={"strategy": "evenly", "name": "Sales", "supervisor_id": None},
        headers=admin_headers,
    )
    assert response.status_code == 200, response.text
    changed = response.json()
    assert (changed["strategy"], changed["name"], changed["supervisor_id"]) == (
        "evenly",
        "Sales",
        None,
    )
    assert changed["sla"] == sla  # untouched
    assert_error(await client.patch(one, json={"name": "x"}, headers=supervisor_headers), 403)
    assert_error(
        await client.patch(f"{url}/999999", json={"name": "x"}, headers=admin_headers), 404
    )

    assert (await client.delete(one, headers=admin_headers)).status_code == 204
    assert_error(await client.get(one, headers=admin_headers), 404, "not_found")


async def test_members_keep_their_order(
    client: httpx.AsyncClient, hub_db: Database, admin_headers: dict[str, str]
):
    m1, m1_headers = await manager_with_headers(hub_db, name="Первый")
    m2, _ = await manager_with_headers(hub_db, name="Второй")
    m3, _ = await manager_with_headers(hub_db, name="Третий")
    m4, _ = await manager_with_headers(hub_db, name="Четвёртый")
    queue = await make_queue(client, admin_headers, [])
    url = f"/api/v1/queues/{queue['id']}/members"

    response = await client.put(url, json=[m3.id, m1.id, m2.id], headers=admin_headers)
    assert response.status_code == 200, response.text
    assert [(m["manager_id"], m["position"]) for m in response.json()] == [
        (m3.id, 0),
        (m1.id, 1),
        (m2.id, 2),
    ]
    response = await client.post(url, json={"manager_id": m4.id}, headers=admin_headers)
    assert response.status_code == 201, response.text
    assert [m["manager_id"] for m in response.json()] == [m3.id, m1.id, m2.id, m4.id]
    assert response.json()[-1]["position"] == 3
    assert_error(
        await client.post(url, json={"manager_id": m4.id}, headers=admin_headers),
        409,
        "already_member",
    )
    assert (await client.delete(f"{url}/{m1.id}", headers=admin_headers)).status_code == 204
    assert_error(await client.delete(f"{url}/{m1.id}", headers=admin_headers), 404)

    listed = await client.get(url, headers=m1_headers)
    assert [m["manager_id"] for m in listed.json()] == [m3.id, m2.id, m4.id]
    queue_now = (await client.get(f"/api/v1/queues/{queue['id']}", headers=m1_headers)).json()
    assert queue_now["member_ids"] == [m3.id, m2.id, m4.id]

    assert_error(
        await client.put(url, json=[m1.id, m1.id], headers=admin_headers), 422, "duplicate_member"
    )
    assert_error(
        await client.put(url, json=[m1.id, 999999], headers=admin_headers), 422, "unknown_manager"
    )
    assert_error(await client.put(url, json=[m1.id], headers=m1_headers), 403)
    # A rejected replacement changed nothing; an empty list removes everybody.
    assert [m["manager_id"] for m in (await client.get(url, headers=m1_headers)).json()] == [
        m3.id,
        m2.id,
        m4.id,
    ]
    response = await client.put(url, json=[m2.id, m3.id], headers=admin_headers)
    assert [m["manager_id"] for m in response.json()] == [m2.id, m3.id]
    assert (await client.put(url, json=[], headers=admin_headers)).json() == []
    assert_error(await client.get("/api/v1/queues/999999/members", headers=m1_headers), 404)


async def test_channel_default_queue(
    client: httpx.AsyncClient, hub_db: Database, admin_headers: dict[str, str]
):
    queue = await make_queue(client, admin_headers, [])
    url = "/api/v1/channels/default/default-queue"
    response = await client.put(url, json={"queue_id": queue["id"]}, headers=admin_headers)
    assert response.status_code == 200, response.text
    assert response.json()["default_queue_id"] == queue["id"]
    assert response.json()["kind"] == "webform"
    assert_error(
        await client.put(url, json={"queue_id": 999999}, headers=admin_headers),
        422,
        "unknown_queue",
    )
    assert_error(
        await client.put(
            "/api/v1/channels/nope/default-queue", json={"queue_id": None}, headers=admin_headers
        ),
        404,
    )
    response = await client.put(url, json={"queue_id": None}, headers=admin_headers)
    assert response.json()["default_queue_id"] is None


# Rules


async def test_rules_crud_order_and_references(
    client: httpx.AsyncClient, hub_db: Database, admin_headers: dict[str, str]
):
    manager, manager_headers = await manager_with_headers(hub_db)
    queue = await make_queue(client, admin_headers, [manager.id])
    url = "/api/v1/routing/rules"
    first = await client.post(
        url,
        json={
            "name": "Претензии",
            "conditions": {"keywords": ["претензия", "жалоба"], "channel_kind": ["webform"]},
            "actions": {"queue_id": queue["id"], "priority": "high", "tags": ["claim"]},
        },
        headers=admin_headers,
    )
    assert first.status_code == 201, first.text
    rule1 = first.json()
    assert rule1["position"] == 0 and rule1["is_active"] is True
    assert rule1["conditions"] == {"keywords": ["претензия", "жалоба"], "channel_kind": ["webform"]}
    assert rule1["actions"] == {"queue_id": queue["id"], "priority": "high", "tags": ["claim"]}
    second = await client.post(
        url,
        json={
            "name": "VIP",
            "conditions": {"regex": r"\bvip\b"},
            "actions": {"manager_id": manager.id},
        },
        headers=admin_headers,
    )
    rule2 = second.json()
    assert rule2["position"] == 1

    assert_error(
        await client.post(
            url, json={"name": "x", "actions": {"queue_id": 999999}}, headers=admin_headers
        ),
        422,
        "unknown_queue",
    )
    assert_error(
        await client.post(
            url, json={"name": "x", "actions": {"manager_id": 999999}}, headers=admin_headers
        ),
        422,
        "unknown_manager",
    )
    for body in (
        {"name": "x", "conditions": {"regex": "(unclosed"}},
        {"name": "x", "conditions": {"colour": ["red"]}},
        {"name": "x", "conditions": {"working_hours": "sometimes"}},
        {"name": "x", "actions": {"priority": "asap"}},
        {"name": ""},
    ):
        assert_error(await client.post(url, json=body, headers=admin_headers), 422, "invalid_input")
    assert_error(await client.post(url, json={"name": "x"}, headers=manager_headers), 403)

    response = await client.patch(
        f"{url}/{rule2['id']}",
        json={"is_active": False, "actions": {"queue_id": queue["id"]}},
        headers=admin_headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["is_active"] is False
    assert response.json()["actions"] == {"queue_id": queue["id"]}
    assert response.json()["conditions"] == {"regex": r"\bvip\b"}
    assert_error(
        await client.patch(
            f"{url}/{rule2['id']}", json={"actions": {"manager_id": 999999}}, headers=admin_headers
        ),
        422,
        "unknown_manager",
    )

    response = await client.put(
        f"{url}/order", json=[rule2["id"], rule1["id"]], headers=admin_headers
    )
    assert response.status_code == 200, response.text
    assert [(r["id"], r["position"]) for r in response.json()] == [
        (rule2["id"], 0),
        (rule1["id"], 1),
    ]
    listed = await client.get(url, headers=manager_headers)
    assert [r["id"] for r in listed.json()] == [rule2["id"], rule1["id"]]
    assert_error(
        await client.put(f"{url}/order", json=[rule2["id"]], headers=admin_headers),
        422,
        "invalid_order",
    )
    assert_error(
        await client.put(
            f"{url}/order", json=[rule2["id"], rule1["id"], 999], headers=admin_headers
        ),
        422,
        "invalid_order",
    )
    assert (await client.get(f"{url}/{rule1['id']}", headers=manager_headers)).json()[
        "name"
    ] == "Претензии"

    # A queue a rule sends to cannot be deleted.
    assert_error(
        await client.delete(f"/api/v1/queues/{queue['id']}", headers=admin_headers),
        409,
        "queue_in_use",
    )
    for rule in (rule1, rule2):
        assert (
            await client.delete(f"{url}/{rule['id']}", headers=admin_headers)
        ).status_code == 204
    assert_error(await client.get(f"{url}/{rule1['id']}", headers=admin_headers), 404)
    assert (
        await client.delete(f"/api/v1/queues/{queue['id']}", headers=admin_headers)
    ).status_code == 204


# Routing through the worker


async def test_form_goes_to_the_rules_queue_or_the_channel_default(
    app: Any, client: httpx.AsyncClient, hub_db: Database, admin_headers: dict[str, str]
):
    sales, sales_headers = await manager_with_headers(hub_db, name="Продажи")
    claims, claims_headers = await manager_with_headers(hub_db, name="Претензии")
    sales_queue = await make_queue(client, admin_headers, [sales.id])
    claims_queue = await make_queue(
        client, admin_headers, [claims.id], key="claims", name="Претензии"
    )
    await client.put(
        "/api/v1/channels/default/default-queue",
        json={"queue_id": sales_queue["id"]},
        headers=admin_headers,
    )
    rule = (
        await client.post(
            "/api/v1/routing/rules",
            json={
                "name": "Жалобы",
                "conditions": {"keywords": ["претензия"]},
                "actions": {"queue_id": claims_queue["id"], "priority": "high", "tags": ["claim"]},
            },
            headers=admin_headers,
        )
    ).json()
    await go_online(client, sales_headers)
    await go_online(client, claims_headers)

    claim = await post_form(client, "У меня ПРЕТЕНЗИЯ к доставке")
    order = await post_form(client, "Хочу заказать диван")
    await drain(app)

    claim_state = await routing_of(client, admin_headers, claim)
    assert claim_state["assignee_id"] == claims.id
    assert claim_state["queue_id"] == claims_queue["id"]
    assert claim_state["routing_state"] == "assigned"
    assert (claim_state["priority"], claim_state["tags"]) == ("high", ["claim"])
    [decision] = await history(client, admin_headers, claim)
    assert decision["reason"] == "strategy"
    assert f"rule {rule['id']} «Жалобы»" in decision["explanation"]
    assert decision["queue_name"] == "Претензии" and decision["manager_name"] == "Претензии"
    assert decision["actor_manager_id"] is None and decision["ended_at"] is None

    order_state = await routing_of(client, admin_headers, order)
    assert order_state["assignee_id"] == sales.id
    assert order_state["queue_id"] == sales_queue["id"]
    [decision] = await history(client, admin_headers, order)
    assert "the channel's default queue" in decision["explanation"]
    # The inbox's own conversation view agrees.
    detail = await client.get(f"/api/v1/conversations/{order}", headers=admin_headers)
    assert detail.json()["assignee_id"] == sales.id


async def test_evenly_between_two_online_managers(
    app: Any, client: httpx.AsyncClient, hub_db: Database, admin_headers: dict[str, str]
):
    anna, anna_headers = await manager_with_headers(hub_db, name="Анна")
    boris, boris_headers = await manager_with_headers(hub_db, name="Борис")
    offline, _ = await manager_with_headers(hub_db, name="Нет на месте")
    queue = await make_queue(client, admin_headers, [anna.id, boris.id, offline.id])
    await client.put(
        "/api/v1/channels/default/default-queue",
        json={"queue_id": queue["id"]},
        headers=admin_headers,
    )
    await go_online(client, anna_headers)
    await go_online(client, boris_headers)

    conversations = [await post_form(client) for _ in range(6)]
    await drain(app)

    assignees = [(await routing_of(client, admin_headers, c))["assignee_id"] for c in conversations]
    assert assignees.count(anna.id) == 3
    assert assignees.count(boris.id) == 3
    # Evenly alternates: the least recently assigned goes next.
    assert all(a != b for a, b in itertools.pairwise(assignees))
    profile = await client.get(f"/api/v1/managers/{anna.id}/routing", headers=anna_headers)
    assert profile.json()["open_conversations"] == 3
    assert profile.json()["queue_ids"] == [queue["id"]]


async def test_take_on_an_everybody_queue(
    app: Any, client: httpx.AsyncClient, hub_db: Database, admin_headers: dict[str, str]
):
    anna, anna_headers = await manager_with_headers(hub_db)
    boris, boris_headers = await manager_with_headers(hub_db)
    _outsider, outsider_headers = await manager_with_headers(hub_db)
    queue = await make_queue(client, admin_headers, [anna.id, boris.id], strategy="everybody")
    await client.put(
        "/api/v1/channels/default/default-queue",
        json={"queue_id": queue["id"]},
        headers=admin_headers,
    )
    await go_online(client, anna_headers)
    await go_online(client, boris_headers)
    conversation = await post_form(client)
    await drain(app)

    state = await routing_of(client, admin_headers, conversation)
    assert (state["routing_state"], state["assignee_id"]) == ("offered", None)
    [offer] = await history(client, admin_headers, conversation)
    assert offer["state"] == "offered"
    assert sorted(offer["detail"]["offered_to"]) == sorted([anna.id, boris.id])

    url = f"/api/v1/conversations/{conversation}/take"
    assert_error(await client.post(url, headers=admin_headers), 403, "no_manager")
    assert_error(await client.post(url, headers=outsider_headers), 409, "not_offered")
    response = await client.post(url, headers=boris_headers)
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "assigned"
    assert response.json()["manager_id"] == boris.id
    assert_error(await client.post(url, headers=anna_headers), 409, "already_taken")

    offer, taken = await history(client, admin_headers, conversation)
    assert offer["ended_at"] is not None
    assert (taken["reason"], taken["manager_id"], taken["actor_manager_id"]) == (
        "take",
        boris.id,
        boris.id,
    )
    assert (await routing_of(client, admin_headers, conversation))["assignee_id"] == boris.id
    assert_error(await client.post("/api/v1/conversations/999999/take", headers=anna_headers), 404)


async def test_manual_assign_and_transfer_are_audited(
    app: Any, client: httpx.AsyncClient, hub_db: Database, admin_headers: dict[str, str]
):
    chief, chief_headers = await manager_with_headers(hub_db, role=ManagerRole.ADMIN, name="Шеф")
    anna, anna_headers = await manager_with_headers(hub_db, name="Анна")
    boris, _ = await manager_with_headers(hub_db, name="Борис")
    vera, vera_headers = await manager_with_headers(hub_db, name="Вера")
    other_queue = await make_queue(client, admin_headers, [vera.id], name="Опт")
    conversation = await post_form(client)
    await drain(app)  # no queue anywhere: it waits
    base = f"/api/v1/conversations/{conversation}"
    assert (await routing_of(client, admin_headers, conversation))["routing_state"] == "waiting"

    response = await client.post(
        f"{base}/assign", json={"manager_id": anna.id}, headers=chief_headers
    )
    assert response.status_code == 200, response.text
    assert (response.json()["state"], response.json()["manager_id"]) == ("assigned", anna.id)
    response = await client.post(
        f"{base}/transfer", json={"manager_id": boris.id}, headers=anna_headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["reason"] == "transfer"
    await go_online(client, vera_headers)
    response = await client.post(
        f"{base}/transfer", json={"queue_id": other_queue["id"]}, headers=anna_headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["manager_id"] == vera.id
    # An operator's token acts without a manager.
    response = await client.post(
        f"{base}/assign", json={"manager_id": anna.id}, headers=admin_headers
    )
    assert response.status_code == 200, response.text

    rows = await history(client, admin_headers, conversation)
    assert [(r["state"], r["reason"], r["manager_id"], r["actor_manager_id"]) for r in rows] == [
        ("waiting", "strategy", None, None),
        ("assigned", "manual", anna.id, chief.id),
        ("assigned", "transfer", boris.id, anna.id),
        # A transfer to a queue: routing chose Vera, Anna is recorded as who transferred.
        ("assigned", "transfer", vera.id, anna.id),
        ("assigned", "manual", anna.id, None),
    ]
    assert rows[1]["actor_name"] == "Шеф" and rows[1]["manager_name"] == "Анна"
    assert "manager " + str(chief.id) in rows[1]["explanation"]
    assert f"transferred by manager {anna.id}" in rows[3]["explanation"]
    assert rows[3]["queue_name"] == "Опт"
    assert all(r["ended_at"] is not None for r in rows[:-1]) and rows[-1]["ended_at"] is None

    assert_error(
        await client.post(f"{base}/transfer", json={}, headers=anna_headers),
        422,
        "invalid_transfer",
    )
    assert_error(
        await client.post(
            f"{base}/transfer",
            json={"manager_id": anna.id, "queue_id": other_queue["id"]},
            headers=anna_headers,
        ),
        422,
        "invalid_transfer",
    )
    assert_error(
        await client.post(f"{base}/transfer", json={"queue_id": 999999}, headers=anna_headers),
        422,
        "unknown_queue",
    )
    assert_error(
        await client.post(f"{base}/assign", json={"manager_id": 999999}, headers=anna_headers),
        422,
        "unknown_manager",
    )
    assert_error(
        await client.post(
            "/api/v1/conversations/999999/assign",
            json={"manager_id": anna.id},
            headers=anna_headers,
        ),
        404,
    )
    assert_error(
        await client.get("/api/v1/conversations/999999/assignments", headers=anna_headers), 404
    )
    assert (await client.post(f"{base}/close", headers=anna_headers)).status_code == 200
    assert_error(
        await client.post(f"{base}/assign", json={"manager_id": boris.id}, headers=anna_headers),
        409,
        "conversation_closed",
    )


# Presence


async def test_presence_online_routes_a_waiting_conversation(
    app: Any, client: httpx.AsyncClient, hub_db: Database, admin_headers: dict[str, str]
):
    anna, anna_headers = await manager_with_headers(hub_db, name="Анна")
    queue = await make_queue(client, admin_headers, [anna.id])
    await client.put(
        "/api/v1/channels/default/default-queue",
        json={"queue_id": queue["id"]},
        headers=admin_headers,
    )
    conversation = await post_form(client)
    await drain(app)
    state = await routing_of(client, admin_headers, conversation)
    assert state["routing_state"] == "waiting"
    assert state["waiting_reason"] == "nobody can take it: 1 offline"
    [waiting] = await history(client, admin_headers, conversation)
    assert (waiting["state"], waiting["queue_id"]) == ("waiting", queue["id"])

    response = await client.put(
        "/api/v1/me/presence", json={"presence": "online", "ttl_seconds": 60}, headers=anna_headers
    )
    assert response.status_code == 200, response.text
    first_expiry = datetime.fromisoformat(response.json()["expires_at"])
    await drain(app)
    state = await routing_of(client, admin_headers, conversation)
    assert (state["routing_state"], state["assignee_id"]) == ("assigned", anna.id)

    # A heartbeat is the same call again: it pushes the expiry on.
    response = await client.put(
        "/api/v1/me/presence", json={"presence": "online", "ttl_seconds": 600}, headers=anna_headers
    )
    assert datetime.fromisoformat(response.json()["expires_at"]) > first_expiry
    board = {
        p["manager_id"]: p
        for p in (await client.get("/api/v1/presence", headers=anna_headers)).json()
    }
    assert board[anna.id]["presence"] == "online"

    # Administrators set anybody's presence; managers only their own; tokens need a manager.
    response = await client.put(
        f"/api/v1/managers/{anna.id}/presence", json={"presence": "away"}, headers=admin_headers
    )
    assert response.json()["presence"] == "away"
    assert_error(
        await client.put(
            f"/api/v1/managers/{anna.id}/presence",
            json={"presence": "online"},
            headers=anna_headers,
        ),
        403,
    )
    assert_error(
        await client.put("/api/v1/me/presence", json={"presence": "online"}, headers=admin_headers),
        403,
        "no_manager",
    )
    assert_error(
        await client.put("/api/v1/me/presence", json={"presence": "busy"}, headers=anna_headers),
        422,
    )
    assert_error(
        await client.put(
            "/api/v1/me/presence",
            json={"presence": "online", "ttl_seconds": 1},
            headers=anna_headers,
        ),
        422,
    )
    response = await client.put(
        "/api/v1/me/presence", json={"presence": "offline"}, headers=anna_headers
    )
    assert (response.json()["presence"], response.json()["expires_at"]) == ("offline", None)


async def test_heartbeat_expiry(
    app: Any, client: httpx.AsyncClient, hub_db: Database, admin_headers: dict[str, str]
):
    anna, anna_headers = await manager_with_headers(hub_db, name="Анна")
    queue = await make_queue(client, admin_headers, [anna.id])
    await client.put(
        "/api/v1/channels/default/default-queue",
        json={"queue_id": queue["id"]},
        headers=admin_headers,
    )
    context = app.state.context
    # The heartbeat was sent an hour ago (the API's engine runs on a clock the test holds).
    an_hour_ago = utcnow() - timedelta(hours=1)
    context.routing = RoutingEngine(RoutingConfig(), clock=lambda: an_hour_ago)
    await go_online(client, anna_headers, ttl=60)
    board = {
        p["manager_id"]: p
        for p in (await client.get("/api/v1/presence", headers=anna_headers)).json()
    }
    assert board[anna.id]["presence"] == "online"  # as seen then

    context.routing = RoutingEngine(RoutingConfig())  # back to now: it lapsed
    board = {
        p["manager_id"]: p
        for p in (await client.get("/api/v1/presence", headers=anna_headers)).json()
    }
    assert board[anna.id] == {
        "manager_id": anna.id,
        "name": "Анна",
        "is_active": True,
        "presence": "offline",
        "expires_at": None,
    }
    profile = (await client.get(f"/api/v1/managers/{anna.id}/routing", headers=anna_headers)).json()
    assert profile["presence"] == "offline"

    conversation = await post_form(client)
    await drain(app)
    state = await routing_of(client, admin_headers, conversation)
    assert state["routing_state"] == "waiting"
    assert state["waiting_reason"] == "nobody can take it: 1 offline"

    # The next heartbeat brings her back, and what waited is routed to her.
    await go_online(client, anna_headers)
    await drain(app)
    state = await routing_of(client, admin_headers, conversation)
    assert (state["routing_state"], state["assignee_id"]) == ("assigned", anna.id)


# Replies and closing


async def test_reply_stamps_first_response(
    app: Any, client: httpx.AsyncClient, hub_db: Database, admin_headers: dict[str, str]
):
    anna, anna_headers = await manager_with_headers(hub_db)
    queue = await make_queue(
        client, admin_headers, [anna.id], sla={"normal": {"first_response": 3600}}
    )
    await client.put(
        "/api/v1/channels/default/default-queue",
        json={"queue_id": queue["id"]},
        headers=admin_headers,
    )
    await go_online(client, anna_headers)
    conversation = await post_form(client)
    await drain(app)
    state = await routing_of(client, admin_headers, conversation)
    assert state["assignee_id"] == anna.id
    assert state["first_response_due_at"] is not None
    assert state["first_response_at"] is None

    url = f"/api/v1/conversations/{conversation}/messages"
    note = await client.post(
        url, json={"text": "Клиент постоянный", "note": True}, headers=anna_headers
    )
    assert note.status_code == 201, note.text
    assert (note.json()["direction"], note.json()["status"]) == ("note", "received")
    assert (await routing_of(client, admin_headers, conversation))["first_response_at"] is None

    headers = {**anna_headers, "Idempotency-Key": "reply-1"}
    reply = await client.post(url, json={"text": "Здравствуйте! Уже оформляем."}, headers=headers)
    assert reply.status_code == 201, reply.text
    body = reply.json()
    assert (body["direction"], body["status"], body["author_manager_id"]) == (
        "outbound",
        "queued",
        anna.id,
    )
    assert body["attachments"] == []
    again = await client.post(url, json={"text": "Здравствуйте! Уже оформляем."}, headers=headers)
    assert again.status_code == 201
    assert again.json()["id"] == body["id"]

    state = await routing_of(client, admin_headers, conversation)
    assert state["first_response_at"] is not None
    assert state["last_outbound_at"] == state["first_response_at"]
    messages = (await client.get(url, headers=anna_headers)).json()["items"]
    assert [m["direction"] for m in messages] == ["inbound", "note", "outbound"]

    assert_error(await client.post(url, json={"text": ""}, headers=anna_headers), 422)
    assert_error(
        await client.post(url, json={"text": "   "}, headers=anna_headers), 422, "empty_reply"
    )
    assert_error(
        await client.post(
            "/api/v1/conversations/999999/messages", json={"text": "x"}, headers=anna_headers
        ),
        404,
    )


async def test_close_frees_capacity_and_routes_the_next(
    app: Any, client: httpx.AsyncClient, hub_db: Database, admin_headers: dict[str, str]
):
    anna, anna_headers = await manager_with_headers(hub_db)
    queue = await make_queue(client, admin_headers, [anna.id])
    await client.put(
        "/api/v1/channels/default/default-queue",
        json={"queue_id": queue["id"]},
        headers=admin_headers,
    )
    response = await client.patch(
        f"/api/v1/managers/{anna.id}/routing", json={"capacity": 1}, headers=anna_headers
    )
    assert response.status_code == 200, response.text
    await go_online(client, anna_headers)
    first = await post_form(client)
    second = await post_form(client)
    await drain(app)
    assert (await routing_of(client, admin_headers, first))["assignee_id"] == anna.id
    waiting = await routing_of(client, admin_headers, second)
    assert waiting["routing_state"] == "waiting"
    assert waiting["waiting_reason"] == "nobody can take it: 1 at capacity 1/1"

    response = await client.post(f"/api/v1/conversations/{first}/close", headers=anna_headers)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "closed" and response.json()["closed_at"] is not None
    await drain(app)
    state = await routing_of(client, admin_headers, second)
    assert (state["routing_state"], state["assignee_id"]) == ("assigned", anna.id)
    # Closing again is harmless.
    assert (
        await client.post(f"/api/v1/conversations/{first}/close", headers=anna_headers)
    ).status_code == 200
    assert_error(await client.post("/api/v1/conversations/999999/close", headers=anna_headers), 404)


# Routing profiles and absences


async def test_routing_profile_and_absences(
    client: httpx.AsyncClient, hub_db: Database, admin_headers: dict[str, str]
):
    anna, anna_headers = await manager_with_headers(hub_db)
    boris, boris_headers = await manager_with_headers(hub_db)
    url = f"/api/v1/managers/{anna.id}/routing"
    profile = (await client.get(url, headers=anna_headers)).json()
    assert profile["capacity"] == 10 and profile["presence"] == "offline"
    assert profile["notify_by_email"] is True and profile["telegram_linked"] is False

    hours = {
        "timezone": "Asia/Yekaterinburg",
        "week": {"mon": [["09:00", "18:00"]]},
        "holidays": ["2027-01-01"],
    }
    response = await client.patch(
        url,
        json={
            "capacity": 5,
            "languages": ["RU", "en", "ru"],
            "working_hours": hours,
            "notify_by_email": False,
        },
        headers=anna_headers,
    )
    assert response.status_code == 200, response.text
    profile = response.json()
    assert (profile["capacity"], profile["languages"], profile["notify_by_email"]) == (
        5,
        ["ru", "en"],
        False,
    )
    assert profile["working_hours"]["timezone"] == "Asia/Yekaterinburg"
    assert profile["working_hours"]["holidays"] == ["2027-01-01"]
    response = await client.patch(url, json={"working_hours": None}, headers=admin_headers)
    assert response.json()["working_hours"] is None and response.json()["capacity"] == 5

    assert_error(await client.get(url, headers=boris_headers), 403)
    assert_error(await client.patch(url, json={"capacity": 1}, headers=boris_headers), 403)
    assert_error(
        await client.patch(url, json={"is_active": False}, headers=anna_headers),
        403,
        "admin_required",
    )
    for body in (
        {"capacity": 1001},
        {"capacity": -1},
        {"languages": ["русский"]},
        {"capacity": None},
    ):
        assert_error(await client.patch(url, json=body, headers=admin_headers), 422)
    assert_error(
        await client.patch(
            url,
            json={"working_hours": {"timezone": "Mars/Olympus", "week": {}}},
            headers=admin_headers,
        ),
        422,
    )
    assert_error(await client.get("/api/v1/managers/999999/routing", headers=admin_headers), 404)

    absences = f"/api/v1/managers/{anna.id}/absences"
    start = datetime(2027, 7, 1, 6, tzinfo=UTC)
    response = await client.post(
        absences,
        json={
            "starts_at": start.isoformat(),
            "ends_at": (start + timedelta(days=14)).isoformat(),
            "reason": "отпуск",
        },
        headers=anna_headers,
    )
    assert response.status_code == 201, response.text
    absence = response.json()
    assert absence["reason"] == "отпуск"
    assert datetime.fromisoformat(absence["starts_at"]) == start
    for bad in (
        {"starts_at": start.isoformat(), "ends_at": start.isoformat()},
        {"starts_at": "2027-07-01T09:00:00", "ends_at": "2027-07-02T09:00:00"},
        {"starts_at": (start + timedelta(days=1)).isoformat(), "ends_at": start.isoformat()},
    ):
        assert_error(
            await client.post(absences, json=bad, headers=anna_headers), 422, "invalid_input"
        )
    assert_error(
        await client.post(
            absences,
            json={
                "starts_at": start.isoformat(),
                "ends_at": (start + timedelta(days=1)).isoformat(),
            },
            headers=boris_headers,
        ),
        403,
    )
    listed = (await client.get(absences, headers=admin_headers)).json()
    assert [a["id"] for a in listed] == [absence["id"]]
    assert_error(
        await client.delete(
            f"/api/v1/managers/{boris.id}/absences/{absence['id']}", headers=admin_headers
        ),
        404,
    )
    assert (
        await client.delete(f"{absences}/{absence['id']}", headers=anna_headers)
    ).status_code == 204
    assert (await client.get(absences, headers=anna_headers)).json() == []

    # An administrator deactivates; the manager's token then stops working.
    response = await client.patch(
        f"/api/v1/managers/{boris.id}/routing", json={"is_active": False}, headers=admin_headers
    )
    assert response.json()["is_active"] is False
    assert_error(await client.get("/api/v1/presence", headers=boris_headers), 401)


async def test_an_absent_owner_is_skipped(
    app: Any, client: httpx.AsyncClient, hub_db: Database, admin_headers: dict[str, str]
):
    """A known contact goes to its owner, unless the owner is on vacation."""
    anna, anna_headers = await manager_with_headers(hub_db, name="Анна")
    boris, boris_headers = await manager_with_headers(hub_db, name="Борис")
    queue = await make_queue(client, admin_headers, [anna.id, boris.id])
    await client.put(
        "/api/v1/channels/default/default-queue",
        json={"queue_id": queue["id"]},
        headers=admin_headers,
    )
    await go_online(client, boris_headers)
    submission = {
        "name": "Иван",
        "email": "ivan.owner@example.ru",
        "message": "Первый заказ",
        "consent": True,
    }
    first = (await client.post("/forms/default", json=submission)).json()["conversation_id"]
    await drain(app)
    assert (await routing_of(client, admin_headers, first))["assignee_id"] == boris.id
    await client.post(f"/api/v1/conversations/{first}/close", headers=boris_headers)
    await drain(app)

    # Boris owns Ivan now: offline, Ivan's next request still goes to him.
    await client.put("/api/v1/me/presence", json={"presence": "offline"}, headers=boris_headers)
    second = (await client.post("/forms/default", json={**submission, "message": "Второй"})).json()
    await drain(app)
    [decision] = await history(client, admin_headers, second["conversation_id"])
    assert (decision["reason"], decision["manager_id"]) == ("owner", boris.id)

    # On vacation he is skipped: the queue decides (Anna is the one online).
    now = utcnow()
    response = await client.post(
        f"/api/v1/managers/{boris.id}/absences",
        json={
            "starts_at": (now - timedelta(hours=1)).isoformat(),
            "ends_at": (now + timedelta(days=7)).isoformat(),
        },
        headers=admin_headers,
    )
    assert response.status_code == 201
    assert (await client.get(f"/api/v1/managers/{boris.id}/routing", headers=admin_headers)).json()[
        "absent_now"
    ]
    await client.post(
        f"/api/v1/conversations/{second['conversation_id']}/close", headers=boris_headers
    )
    await go_online(client, anna_headers)
    third = (await client.post("/forms/default", json={**submission, "message": "Третий"})).json()
    await drain(app)
    [decision] = await history(client, admin_headers, third["conversation_id"])
    assert (decision["reason"], decision["manager_id"]) == ("strategy", anna.id)


async def test_openapi_lists_the_routing_endpoints(client: httpx.AsyncClient):
    paths = (await client.get("/openapi.json")).json()["paths"]
    for path in (
        "/api/v1/queues",
        "/api/v1/queues/{queue_id}/members/{manager_id}",
        "/api/v1/routing/rules/order",
        "/api/v1/managers/{manager_id}/absences/{absence_id}",
        "/api/v1/me/presence",
        "/api/v1/conversations/{conversation_id}/take",
    ):
        assert path in paths
    assert paths["/api/v1/queues"]["post"]["description"].startswith("Create a queue")
