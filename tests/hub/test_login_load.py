"""Sign-in under attack, against a real `omnihub serve`: a flood of wrong passwords
neither stalls the rest of the hub nor goes on without a limit."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from storage.db import Database
from tests.factories import create_manager
from tests.served import free_port, hub_environment, serving

PASSWORD = "correct horse battery staple"
CONCURRENT_LOGINS = 150


@pytest.fixture
def serve(hub_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., str]]:
    """`omnihub serve` (no worker) on this test's database; `settings` as for
    tests.served.hub_environment (the sign-in limits, say)."""
    with ExitStack() as servers:

        def start(**settings: str) -> str:
            port = free_port()
            env = {**hub_environment(port, run_worker="0", **settings), **hub_env}
            workdir = tmp_path / f"serve-{port}"
            workdir.mkdir()
            servers.enter_context(serving(workdir, env))
            return f"http://127.0.0.1:{port}"

        yield start


async def test_a_flood_of_wrong_logins_does_not_stall_the_hub(
    serve: Callable[..., str], db_url: str
) -> None:
    db = Database(db_url, pool_size=2)
    try:
        await create_manager(db, email="anna@example.ru", password=PASSWORD)
    finally:
        await db.dispose()
    url = serve(login_rate_limit="0", login_ip_rate_limit="0")
    limits = httpx.Limits(max_connections=CONCURRENT_LOGINS + 10)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as http:
        # Warm the form's path once, so the measurement is the flood's effect alone.
        for n in range(2):
            started = time.perf_counter()
            warm = await http.post(
                "/forms/default",
                json={"email": f"w{n}@example.ru", "message": "hi", "consent": True},
            )
            quiet = time.perf_counter() - started
            assert warm.status_code == 201, warm.text
        flood = [
            asyncio.create_task(
                http.post(
                    "/api/v1/auth/login",
                    json={"email": "anna@example.ru", "password": f"wrong {n}"},
                )
            )
            for n in range(CONCURRENT_LOGINS)
        ]
        await asyncio.sleep(2.0)  # the logins are read and wait for their hash
        started = time.perf_counter()
        form = await http.post(
            "/forms/default",
            json={"email": "client@example.ru", "message": "Перезвоните", "consent": True},
        )
        took = time.perf_counter() - started
        assert form.status_code == 201, form.text
        pending = sum(not task.done() for task in flood)
        answers = await asyncio.gather(*flood)
    assert pending > 0, "the flood was over before the form was posted; nothing was measured"
    assert took < 1.0, (
        f"a form post took {took:.2f} s during {pending} pending logins ({quiet:.3f} s alone)"
    )
    assert {answer.status_code for answer in answers} == {401}
