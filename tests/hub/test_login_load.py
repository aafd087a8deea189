"""Sign-in under attack, against a real `omnihub serve`: a flood of wrong passwords
neither stalls the rest of the hub nor goes on without a limit."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from storage.db import Database
from tests.e2e.test_browser import free_port
from tests.factories import create_manager

OMNIHUB = Path(sys.executable).parent / "omnihub"
PASSWORD = "correct horse battery staple"
CONCURRENT_LOGINS = 150


@pytest.fixture
def serve(hub_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., str]]:
    """`omnihub serve` on this test's database; sign-in limits off unless the test sets them."""

    def start(**extra: str) -> str:
        port = free_port()
        env = {**hub_env, "OMNIHUB_PORT": str(port), **extra}
        log = (tmp_path / f"serve-{port}.log").open("wb")
        process = subprocess.Popen(
            [str(OMNIHUB), "serve", "--no-worker"],
            env={**_base_env(), **env},
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        processes.append(process)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert process.poll() is None, (tmp_path / f"serve-{port}.log").read_text()
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    return url
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError("omnihub serve did not become ready")

    processes: list[subprocess.Popen[bytes]] = []
    yield start
    for process in processes:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("OMNIHUB_")}


async def test_a_flood_of_wrong_logins_does_not_stall_the_hub(
    serve: Callable[..., str], db_url: str
) -> None:
    db = Database(db_url, pool_size=2)
    try:
        await create_manager(db, email="anna@example.ru", password=PASSWORD)
    finally:
        await db.dispose()
    url = serve(OMNIHUB_LOGIN_RATE_LIMIT="0", OMNIHUB_LOGIN_IP_RATE_LIMIT="0")
    limits = httpx.Limits(max_connections=CONCURRENT_LOGINS + 10)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as http:
        # Warm the form's path once, so the measurement is the flood's effect alone.
        for n in range(2):
            started = time.perf_counter()
            warm = await http.post(
                "/forms/default", json={"email": f"w{n}@example.ru", "message": "hi"}
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
            "/forms/default", json={"email": "client@example.ru", "message": "Перезвоните"}
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
