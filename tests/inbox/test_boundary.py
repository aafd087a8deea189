"""What the REST API refuses at its boundary, the same on SQLite and PostgreSQL: control
characters in filters and bodies, integers past 64 bits, non-boolean booleans; and the
`Allow` header of a 405."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

# Every list endpoint with the string filters it takes (and its cursor).
LIST_FILTERS: dict[str, tuple[str, ...]] = {
    "/api/v1/leads": ("text", "channel", "source", "status", "assignee_id", "cursor"),
    "/api/v1/leads/export.csv": ("text", "channel", "status"),
    "/api/v1/contacts": ("q", "phone", "email", "name", "cursor"),
    "/api/v1/conversations": ("status", "channel", "assignee_id", "cursor"),
    "/api/v1/claims": ("status", "reason", "manager_id", "cursor"),
    "/api/v1/tasks": ("status", "kind", "assignee_id", "cursor"),
    "/api/v1/calls": ("direction", "state", "channel", "number", "cursor"),
    "/api/v1/email/quarantine": ("channel_key", "status"),
    "/api/v1/channels": ("kind",),
}


def refused(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    return body


class TestControlCharacters:
    @pytest.mark.parametrize("path", list(LIST_FILTERS))
    async def test_a_nul_in_a_filter_is_refused(
        self, client: httpx.AsyncClient, admin_headers: dict[str, str], path: str
    ) -> None:
        for name in LIST_FILTERS[path]:
            for value in ("%00", "ab%00cd", "a%01b", "%1B[31m"):
                response = await client.get(f"{path}?{name}={value}", headers=admin_headers)
                body = refused(response)
                assert body["error"] == "invalid_characters", (name, value, body)
                assert name in str(body["detail"])

    async def test_plain_filters_still_work(
        self, client: httpx.AsyncClient, admin_headers: dict[str, str]
    ) -> None:
        response = await client.get(
            "/api/v1/leads", params={"text": "окна\tдом"}, headers=admin_headers
        )
        assert refused(response)["error"] == "invalid_characters"
        response = await client.get(
            "/api/v1/leads", params={"text": "окна дом"}, headers=admin_headers
        )
        assert response.status_code == 200, response.text
        assert response.json() == {"items": [], "next_cursor": None}

    async def test_a_nul_in_a_path_is_refused(
        self, client: httpx.AsyncClient, admin_headers: dict[str, str]
    ) -> None:
        response = await client.delete("/api/v1/telephony/blocklist/%2B7%00", headers=admin_headers)
        assert refused(response)["error"] == "invalid_characters"

    async def test_a_nul_in_a_body_is_refused_and_nothing_is_stored(
        self, client: httpx.AsyncClient, admin_headers: dict[str, str]
    ) -> None:
        response = await client.post(
            "/api/v1/routing/rules",
            content='{"name": "vip\\u0000", "conditions": {"keywords": ["a"]}}',
            headers={**admin_headers, "Content-Type": "application/json"},
        )
        assert refused(response)["error"] == "invalid_characters"
        response = await client.post(
            "/api/v1/queues",
            json={"key": "sales", "name": "Продажи", "sla": {}, "working_hours": None},
            headers=admin_headers,
        )
        assert response.status_code == 201, response.text
        rules = await client.get("/api/v1/routing/rules", headers=admin_headers)
        assert rules.json() == []
        # A backslash before "u0000" is text, not a NUL.
        response = await client.post(
            "/api/v1/routing/rules",
            content='{"name": "C:\\\\u0000"}',
            headers={**admin_headers, "Content-Type": "application/json"},
        )
        assert response.status_code == 201, response.text
        assert response.json()["name"] == "C:\\u0000"


TOO_BIG = 2**63


class TestLargeIntegers:
    @pytest.mark.parametrize("field", ["queue_id", "manager_id"])
    async def test_rule_actions_past_64_bits(
        self, client: httpx.AsyncClient, admin_headers: dict[str, str], field: str
    ) -> None:
        response = await client.post(
            "/api/v1/routing/rules",
            json={"name": "big", "actions": {field: TOO_BIG}},
            headers=admin_headers,
        )
        assert refused(response)["error"] == "invalid_input"
        created = await client.post(
            "/api/v1/routing/rules", json={"name": "small"}, headers=admin_headers
        )
        assert created.status_code == 201, created.text
        rule_id = created.json()["id"]
        response = await client.patch(
            f"/api/v1/routing/rules/{rule_id}",
            json={"actions": {field: TOO_BIG}},
            headers=admin_headers,
        )
        assert refused(response)["error"] == "invalid_input"
        response = await client.patch(
            f"/api/v1/routing/rules/{rule_id}",
            json={"actions": {field: -1}},
            headers=admin_headers,
        )
        assert refused(response)["error"] == "invalid_input"

    @pytest.mark.parametrize(
        "path", ["/api/v1/leads/{}", "/api/v1/queues/{}", "/api/v1/claims/{}", "/api/v1/tasks/{}"]
    )
    async def test_ids_in_paths_past_64_bits(
        self, client: httpx.AsyncClient, admin_headers: dict[str, str], path: str
    ) -> None:
        response = await client.get(path.format(TOO_BIG), headers=admin_headers)
        assert response.status_code in (404, 422), response.text
        assert response.json()["error"] in ("not_found", "invalid_input")

    async def test_ids_in_filters_past_64_bits(
        self, client: httpx.AsyncClient, admin_headers: dict[str, str]
    ) -> None:
        for path, name in [
            ("/api/v1/conversations", "contact_id"),
            ("/api/v1/claims", "channel_id"),
            ("/api/v1/calls", "manager_id"),
            ("/api/v1/tasks", "contact_id"),
            ("/api/v1/claims", "manager_id"),
            ("/api/v1/leads", "assignee_id"),
        ]:
            response = await client.get(path, params={name: TOO_BIG}, headers=admin_headers)
            assert refused(response)["error"] in (
                "invalid_input",
                "invalid_assignee",
                "invalid_manager",
            ), name


class TestStrictBooleans:
    @pytest.mark.parametrize("value", [0, 1, "true", "yes", None])
    async def test_is_active_takes_only_true_or_false(
        self, client: httpx.AsyncClient, admin_headers: dict[str, str], value: Any
    ) -> None:
        response = await client.post(
            "/api/v1/routing/rules",
            json={"name": "strict", "is_active": value},
            headers=admin_headers,
        )
        assert refused(response)["error"] == "invalid_input"
        response = await client.post(
            "/api/v1/queues",
            json={"key": "strict", "name": "Strict", "is_active": value},
            headers=admin_headers,
        )
        assert refused(response)["error"] == "invalid_input"
        assert (await client.get("/api/v1/routing/rules", headers=admin_headers)).json() == []
        assert (await client.get("/api/v1/queues", headers=admin_headers)).json() == []

    async def test_false_is_false(
        self, client: httpx.AsyncClient, admin_headers: dict[str, str]
    ) -> None:
        response = await client.post(
            "/api/v1/routing/rules",
            json={"name": "off", "is_active": False},
            headers=admin_headers,
        )
        assert response.status_code == 201, response.text
        assert response.json()["is_active"] is False


class TestMethodNotAllowed:
    @pytest.mark.parametrize(
        ("method", "path", "allowed"),
        [
            ("POST", "/api/v1/queues/1", {"GET", "PATCH", "DELETE"}),
            ("PUT", "/api/v1/leads/1", {"GET", "PATCH"}),
            ("DELETE", "/api/v1/leads", {"GET"}),
            # The path is also /routing/rules/{rule_id}, whose methods count too.
            ("POST", "/api/v1/routing/rules/order", {"GET", "PUT", "PATCH", "DELETE"}),
            ("PATCH", "/api/v1/queues/1/members", {"GET", "PUT", "POST"}),
        ],
    )
    async def test_allow_lists_every_method_of_the_path(
        self,
        client: httpx.AsyncClient,
        admin_headers: dict[str, str],
        method: str,
        path: str,
        allowed: set[str],
    ) -> None:
        response = await client.request(method, path, headers=admin_headers)
        assert response.status_code == 405, response.text
        assert response.json()["error"] == "method_not_allowed"
        assert set(response.headers["allow"].replace(" ", "").split(",")) == allowed
