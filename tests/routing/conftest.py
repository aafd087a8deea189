"""Fixtures shared by the routing tests that drive the real app."""

from __future__ import annotations

from typing import Any

import pytest

from storage.db import Database
from tests.factories import create_token


@pytest.fixture
def hub_db(app: Any) -> Database:
    database: Database = app.state.context.db
    return database


@pytest.fixture
async def admin_headers(hub_db: Database) -> dict[str, str]:
    """An operator's token (no manager: acts as an administrator)."""
    token, _row = await create_token(hub_db, name="operator")
    return {"Authorization": f"Bearer {token}"}
