"""Who may call /api/v1: Bearer tokens, the session cookie, administrators."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from inbox.sessions import SESSION_COOKIE
from storage.db import Database
from storage.models import ApiToken, Manager, ManagerRole, ManagerSession
from storage.types import utcnow
from tests.factories import create_manager, create_token

PASSWORD = "correct horse battery staple"


def assert_unauthorized(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"] == "unauthorized"


class TestBearerToken:
    async def test_missing(self, client: httpx.AsyncClient) -> None:
        assert_unauthorized(await client.get("/api/v1/leads"))

    @pytest.mark.parametrize(
        "authorization",
        ["Bearer omh_not-a-real-token", "Bearer ", "Basic dXNlcjpwYXNz", "omh_abc"],
    )
    async def test_wrong(
        self, client: httpx.AsyncClient, hub_db: Database, authorization: str
    ) -> None:
        await create_token(hub_db)
        response = await client.get("/api/v1/me", headers={"Authorization": authorization})
        assert_unauthorized(response)

    async def test_revoked(self, client: httpx.AsyncClient, hub_db: Database) -> None:
        token, row = await create_token(hub_db)
        headers = {"Authorization": f"Bearer {token}"}
        assert (await client.get("/api/v1/me", headers=headers)).status_code == 200
        async with hub_db.transaction() as session:
            await session.execute(
                update(ApiToken).where(ApiToken.id == row.id).values(revoked_at=utcnow())
            )
        assert_unauthorized(await client.get("/api/v1/me", headers=headers))

    async def test_operator_token_is_admin(
        self, client: httpx.AsyncClient, hub_db: Database
    ) -> None:
        token, row = await create_token(hub_db)
        response = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200
        assert response.json() == {"role": "admin", "manager": None, "token_id": row.id}

    async def test_manager_token_acts_as_the_manager(
        self, client: httpx.AsyncClient, hub_db: Database
    ) -> None:
        manager = await create_manager(hub_db, email="olga@example.ru", name="Ольга")
        token, _ = await create_token(hub_db, manager_id=manager.id)
        response = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        body = response.json()
        assert body["role"] == "manager"
        assert body["manager"]["email"] == "olga@example.ru"

    async def test_deactivated_managers_token_is_refused(
        self, client: httpx.AsyncClient, hub_db: Database
    ) -> None:
        manager = await create_manager(hub_db)
        token, _ = await create_token(hub_db, manager_id=manager.id)
        async with hub_db.transaction() as session:
            await session.execute(
                update(Manager).where(Manager.id == manager.id).values(is_active=False)
            )
        assert_unauthorized(
            await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        )

    async def test_use_is_recorded(self, client: httpx.AsyncClient, hub_db: Database) -> None:
        token, row = await create_token(hub_db)
        assert row.last_used_at is None
        await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        async with hub_db.read() as session:
            stored = await session.get(ApiToken, row.id)
        assert stored is not None and stored.last_used_at is not None


class TestSessionCookie:
    async def login(self, client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
        return await client.post("/api/v1/auth/login", json={"email": email, "password": password})

    async def test_login_me_logout(self, client: httpx.AsyncClient, hub_db: Database) -> None:
        manager = await create_manager(hub_db, email="anna@example.ru", password=PASSWORD)
        response = await self.login(client, "Anna@Example.ru", PASSWORD)
        assert response.status_code == 200, response.text
        assert response.json()["manager"]["id"] == manager.id
        set_cookie = response.headers["set-cookie"]
        assert set_cookie.startswith(f"{SESSION_COOKIE}=")
        assert "HttpOnly" in set_cookie
        assert "samesite=lax" in set_cookie.lower()
        assert "Secure" not in set_cookie
        assert "Max-Age=43200" in set_cookie

        me = await client.get("/api/v1/me")
        assert me.status_code == 200
        assert me.json()["manager"]["email"] == "anna@example.ru"
        assert (await client.get("/api/v1/leads")).status_code == 200

        logout = await client.post("/api/v1/auth/logout", headers={"Origin": "http://hub.test"})
        assert logout.status_code == 204
        assert SESSION_COOKIE not in client.cookies
        assert_unauthorized(await client.get("/api/v1/me"))

    async def test_cookie_is_secure_over_https(self, app: Any, hub_db: Database) -> None:
        await create_manager(hub_db, email="anna@example.ru", password=PASSWORD)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://hub.test") as https:
            response = await self.login(https, "anna@example.ru", PASSWORD)
        assert "Secure" in response.headers["set-cookie"]

    @pytest.mark.parametrize("password", [PASSWORD + "x", ""])
    async def test_bad_password(
        self, client: httpx.AsyncClient, hub_db: Database, password: str
    ) -> None:
        await create_manager(hub_db, email="anna@example.ru", password=PASSWORD)
        response = await self.login(client, "anna@example.ru", password)
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_credentials"
        assert "set-cookie" not in response.headers

    async def test_unknown_email(self, client: httpx.AsyncClient) -> None:
        response = await self.login(client, "ghost@example.ru", PASSWORD)
        assert response.status_code == 401

    async def test_tampered_cookie(self, client: httpx.AsyncClient, hub_db: Database) -> None:
        await create_manager(hub_db, email="anna@example.ru", password=PASSWORD)
        await self.login(client, "anna@example.ru", PASSWORD)
        value = client.cookies[SESSION_COOKIE]
        client.cookies.set(SESSION_COOKIE, value[:-2] + ("AA" if value[-2:] != "AA" else "BB"))
        assert_unauthorized(await client.get("/api/v1/me"))

    async def test_made_up_cookie(self, client: httpx.AsyncClient, hub_db: Database) -> None:
        await create_manager(hub_db)
        client.cookies.set(SESSION_COOKIE, "x" * 43)
        assert_unauthorized(await client.get("/api/v1/me"))

    async def test_expired_cookie(self, client: httpx.AsyncClient, hub_db: Database) -> None:
        await create_manager(hub_db, email="anna@example.ru", password=PASSWORD)
        await self.login(client, "anna@example.ru", PASSWORD)
        async with hub_db.transaction() as session:
            await session.execute(
                update(ManagerSession).values(expires_at=utcnow() - timedelta(minutes=1))
            )
        assert_unauthorized(await client.get("/api/v1/me"))

    async def test_deactivated_manager(self, client: httpx.AsyncClient, hub_db: Database) -> None:
        manager = await create_manager(hub_db, email="anna@example.ru", password=PASSWORD)
        await self.login(client, "anna@example.ru", PASSWORD)
        async with hub_db.transaction() as session:
            await session.execute(
                update(Manager).where(Manager.id == manager.id).values(is_active=False)
            )
        assert_unauthorized(await client.get("/api/v1/me"))

    async def test_bearer_header_wins_over_cookie(
        self, client: httpx.AsyncClient, hub_db: Database
    ) -> None:
        await create_manager(hub_db, email="anna@example.ru", password=PASSWORD)
        await self.login(client, "anna@example.ru", PASSWORD)
        response = await client.get("/api/v1/me", headers={"Authorization": "Bearer omh_bad"})
        assert_unauthorized(response)


class TestAdminOnly:
    async def test_manager_is_forbidden(self, client: httpx.AsyncClient, hub_db: Database) -> None:
        await create_manager(hub_db, email="anna@example.ru", password=PASSWORD)
        await client.post(
            "/api/v1/auth/login", json={"email": "anna@example.ru", "password": PASSWORD}
        )
        response = await client.get("/api/v1/managers")
        assert response.status_code == 403
        assert response.json()["error"] == "admin_required"

    async def test_admin_manager_and_operator_token_may(
        self, client: httpx.AsyncClient, hub_db: Database, admin_headers: dict[str, str]
    ) -> None:
        admin = await create_manager(hub_db, email="root@example.ru", role=ManagerRole.ADMIN)
        token, _ = await create_token(hub_db, manager_id=admin.id)
        for headers in (admin_headers, {"Authorization": f"Bearer {token}"}):
            response = await client.get("/api/v1/managers", headers=headers)
            assert response.status_code == 200
            assert [m["email"] for m in response.json()] == ["root@example.ru"]
