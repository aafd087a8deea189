"""intake.accounts: password hashing, managers and API tokens (both backends)."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from sqlalchemy import select

from intake.accounts import (
    authenticate_manager,
    authenticate_token,
    create_manager,
    hash_password,
    list_managers,
    revoke_api_token,
    verify_password,
)
from storage.db import Database
from storage.errors import Conflict, InvalidInput, NotFound
from storage.models import ApiToken, Manager, ManagerRole
from storage.types import utcnow
from tests.factories import create_manager as make_manager
from tests.factories import create_token


class TestPasswords:
    def test_hash_is_argon2_and_verifies(self) -> None:
        hashed = hash_password("пароль-123")
        assert hashed.startswith("$argon2id$")
        assert "пароль-123" not in hashed
        assert verify_password(hashed, "пароль-123")

    def test_wrong_password_does_not_verify(self) -> None:
        assert not verify_password(hash_password("secret-1"), "secret-2")

    def test_malformed_hash_never_verifies(self) -> None:
        assert not verify_password("not-a-hash", "anything")

    def test_same_password_hashes_differently(self) -> None:
        assert hash_password("x") != hash_password("x")


class TestCreateManager:
    async def test_email_is_normalised(self, db: Database) -> None:
        async with db.transaction() as session:
            manager = await create_manager(
                session, email="  Anna@Example.RU ", name="Анна", role="admin", password="pw"
            )
        assert manager.email == "anna@example.ru"
        assert manager.role == ManagerRole.ADMIN
        assert manager.password_hash is not None and manager.password_hash != "pw"

    async def test_duplicate_email_conflicts(self, db: Database) -> None:
        await make_manager(db, email="boris@example.ru")
        with pytest.raises(Conflict):
            async with db.transaction() as session:
                await create_manager(
                    session, email="BORIS@example.ru", name="B", role="manager", password=None
                )

    async def test_unknown_role_is_refused(self, db: Database) -> None:
        with pytest.raises(InvalidInput) as caught:
            async with db.transaction() as session:
                await create_manager(
                    session, email="c@example.ru", name="C", role="owner", password=None
                )
        assert caught.value.code == "invalid_role"

    async def test_list_managers(self, db: Database) -> None:
        await make_manager(db, email="z@example.ru", name="Яна")
        await make_manager(db, email="a@example.ru", name="Алла")
        async with db.read() as session:
            names = [m.name for m in await list_managers(session)]
        assert names == ["Алла", "Яна"]


class TestAuthenticateManager:
    async def test_right_password(self, db: Database) -> None:
        created = await make_manager(db, email="anna@example.ru", password="s3cret")
        manager = await authenticate_manager(db, "ANNA@example.ru", "s3cret")
        assert manager is not None and manager.id == created.id

    @pytest.mark.parametrize(
        ("email", "password"),
        [
            ("anna@example.ru", "wrong"),
            ("nobody@example.ru", "s3cret"),
            ("not an email", "s3cret"),
        ],
    )
    async def test_refused(self, db: Database, email: str, password: str) -> None:
        await make_manager(db, email="anna@example.ru", password="s3cret")
        assert await authenticate_manager(db, email, password) is None

    async def test_inactive_manager_is_refused(self, db: Database) -> None:
        created = await make_manager(db, email="anna@example.ru", password="s3cret")
        async with db.transaction() as session:
            manager = await session.get(Manager, created.id)
            assert manager is not None
            manager.is_active = False
        assert await authenticate_manager(db, "anna@example.ru", "s3cret") is None

    async def test_manager_without_password_cannot_log_in(self, db: Database) -> None:
        await make_manager(db, email="sso@example.ru", password=None)
        assert await authenticate_manager(db, "sso@example.ru", "") is None


class TestApiTokens:
    async def test_only_the_hash_is_stored(self, db: Database) -> None:
        token, row = await create_token(db, name="1C integration")
        assert token.startswith("omh_") and len(token) > 40
        async with db.read() as session:
            stored = (await session.scalars(select(ApiToken))).one()
        assert stored.token_hash == hashlib.sha256(token.encode()).hexdigest()
        assert stored.prefix == token[:12]
        assert token not in (stored.token_hash, stored.prefix, stored.name)
        assert stored.id == row.id and stored.manager_id is None

    async def test_authenticates(self, db: Database) -> None:
        token, row = await create_token(db)
        async with db.transaction() as session:
            found = await authenticate_token(session, token)
        assert found is not None and found.id == row.id
        assert found.last_used_at is not None

    @pytest.mark.parametrize("presented", ["omh_wrong", "", "Bearer x", "omh_" + "a" * 300])
    async def test_wrong_tokens_are_refused(self, db: Database, presented: str) -> None:
        await create_token(db)
        async with db.read() as session:
            assert await authenticate_token(session, presented, touch=False) is None

    async def test_revoked_token_is_refused(self, db: Database) -> None:
        token, row = await create_token(db)
        async with db.transaction() as session:
            revoked = await revoke_api_token(session, row.id)
        assert revoked.revoked_at is not None
        async with db.read() as session:
            assert await authenticate_token(session, token, touch=False) is None

    async def test_revoking_unknown_token_is_not_found(self, db: Database) -> None:
        with pytest.raises(NotFound):
            async with db.transaction() as session:
                await revoke_api_token(session, 999)

    async def test_token_for_unknown_manager_is_not_found(self, db: Database) -> None:
        with pytest.raises(NotFound):
            await create_token(db, manager_id=999)

    async def test_last_used_at_is_written_at_most_once_a_minute(self, db: Database) -> None:
        token, row = await create_token(db)
        start = utcnow()
        for offset in (0, 30, 59):
            async with db.transaction() as session:
                await authenticate_token(session, token, now=start + timedelta(seconds=offset))
        async with db.read() as session:
            stored = await session.get(ApiToken, row.id)
            assert stored is not None and stored.last_used_at == start
        async with db.transaction() as session:
            await authenticate_token(session, token, now=start + timedelta(seconds=61))
        async with db.read() as session:
            stored = await session.get(ApiToken, row.id)
            assert stored is not None and stored.last_used_at == start + timedelta(seconds=61)
