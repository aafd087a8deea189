"""Every kind of response carries X-Content-Type-Options and Referrer-Policy: pages,
scripts, JSON, the API's refusals, unknown paths and the body limit's own 413."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

REQUESTS = [
    ("GET", "/healthz", {}),
    ("GET", "/forms/default", {}),
    ("GET", "/forms/default/embed.js", {}),
    ("GET", "/docs", {}),
    ("GET", "/openapi.json", {}),
    ("GET", "/api/v1/leads", {}),  # 401: no token
    ("GET", "/no/such/page", {}),  # 404
    ("DELETE", "/healthz", {}),  # 405
    ("POST", "/forms/default", {"json": {"name": "Иван"}}),  # 422
    ("POST", "/webhooks/telephony/pbx/token", {"content": b"x" * (1024 * 1024)}),  # 413
]


@pytest.mark.parametrize(("method", "path", "options"), REQUESTS, ids=[r[1] for r in REQUESTS])
async def test_every_response_carries_the_security_headers(
    client: httpx.AsyncClient, method: str, path: str, options: dict[str, object]
) -> None:
    response = await client.request(method, path, **options)

    assert response.headers.get("x-content-type-options") == "nosniff", response.status_code
    assert response.headers.get("referrer-policy") == "strict-origin-when-cross-origin"


async def test_the_kinds_of_answers_above_are_what_they_claim(client: httpx.AsyncClient) -> None:
    statuses = [(await client.request(m, p, **o)).status_code for m, p, o in REQUESTS]

    assert statuses == [200, 200, 200, 200, 200, 401, 404, 405, 422, 413]


async def test_a_failure_is_answered_in_the_error_shape_with_the_headers(app: FastAPI) -> None:
    async def broken() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/broken-for-this-test", broken)
    # As a server does: the exception reaches the server after the answer is sent.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as http:
        response = await http.get("/broken-for-this-test")

    assert response.status_code == 500
    assert response.json()["error"] == "internal_error"
    assert "a bug" not in response.text
    assert response.headers.get("x-content-type-options") == "nosniff"
    assert response.headers.get("referrer-policy") == "strict-origin-when-cross-origin"
