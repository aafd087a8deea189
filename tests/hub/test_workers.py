"""`omnihub serve --workers N`: N answering processes on one socket and the outbox worker
in its own, all stopped by one SIGTERM."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import time
from pathlib import Path

import httpx
import pytest

from tests.hub.console import Cli
from tests.served import free_port, hub_environment, serve_process, tail


def children(pid: int) -> dict[int, list[str]]:
    """The processes whose parent is `pid`: their command lines."""
    found: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            if parent == pid:
                found[int(entry.name)] = (entry / "cmdline").read_bytes().decode().split("\0")
    return found


def role(cmdline: list[str]) -> str:
    return cmdline[cmdline.index("hub.processes") + 1] if "hub.processes" in cmdline else "?"


def answers(port: int, times: int = 5) -> list[int]:
    """GET /healthz on a new connection each time."""
    statuses = []
    for _ in range(times):
        with httpx.Client(timeout=10) as client:
            statuses.append(client.get(f"http://127.0.0.1:{port}/healthz").status_code)
    return statuses


class TestServeWorkers:
    def test_two_processes_answer_and_stop_on_sigterm(self, tmp_path: Path, redis_url: str) -> None:
        port = free_port()
        env = hub_environment(port, redis_url=redis_url, data_dir=str(tmp_path / "var"))
        with serve_process(tmp_path, env, "--workers", "2", ready_within=180) as (serve, log):
            kids = children(serve.pid)
            roles = sorted(role(cmdline) for cmdline in kids.values())
            assert roles == ["http", "http", "worker"], kids
            http = [pid for pid, cmdline in kids.items() if role(cmdline) == "http"]
            # Each answers alone: the other one is stopped and cannot accept.
            for answering, stopped in (http, http[::-1]):
                os.kill(stopped, signal.SIGSTOP)
                try:
                    assert answers(port) == [200] * 5, f"process {answering} alone"
                finally:
                    os.kill(stopped, signal.SIGCONT)

            serve.send_signal(signal.SIGTERM)
            assert serve.wait(timeout=60) == 0, tail(log)
            deadline = time.monotonic() + 10
            while any(Path(f"/proc/{pid}").exists() for pid in kids):
                assert time.monotonic() < deadline, f"left running: {list(kids)}"
                time.sleep(0.1)
            text = log.read_text()
        assert text.count("Application shutdown complete") == 2, text
        assert "outbox worker stopped" in text, text
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)

    def test_on_sqlite_a_request_wakes_the_worker_process_through_the_bus(
        self, tmp_path: Path, redis_url: str
    ) -> None:
        # The worker would poll only every 30 s: the answering process announces its
        # commit on the bus and the worker routes the request at once.
        port = free_port()
        data_dir = tmp_path / "var"
        env = hub_environment(
            port, redis_url=redis_url, data_dir=str(data_dir), worker_poll_seconds="30"
        )
        with serve_process(tmp_path, env, "--workers", "1", ready_within=180) as (_serve, log):
            time.sleep(2.0)  # the worker's first look is over: it sleeps until woken
            response = httpx.post(
                f"http://127.0.0.1:{port}/forms/default",
                json={
                    "name": "Анна",
                    "email": "anna@example.ru",
                    "message": "Привет",
                    "consent": True,
                },
                timeout=10,
            )
            assert response.status_code == 201, response.text
            conversation_id = response.json()["conversation_id"]
            posted = time.monotonic()
            state = "new"
            while time.monotonic() - posted < 5.0:
                with contextlib.closing(sqlite3.connect(data_dir / "omnihub.db")) as db:
                    (state,) = db.execute(
                        "SELECT routing_state FROM conversations WHERE id = ?", (conversation_id,)
                    ).fetchone()
                if state != "new":
                    break
                time.sleep(0.1)
            assert state != "new", tail(log)

    def test_several_processes_need_redis(self, cli: Cli) -> None:
        result = cli("serve", "--workers", "2", "--port", str(free_port()))
        assert result.returncode != 0
        assert "OMNIHUB_REDIS_URL" in result.stderr
