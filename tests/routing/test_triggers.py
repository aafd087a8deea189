"""What makes a waiting conversation move, and what a transfer or a closed one refuses."""

from __future__ import annotations

from typing import Any

import httpx

from tests.factories import (
    assert_error,
    drain,
    go_online,
    make_queue,
    manager_with_headers,
    post_form,
    routing_of,
)


class TestWaitingMoves:
    async def test_a_default_queue_set_later_routes_what_waited_for_one(
        self, app: Any, client: httpx.AsyncClient, hub_db: Any, admin_headers: dict[str, str]
    ) -> None:
        manager, headers = await manager_with_headers(hub_db)
        await go_online(client, headers)
        conversation_id = await post_form(client)
        await drain(app)
        waiting = await routing_of(client, admin_headers, conversation_id)
        assert waiting["routing_state"] == "waiting"
        assert "no queue" in waiting["waiting_reason"]

        queue = await make_queue(client, admin_headers, [manager.id])
        response = await client.put(
            "/api/v1/channels/default/default-queue",
            json={"queue_id": queue["id"]},
            headers=admin_headers,
        )
        assert response.status_code == 200, response.text
        await drain(app)

        routed = await routing_of(client, admin_headers, conversation_id)
        assert routed["routing_state"] == "assigned"
        assert routed["assignee_id"] == manager.id

    async def test_more_capacity_routes_what_waited_for_room(
        self, app: Any, client: httpx.AsyncClient, hub_db: Any, admin_headers: dict[str, str]
    ) -> None:
        manager, headers = await manager_with_headers(hub_db)
        await go_online(client, headers)
        queue = await make_queue(client, admin_headers, [manager.id])
        await client.put(
            "/api/v1/channels/default/default-queue",
            json={"queue_id": queue["id"]},
            headers=admin_headers,
        )
        response = await client.patch(
            f"/api/v1/managers/{manager.id}/routing", json={"capacity": 1}, headers=admin_headers
        )
        assert response.status_code == 200, response.text
        first = await post_form(client)
        second = await post_form(client)
        await drain(app)
        assert (await routing_of(client, admin_headers, first))["assignee_id"] == manager.id
        assert (await routing_of(client, admin_headers, second))["routing_state"] == "waiting"

        response = await client.patch(
            f"/api/v1/managers/{manager.id}/routing", json={"capacity": 2}, headers=admin_headers
        )
        assert response.status_code == 200, response.text
        await drain(app)

        assert (await routing_of(client, admin_headers, second))["assignee_id"] == manager.id


class TestTransferAndClosed:
    async def test_a_transfer_to_a_queue_never_returns_to_the_same_manager(
        self, app: Any, client: httpx.AsyncClient, hub_db: Any, admin_headers: dict[str, str]
    ) -> None:
        anna, anna_headers = await manager_with_headers(hub_db, name="Анна")
        boris, boris_headers = await manager_with_headers(hub_db, name="Борис")
        await go_online(client, anna_headers)
        await go_online(client, boris_headers)
        queue = await make_queue(client, admin_headers, [anna.id, boris.id])
        conversation_id = await post_form(client)
        response = await client.post(
            f"/api/v1/conversations/{conversation_id}/assign",
            json={"manager_id": anna.id},
            headers=admin_headers,
        )
        assert response.status_code == 200, response.text

        response = await client.post(
            f"/api/v1/conversations/{conversation_id}/transfer",
            json={"queue_id": queue["id"]},
            headers=anna_headers,
        )
        assert response.status_code == 200, response.text
        assert (await routing_of(client, admin_headers, conversation_id))["assignee_id"] == boris.id

    async def test_a_closed_conversation_is_not_assigned(
        self, app: Any, client: httpx.AsyncClient, hub_db: Any, admin_headers: dict[str, str]
    ) -> None:
        anna, _headers = await manager_with_headers(hub_db)
        conversation_id = await post_form(client)
        response = await client.post(
            f"/api/v1/conversations/{conversation_id}/close", headers=admin_headers
        )
        assert response.status_code == 200, response.text

        response = await client.post(
            f"/api/v1/conversations/{conversation_id}/assign",
            json={"manager_id": anna.id},
            headers=admin_headers,
        )
        assert_error(response, 409, "conversation_closed")
