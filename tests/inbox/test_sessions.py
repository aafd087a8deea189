"""Cookie sessions: revocable on the server, guarded against CSRF, sign-in rate-limited."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from inbox.sessions import CSRF_HEADER, SESSION_COOKIE
from storage.db import Database
from storage.models import ManagerRole, ManagerSession
from tests.conftest import REDIS_URL
from tests.factories import create_channel, create_manager, create_token, ingest_message

PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "another horse, another battery"
BASE = "http://hub.test"


def assert_unauthorized(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "unauthorized"


async def login(
    client: httpx.AsyncClient, email: str, password: str = PASSWORD, **kwargs: Any
) -> httpx.Response:
    return await client.post(
        "/api/v1/auth/login", json={"email": email, "password": password}, **kwargs
    )


async def signed_in(client: httpx.AsyncClient, email: str) -> str:
    """Sign in `client`; returns the session cookie's value."""
    response = await login(client, email)
    assert response.status_code == 200, response.text
    return client.cookies[SESSION_COOKIE]


def with_cookie(value: str) -> dict[str, str]:
    return {"Cookie": f"{SESSION_COOKIE}={value}"}


ClientFactory = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def another_client(app: Any) -> ClientFactory:
    """A second browser on the same hub (its own cookie jar, optionally its own IP)."""

    @asynccontextmanager
    async def make(ip: str = "127.0.0.1") -> AsyncIterator[httpx.AsyncClient]:
        transport = httpx.ASGITransport(app=app, client=(ip, 40000))
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
            yield http

    return make


class TestRevocation:
    async def test_logout_ends_the_session_on_the_server(
        self, client: httpx.AsyncClient, hub_db: Database
    ) -> None:
        await create_manager(hub_db, email="anna@example.ru", password=PASSWORD)
        cookie = await signed_in(client, "anna@example.ru")
        assert (await client.post("/api/v1/auth/logout", headers={"Origin": BASE})).status_code == (
            204
        )
        # The old cookie, replayed by someone who kept it, no longer works.
        client.cookies.clear()
        assert_unauthorized(await client.get("/api/v1/me", headers=with_cookie(cookie)))

    async def test_logout_everywhere(
        self, client: httpx.AsyncClient, hub_db: Database, another_client: ClientFactory
    ) -> None:
        await create_manager(hub_db, email="anna@example.ru", password=PASSWORD)
        async with another_client() as laptop:
            laptop_cookie = await signed_in(laptop, "anna@example.ru")
            await signed_in(client, "anna@example.ru")
            response = await client.post("/api/v1/auth/logout-all", headers={"Origin": BASE})
            assert response.status_code == 204, response.text
            assert_unauthorized(await laptop.get("/api/v1/me"))
        client.cookies.clear()
        assert_unauthorized(await client.get("/api/v1/me", headers=with_cookie(laptop_cookie)))

    async def test_deactivation_ends_sessions_for_good(
        self,
        client: httpx.AsyncClient,
        hub_db: Database,
        admin_headers: dict[str, str],
        another_client: ClientFactory,
    ) -> None:
        manager = await create_manager(hub_db, email="anna@example.ru", password=PASSWORD)
        async with another_client() as browser:
            await signed_in(browser, "anna@example.ru")
            assert (await browser.get("/api/v1/me")).status_code == 200
            path = f"/api/v1/managers/{manager.id}/routing"
            off = await client.patch(path, json={"is_active": False}, headers=admin_headers)
            assert off.status_code == 200, off.text
            assert_unauthorized(await browser.get("/api/v1/me"))
            # Reactivating the manager does not bring the old session back.
            on = await client.patch(path, json={"is_active": True}, headers=admin_headers)
            assert on.status_code == 200, on.text
            assert_unauthorized(await browser.get("/api/v1/me"))

    async def test_password_change_ends_other_sessions(
        self, client: httpx.AsyncClient, hub_db: Database, another_client: ClientFactory
    ) -> None:
        await create_manager(hub_db, email="anna@example.ru", password=PASSWORD)
        async with another_client() as stolen:
            await signed_in(stolen, "anna@example.ru")
            old = await signed_in(client, "anna@example.ru")
            response = await client.post(
                "/api/v1/auth/password",
                json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
                headers={"Origin": BASE},
            )
            assert response.status_code == 204, response.text
            assert_unauthorized(await stolen.get("/api/v1/me"))
        # The caller goes on in a new session; its previous cookie is dead too.
        assert client.cookies[SESSION_COOKIE] != old
        assert (await client.get("/api/v1/me")).status_code == 200
        assert_unauthorized(
            await client.get("/api/v1/me", headers={"Cookie": f"{SESSION_COOKIE}={old}"})
        )
        async with another_client() as fresh:
            assert (await login(fresh, "anna@example.ru", PASSWORD)).status_code == 401
            assert (await login(fresh, "anna@example.ru", NEW_PASSWORD)).status_code == 200

    async def test_password_change_needs_the_current_password(
        self, client: httpx.AsyncClient, hub_db: Database
    ) -> None:
        await create_manager(hub_db, email="anna@example.ru", password=PASSWORD)
        await signed_in(client, "anna@example.ru")
        response = await client.post(
            "/api/v1/auth/password",
            json={"current_password": "guess", "new_password": NEW_PASSWORD},
            headers={"Origin": BASE},
        )
        assert response.status_code == 403, response.text
        assert response.json()["error"] == "invalid_credentials"
        assert (await client.get("/api/v1/me")).status_code == 200

    async def test_session_is_recorded(self, client: httpx.AsyncClient, hub_db: Database) -> None:
        manager = await create_manager(hub_db, email="anna@example.ru", password=PASSWORD)
        cookie = await signed_in(client, "anna@example.ru")
        async with hub_db.read() as session:
            rows = (await session.scalars(select(ManagerSession))).all()
        assert len(rows) == 1
        stored = rows[0]
        assert stored.manager_id == manager.id
        assert cookie not in stored.token_hash  # only a hash is kept
        assert stored.revoked_at is None and stored.last_seen_at is not None


class TestCsrf:
    @pytest.fixture
    async def conversation_id(self, hub_db: Database) -> int:
        channel = await create_channel(hub_db)
        result = await ingest_message(hub_db, channel, email="client@example.ru")
        return result.conversation_id

    @pytest.fixture
    async def anna(self, client: httpx.AsyncClient, hub_db: Database) -> str:
        await create_manager(
            hub_db, email="anna@example.ru", password=PASSWORD, role=ManagerRole.ADMIN
        )
        response = await login(client, "anna@example.ru")
        token: str = response.headers[CSRF_HEADER]
        return token

    async def close(
        self, client: httpx.AsyncClient, conversation_id: int, headers: dict[str, str]
    ) -> httpx.Response:
        return await client.post(f"/api/v1/conversations/{conversation_id}/close", headers=headers)

    async def status(self, client: httpx.AsyncClient, conversation_id: int) -> str:
        response = await client.get(f"/api/v1/conversations/{conversation_id}")
        status: str = response.json()["status"]
        return status

    async def test_foreign_origin_is_refused(
        self, client: httpx.AsyncClient, anna: str, conversation_id: int
    ) -> None:
        response = await self.close(client, conversation_id, {"Origin": "https://evil.example"})
        assert response.status_code == 403, response.text
        assert response.json()["error"] == "csrf_origin"
        assert await self.status(client, conversation_id) == "open"

    async def test_foreign_origin_is_refused_even_with_the_token(
        self, client: httpx.AsyncClient, anna: str, conversation_id: int
    ) -> None:
        headers = {"Origin": "https://evil.example", CSRF_HEADER: anna}
        response = await self.close(client, conversation_id, headers)
        assert response.status_code == 403
        assert await self.status(client, conversation_id) == "open"

    async def test_foreign_referer_is_refused(
        self, client: httpx.AsyncClient, anna: str, conversation_id: int
    ) -> None:
        headers = {"Referer": "https://evil.example/page?x=1"}
        response = await self.close(client, conversation_id, headers)
        assert response.status_code == 403
        assert response.json()["error"] == "csrf_origin"
        assert await self.status(client, conversation_id) == "open"

    async def test_null_origin_is_refused(
        self, client: httpx.AsyncClient, anna: str, conversation_id: int
    ) -> None:
        response = await self.close(client, conversation_id, {"Origin": "null"})
        assert response.status_code == 403
        assert await self.status(client, conversation_id) == "open"

    async def test_neither_origin_nor_token_is_refused(
        self, client: httpx.AsyncClient, anna: str, conversation_id: int
    ) -> None:
        response = await self.close(client, conversation_id, {})
        assert response.status_code == 403, response.text
        assert response.json()["error"] == "csrf_required"
        assert await self.status(client, conversation_id) == "open"

    async def test_wrong_token_is_refused(
        self, client: httpx.AsyncClient, anna: str, conversation_id: int
    ) -> None:
        response = await self.close(client, conversation_id, {CSRF_HEADER: anna[:-2] + "xx"})
        assert response.status_code == 403
        assert response.json()["error"] == "csrf_token"
        assert await self.status(client, conversation_id) == "open"

    @pytest.mark.parametrize(
        "headers",
        [{"Origin": BASE}, {"Referer": f"{BASE}/inbox/conversations/1"}, {}],
        ids=["origin", "referer", "token-only"],
    )
    async def test_own_pages_may(
        self,
        client: httpx.AsyncClient,
        anna: str,
        conversation_id: int,
        headers: dict[str, str],
    ) -> None:
        if not headers:
            headers = {CSRF_HEADER: anna}
        response = await self.close(client, conversation_id, headers)
        assert response.status_code == 200, response.text
        assert await self.status(client, conversation_id) == "closed"

    async def test_public_url_is_our_origin(
        self, hub_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, hub_db: Database
    ) -> None:
        # hub_db is the app fixture's; a second app with a public URL shares its database.
        from hub.app import create_app
        from hub.settings import Settings

        monkeypatch.setenv("OMNIHUB_PUBLIC_URL", "https://hub.example.ru/")
        application = create_app(Settings())
        await create_manager(hub_db, email="boris@example.ru", password=PASSWORD)
        async with application.router.lifespan_context(application):
            transport = httpx.ASGITransport(app=application)
            async with httpx.AsyncClient(transport=transport, base_url="http://10.0.0.5") as http:
                await signed_in(http, "boris@example.ru")
                ok = await http.post(
                    "/api/v1/auth/logout", headers={"Origin": "https://hub.example.ru"}
                )
                assert ok.status_code == 204, ok.text

    async def test_token_is_accepted_as_a_form_field(
        self, client: httpx.AsyncClient, anna: str
    ) -> None:
        cookie = client.cookies[SESSION_COOKIE]
        response = await client.post("/api/v1/auth/logout", data={"csrf_token": anna})
        assert response.status_code == 204, response.text
        client.cookies.clear()
        assert_unauthorized(await client.get("/api/v1/me", headers=with_cookie(cookie)))

    async def test_token_is_given_to_the_signed_in_page(
        self, client: httpx.AsyncClient, anna: str
    ) -> None:
        me = await client.get("/api/v1/me")
        assert me.headers[CSRF_HEADER] == anna

    async def test_bearer_requests_are_not_subject(
        self, client: httpx.AsyncClient, hub_db: Database, conversation_id: int
    ) -> None:
        token, _row = await create_token(hub_db)
        headers = {"Authorization": f"Bearer {token}", "Origin": "https://evil.example"}
        response = await self.close(client, conversation_id, headers)
        assert response.status_code == 200, response.text

    async def test_login_from_a_foreign_page_is_refused(
        self, client: httpx.AsyncClient, hub_db: Database
    ) -> None:
        await create_manager(hub_db, email="anna@example.ru", password=PASSWORD)
        response = await login(client, "anna@example.ru", headers={"Origin": "https://evil.ex"})
        assert response.status_code == 403
        assert SESSION_COOKIE not in client.cookies


@pytest.fixture
def limited_app(
    hub_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., AbstractAsyncContextManager[Any]]:
    """A hub with small sign-in limits: 3 per account, 5 per client IP (per 15 minutes)."""
    from hub.app import create_app
    from hub.settings import Settings

    @asynccontextmanager
    async def make(**env: str) -> AsyncIterator[Any]:
        monkeypatch.setenv("OMNIHUB_LOGIN_RATE_LIMIT", "3/15m")
        monkeypatch.setenv("OMNIHUB_LOGIN_IP_RATE_LIMIT", "5/15m")
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        application = create_app(Settings())
        async with application.router.lifespan_context(application):
            yield application

    return make


def client_at(application: Any, ip: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=application, client=(ip, 40000))
    return httpx.AsyncClient(transport=transport, base_url=BASE)


def assert_limited(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert response.json()["error"] == "rate_limited"
    assert int(response.headers["retry-after"]) >= 1


@pytest.mark.parametrize("backend", ["memory", "redis"])
class TestLoginRateLimit:
    def env(self, backend: str) -> dict[str, str]:
        return {"OMNIHUB_REDIS_URL": REDIS_URL} if backend == "redis" else {}

    async def test_per_account(
        self, limited_app: Callable[..., AbstractAsyncContextManager[Any]], backend: str
    ) -> None:
        # Unique names: the Redis server is shared with other test runs.
        email = f"anna-{uuid.uuid4().hex[:8]}@example.ru"
        async with limited_app(**self.env(backend)) as application:
            await create_manager(application.state.context.db, email=email, password=PASSWORD)
            answers = []
            # From ever new addresses, as a botnet would: only the account's limit applies.
            for n in range(4):
                async with client_at(application, f"10.{n}.{uuid.uuid4().int % 250}.1") as http:
                    answers.append(await login(http, email, "wrong"))
            assert [a.status_code for a in answers[:3]] == [401, 401, 401]
            assert_limited(answers[3])
            # Not even the right password gets through while the account is limited...
            async with client_at(application, "10.200.0.1") as http:
                assert_limited(await login(http, email, PASSWORD))
            # ...and another account is not affected.
            other = f"boris-{uuid.uuid4().hex[:8]}@example.ru"
            await create_manager(application.state.context.db, email=other, password=PASSWORD)
            async with client_at(application, "10.201.0.1") as http:
                assert (await login(http, other)).status_code == 200

    async def test_per_client_ip(
        self, limited_app: Callable[..., AbstractAsyncContextManager[Any]], backend: str
    ) -> None:
        ip = f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.9"
        async with limited_app(**self.env(backend)) as application:
            async with client_at(application, ip) as http:
                answers = [
                    await login(http, f"guess{n}-{uuid.uuid4().hex[:6]}@example.ru", "x")
                    for n in range(6)
                ]
            assert [a.status_code for a in answers[:5]] == [401] * 5
            assert_limited(answers[5])
