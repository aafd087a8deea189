"""The access log: a line per request with what an operator looks for, written in batches."""

from __future__ import annotations

import asyncio
import json

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from hub.logs import PIPE_BUF, AccessLog, line_pieces


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hi", status_code=201)


async def broken(request: Request) -> PlainTextResponse:
    raise RuntimeError("the app failed")


APP = Starlette(routes=[Route("/hello/{name}", hello, methods=["POST"]), Route("/boom", broken)])


class Written:
    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def __call__(self, data: bytes) -> None:
        self.writes.append(data)

    def lines(self) -> list[str]:
        return b"".join(self.writes).decode().splitlines()


def client(log: AccessLog) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=log, raise_app_exceptions=False, client=("10.1.2.3", 5))
    return httpx.AsyncClient(transport=transport, base_url="http://hub")


class TestAccessLog:
    async def test_json_lines_carry_the_request_and_its_answer(self) -> None:
        written = Written()
        log = AccessLog(APP, write=written, max_lines=3)
        async with client(log) as http:
            await http.post('/hello/Ан"на')
            await http.get("/boom")
            assert written.writes == []  # kept until max_lines or the timer
            await http.get("/missing")
        entries = [json.loads(line) for line in written.lines()]
        assert [(e["method"], e["path"], e["status"]) for e in entries] == [
            ("POST", '/hello/Ан"на', 201),
            ("GET", "/boom", 500),
            ("GET", "/missing", 404),
        ]
        first = entries[0]
        assert first["logger"] == "access" and first["level"] == "info"
        assert first["client"] == "10.1.2.3"
        assert isinstance(first["ms"], float) and first["ms"] >= 0
        assert first["ts"].endswith("+00:00") and len(first["ts"]) == len(
            "2026-01-01T00:00:00.000+00:00"
        )

    async def test_the_timer_writes_what_waits(self) -> None:
        written = Written()
        log = AccessLog(APP, write=written, flush_seconds=0.05)
        async with client(log) as http:
            await http.post("/hello/x")
        assert written.writes == []
        await asyncio.sleep(0.2)
        assert len(written.lines()) == 1

    async def test_text_lines_for_a_terminal(self) -> None:
        written = Written()
        log = AccessLog(APP, fmt="text", write=written)
        async with client(log) as http:
            await http.post("/hello/x")
        log.flush()
        (line,) = written.lines()
        assert " INFO access: 10.1.2.3 POST /hello/x 201 " in line and line.endswith("ms")

    async def test_shutdown_writes_what_waits(self) -> None:
        written = Written()
        log = AccessLog(APP, write=written)
        async with client(log) as http:
            await http.post("/hello/x")
        messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

        async def receive() -> dict[str, str]:
            return next(messages)

        async def send(message: object) -> None:
            pass

        await log({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
        assert len(written.lines()) == 1


class TestLinePieces:
    def test_pieces_end_at_lines_and_fit_a_pipe(self) -> None:
        lines = [f"{n:05d} {'x' * (n % 150)}\n".encode() for n in range(300)]
        data = b"".join(lines)
        pieces = list(line_pieces(data, limit=PIPE_BUF))
        assert len(pieces) > 1
        assert b"".join(pieces) == data
        assert all(len(p) <= PIPE_BUF and p.endswith(b"\n") for p in pieces)

    def test_a_line_longer_than_the_limit_stays_whole(self) -> None:
        data = b"a\n" + b"b" * 50 + b"\nc\n"
        assert list(line_pieces(data, limit=10)) == [b"a\n", b"b" * 50 + b"\n", b"c\n"]
