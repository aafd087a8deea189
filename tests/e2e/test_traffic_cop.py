"""Acceptance: the traffic cop holds Send only for a client message the manager has not seen.

The live stream says that a conversation received a message when the outbox worker gets to
the event, which may be well after the page showed that message (a loaded worker, or the
page opened between the message's commit and its event). Here the hub answers without a
worker (`omnihub serve`, worker off, SQLite shared with `omnihub worker`, the bus on Redis):
the page shows the client's message and the manager types; only then does the worker start
and publish the message's own, late event. Send must go out, not be held as if the client
had just written (a message the client really writes meanwhile still holds it:
tests/e2e/test_inbox.py, two managers and the traffic cop).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.workspace import ADMIN, no_overflow, run_cli, sign_in
from tests.served import OMNIHUB, free_port, hub_environment, serve_process


class LateWorkerHub:
    """A hub whose outbox worker runs only when the test starts it."""

    def __init__(self, workdir: Path, redis_url: str) -> None:
        self.workdir = workdir
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.env = hub_environment(
            port,
            data_dir=str(workdir / "var"),
            secret_key="traffic-cop-secret-key-0123456789abcdef",
            redis_url=redis_url,
            run_worker="0",
        )

    def cli(self, *args: str) -> str:
        return run_cli(self.workdir, self.env, *args)

    def start_worker(self) -> subprocess.Popen[bytes]:
        """`omnihub worker` on the same database and bus (stopped by the caller)."""
        return subprocess.Popen(
            [str(OMNIHUB), "worker"],
            cwd=self.workdir,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def post(self, message: str) -> int:
        response = httpx.post(
            f"{self.url}/forms/default",
            json={"name": "Олег", "email": "oleg@example.ru", "message": message, "consent": True},
            timeout=30,
        )
        assert response.status_code == 201, response.text
        conversation_id: int = response.json()["conversation_id"]
        return conversation_id


@pytest.fixture
def late(tmp_path: Path, redis_url: str) -> Any:
    hub = LateWorkerHub(tmp_path, redis_url)
    hub.cli("db", "upgrade")
    hub.cli("managers", "add", "--email", ADMIN[0], "--name", ADMIN[1], "--role", "admin",
            "--password", ADMIN[2])  # fmt: skip
    with serve_process(tmp_path, hub.env):
        yield hub


async def test_a_late_event_of_a_message_on_screen_does_not_hold_the_send(
    late: LateWorkerHub, desk: Any
) -> None:
    from playwright.async_api import expect

    conversation = late.post("Где мой заказ 4411?")  # its events wait for the worker
    page = await desk.new_page()
    await sign_in(page, late, ADMIN)
    await page.goto(f"{late.url}/inbox/v/unassigned/c/{conversation}")
    await page.wait_for_function("() => document.documentElement.dataset.live === 'on'")
    await expect(page.locator("#timeline")).to_contain_text("Где мой заказ 4411?")
    await page.locator("#composer-text").fill("Заказ в пути, будет завтра.")
    await page.evaluate(
        """() => document.addEventListener("omnihub:change", (event) => {
            if (event.detail.topic === "message.received") {
                console.log("heard message.received");
            }
        })"""
    )
    worker = None
    try:
        # The worker now publishes the form's events: the message's own among them.
        async with page.expect_console_message(
            lambda message: "heard message.received" in message.text, timeout=60_000
        ):
            worker = late.start_worker()
        await page.get_by_role("button", name="Отправить").click()
        # The send shares SQLite with the worker's first rounds: it may take seconds.
        sent = page.locator("#timeline")
        await expect(sent).to_contain_text("Заказ в пути, будет завтра.", timeout=20_000)
        await expect(page.locator("#cop")).to_be_hidden()
        await expect(page.locator("#composer-text")).to_have_value("")

        await no_overflow(page, 1280)
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=30)
