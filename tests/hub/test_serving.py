"""A real `omnihub serve` against slow and greedy clients: raw sockets that dribble a
request's head or body are closed within the configured timeouts, connections over
the concurrency limit get a 503, and a prompt client is served as before."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import missing_part

OMNIHUB = Path(sys.executable).parent / "omnihub"
HEADER_TIMEOUT = 2.0
BODY_TIMEOUT = 3.0
CONCURRENCY = 4
DRIBBLE_EVERY = 0.5


@dataclass
class Served:
    host: str
    port: int
    log: Path

    def connect(self) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=5)
        sock.settimeout(0.2)
        return sock


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    if not OMNIHUB.exists():
        missing_part(f"the omnihub console script is not installed at {OMNIHUB}")
    workdir = tmp_path_factory.mktemp("serving")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIHUB_")}
    env |= {
        "OMNIHUB_PORT": str(port),
        "OMNIHUB_LOG_FORMAT": "text",
        "OMNIHUB_RUN_WORKER": "0",
        "OMNIHUB_HEADER_TIMEOUT": str(HEADER_TIMEOUT),
        "OMNIHUB_BODY_TIMEOUT": str(BODY_TIMEOUT),
        "OMNIHUB_LIMIT_CONCURRENCY": str(CONCURRENCY),
    }
    log = workdir / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(OMNIHUB), "serve"],
            cwd=workdir,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"omnihub serve exited with {process.returncode}:\n{log.read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"omnihub serve was not ready within 60 s:\n{log.read_text()}")
            time.sleep(0.2)
        yield Served("127.0.0.1", port, log)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    assert "Traceback" not in log.read_text(errors="replace")


def dribble(sock: socket.socket, data: bytes, *, limit: float) -> tuple[float, bytes]:
    """Send `data` a byte every DRIBBLE_EVERY seconds until the server answers or closes;
    returns how long that took and what the server sent."""
    started = time.monotonic()
    answer = b""
    for byte in data:
        if time.monotonic() - started > limit:
            break
        try:
            sock.sendall(bytes([byte]))
        except OSError:  # closed under us
            return time.monotonic() - started, answer
        wait_until = time.monotonic() + DRIBBLE_EVERY
        while time.monotonic() < wait_until:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return time.monotonic() - started, answer
            if not chunk:
                return time.monotonic() - started, answer
            answer += chunk
    pytest.fail(f"still open after {time.monotonic() - started:.1f} s; received {answer!r}")


class TestSlowClients:
    def test_a_dribbled_request_head_is_cut_off(self, served: Served) -> None:
        head = b"GET /healthz HTTP/1.1\r\nHost: hub\r\n" + b"X-Slow: " + b"a" * 200 + b"\r\n\r\n"
        with served.connect() as sock:
            took, answer = dribble(sock, head, limit=HEADER_TIMEOUT * 4)

        assert HEADER_TIMEOUT - 0.5 <= took <= HEADER_TIMEOUT + 2, took
        assert answer == b""  # the request never reached the hub

    def test_an_idle_connection_is_cut_off(self, served: Served) -> None:
        with served.connect() as sock:
            started = time.monotonic()
            sock.settimeout(HEADER_TIMEOUT * 4)
            assert sock.recv(1) == b""

        assert time.monotonic() - started <= HEADER_TIMEOUT + 2

    def test_a_dribbled_body_gets_a_408(self, served: Served) -> None:
        body = b"name=Slow&message=" + b"x" * 40
        head = (
            b"POST /forms/default HTTP/1.1\r\nHost: hub\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
        )
        with served.connect() as sock:
            sock.sendall(head)
            took, answer = dribble(sock, body, limit=BODY_TIMEOUT * 4)

        assert took <= BODY_TIMEOUT + 2, took
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert b'"error":"request_timeout"' in answer.replace(b" ", b"")

    def test_a_prompt_client_keeps_its_connection_between_requests(self, served: Served) -> None:
        request = b"GET /healthz HTTP/1.1\r\nHost: hub\r\n\r\n"
        answers = []
        with served.connect() as sock:
            sock.settimeout(5)
            for _ in range(2):
                sock.sendall(request)
                answers.append(sock.recv(65536))
                time.sleep(HEADER_TIMEOUT * 0.75)

        assert [a.split(b"\r\n", 1)[0] for a in answers] == [b"HTTP/1.1 200 OK"] * 2


class TestConcurrency:
    def test_connections_over_the_limit_get_a_503(self, served: Served) -> None:
        idle = [served.connect() for _ in range(CONCURRENCY)]
        try:
            time.sleep(0.3)
            response = httpx.get(f"http://{served.host}:{served.port}/healthz", timeout=5)
        finally:
            for sock in idle:
                sock.close()

        assert response.status_code == 503
        time.sleep(0.3)
        assert httpx.get(f"http://{served.host}:{served.port}/healthz").status_code == 200
