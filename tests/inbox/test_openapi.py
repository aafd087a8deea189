"""The OpenAPI document tells the truth: every refusal a route can give is declared, every
id is range-checked, and a bounded schemathesis run over every operation of the served
hub finds no 5xx, no undeclared status and no answer that breaks its schema."""

from __future__ import annotations

import asyncio
import inspect
import re
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import requests
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from inbox import api, calls_api, channels_api, claims_api, routing_api, telegram_link_api
from inbox.deps import require_admin
from storage.db import Database
from storage.types import MAX_DB_INT
from tests.factories import create_channel, create_manager, create_token, ingest_message

API_ROUTERS = [api, calls_api, channels_api, claims_api, routing_api, telegram_link_api]


def _api_routes() -> Iterator[Any]:
    for module in API_ROUTERS:
        yield from module.router.routes


def _depends_on(dependant: Any, call: Any) -> bool:
    return any(d.call is call or _depends_on(d, call) for d in dependant.dependencies)


def _integers(schema: Any, document: dict[str, Any], where: str) -> Iterator[tuple[str, Any]]:
    """Every integer schema inside `schema`, following $refs, with where it was found."""
    if isinstance(schema, dict):
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            yield from _integers(document["components"]["schemas"][name], document, name)
            return
        if schema.get("type") == "integer":
            yield where, schema
        for key, value in schema.items():
            yield from _integers(value, document, f"{where}.{key}")
    elif isinstance(schema, list):
        for item in schema:
            yield from _integers(item, document, where)


class TestDeclaredAnswers:
    async def test_every_refusal_of_every_api_route_is_declared(
        self, client: httpx.AsyncClient
    ) -> None:
        document = (await client.get("/openapi.json")).json()
        missing = []
        for route in _api_routes():
            for method in route.methods:
                declared = set(document["paths"][route.path][method.lower()]["responses"])
                needed = {"401", "422"}
                if "{" in route.path and not route.path.endswith("/me/telegram-link"):
                    needed.add("404")
                source = inspect.getsource(route.endpoint)
                if (
                    _depends_on(route.dependant, require_admin)
                    or "require_self_or_admin(" in source
                    or "caller_manager(" in source
                    or "Forbidden(" in source
                ):
                    needed.add("403")
                for error, status in (("Conflict(", "409"), ("PayloadTooLarge(", "413")):
                    if error in source:
                        needed.add(status)
                if needed - declared:
                    missing.append(f"{method} {route.path}: {sorted(needed - declared)}")
                responses = document["paths"][route.path][method.lower()]["responses"]
                descriptions = " ".join(r.get("description", "") for r in responses.values())
                for code in re.findall(r'code="([a-z_]+)"', source):
                    if f"`{code}`" not in descriptions:
                        missing.append(f"{method} {route.path}: code {code} not declared")
        assert not missing, "\n".join(missing)

    async def test_every_id_and_count_taken_is_bounded(self, client: httpx.AsyncClient) -> None:
        document = (await client.get("/openapi.json")).json()
        unbounded = []
        for path, operations in document["paths"].items():
            for method, operation in operations.items():
                inputs: list[Any] = [p["schema"] for p in operation.get("parameters", [])]
                for media in operation.get("requestBody", {}).get("content", {}).values():
                    inputs.append(media["schema"])
                for schema in inputs:
                    for where, integer in _integers(schema, document, f"{method} {path}"):
                        # FastAPI writes bounds as floats: 2**63 exclusive is exact.
                        if not (
                            integer.get("maximum", MAX_DB_INT + 1) <= MAX_DB_INT
                            or integer.get("exclusiveMaximum", MAX_DB_INT + 2) <= MAX_DB_INT + 1
                        ):
                            unbounded.append(where)
        assert not unbounded, "\n".join(unbounded)


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    # Listening already: connections wait in the backlog until the server accepts them.
    sock.listen()
    return sock


async def _some_records(db: Database) -> None:
    """A little of everything, so reads and writes meet rows as well as 404s."""
    channel = await create_channel(db, key="site")
    await create_manager(db, email="anna@example.ru")
    for number in range(3):
        await ingest_message(db, channel, email=f"client{number}@example.ru", text="Нужны окна")


def _run_schemathesis(document: dict[str, Any], base_url: str, token: str) -> list[str]:
    """Every operation, a bounded number of examples each (derandomized: the same every run);
    the labels of the operations that failed, with the failure."""
    schema = schemathesis.openapi.from_dict(document)
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        strategy = operation.as_strategy(GenerationMode.POSITIVE) | operation.as_strategy(
            GenerationMode.NEGATIVE
        )

        @given(case=strategy)
        @settings(
            max_examples=12,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            case.call_and_validate(base_url=base_url, session=session, checks=checks)

        try:
            run()
        except (Exception, BaseExceptionGroup) as exc:
            failures.append(f"{operation.label}: {str(exc)[:1500]}")
    return failures


async def test_schemathesis_finds_nothing(app: Any, hub_db: Database) -> None:
    await _some_records(hub_db)
    token, _row = await create_token(hub_db, name="schemathesis")
    sock = _free_socket()
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        host, port = sock.getsockname()
        document = app.openapi()
        failures = await asyncio.to_thread(
            _run_schemathesis, document, f"http://{host}:{port}", token
        )
    finally:
        server.should_exit = True
        await serving
        sock.close()
    assert failures == [], "\n\n".join(failures)
