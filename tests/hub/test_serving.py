"""A real `omnihub serve` against slow and greedy clients: raw sockets that dribble a
request's head or body are closed within the configured timeouts, connections over
the concurrency limit get a 503, and a prompt client is served as before."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.served import free_port, hub_environment, serving

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


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    port = free_port()
    env = hub_environment(
        port,
        run_worker="0",
        header_timeout=str(HEADER_TIMEOUT),
        body_timeout=str(BODY_TIMEOUT),
        limit_concurrency=str(CONCURRENCY),
    )
    with serving(tmp_path_factory.mktemp("serving"), env) as log:
        yield Served("127.0.0.1", port, log)


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


def read_response(sock: socket.socket) -> bytes:
    """One whole response (head and Content-Length body) from a kept-alive connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536) or pytest.fail(f"closed after {data!r}")
    head, body = data.split(b"\r\n\r\n", 1)
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.lower().split(b"\r\n")
        if line.startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536) or pytest.fail(f"closed after {data + body!r}")
    return head + b"\r\n\r\n" + body


class TestSlowClients:
    def test_a_dribbled_request_head_is_cut_off(self, served: Served) -> None:
        head = b"GET /healthz HTTP/1.1\r\nHost: hub\r\n" + b"X-Slow: " + b"a" * 200 + b"\r\n\r\n"
        with served.connect() as sock:
            took, answer = dribble(sock, head, limit=HEADER_TIMEOUT * 4)

        assert HEADER_TIMEOUT - 0.5 <= took <= HEADER_TIMEOUT + 3, took
        assert answer == b""  # the request never reached the hub

    def test_an_idle_connection_is_cut_off(self, served: Served) -> None:
        with served.connect() as sock:
            started = time.monotonic()
            sock.settimeout(HEADER_TIMEOUT * 4)
            assert sock.recv(1) == b""

        assert time.monotonic() - started <= HEADER_TIMEOUT + 3

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

        assert took <= BODY_TIMEOUT + 3, took
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert b'"error":"request_timeout"' in answer.replace(b" ", b"")

    def test_a_prompt_client_keeps_its_connection_between_requests(self, served: Served) -> None:
        request = b"GET /healthz HTTP/1.1\r\nHost: hub\r\n\r\n"
        answers = []
        with served.connect() as sock:
            sock.settimeout(5)
            for _ in range(2):
                sock.sendall(request)
                answers.append(read_response(sock))
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
