"""Structured logs: one JSON object a line (or plain text for a terminal), and the
access log, written in batches."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# uvicorn's color_message repeats msg with terminal escapes: not for a JSON log.
RESERVED = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in RESERVED and not key.startswith("_"):
                entry[key] = value if isinstance(value, str | int | float | bool) else str(value)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str = "info", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True


# The access log ------------------------------------------------------------------------------

_json_string = json.encoder.encode_basestring
PIPE_BUF = 4096  # writes up to this size reach a pipe whole, between processes too


def line_pieces(data: bytes, limit: int = PIPE_BUF) -> Iterator[bytes]:
    """`data` cut after newlines into pieces of at most `limit` bytes (a longer line is
    one piece of its own)."""
    start, size = 0, len(data)
    while start < size:
        end = size if size - start <= limit else data.rfind(b"\n", start, start + limit) + 1
        if end <= start:
            end = data.find(b"\n", start + limit) + 1 or size
        yield data[start:end]
        start = end


def write_stderr(data: bytes) -> None:
    """Write to file descriptor 2 in `line_pieces`, so the lines of several serving
    processes sharing one pipe never interleave mid-line."""
    for piece in line_pieces(data):
        view = memoryview(piece)
        while view:
            view = view[os.write(2, view) :]


class AccessLog:
    """ASGI middleware: one line per HTTP request (method, path, status, duration, client),
    written in batches.

    uvicorn's access log went through `logging`: a LogRecord, the JSON formatter walking the
    record's attributes into a new dict, `json.dumps` and a write and flush per request. Here
    a line is one format of the values the request already has, with the timestamp's
    seconds formatted once a second; lines are kept in memory and written every
    `flush_seconds`, when `max_lines` are waiting, and at shutdown. A process killed hard
    loses at most `flush_seconds` of lines.
    """

    def __init__(
        self,
        app: ASGIApp,
        fmt: str = "json",
        write: Callable[[bytes], None] = write_stderr,
        flush_seconds: float = 1.0,
        max_lines: int = 256,
    ) -> None:
        self.app = app
        self.json = fmt == "json"
        self.write = write
        self.flush_seconds = flush_seconds
        self.max_lines = max_lines
        self.lines: list[str] = []
        self._timer: asyncio.TimerHandle | None = None
        self._second = -1
        self._stamp = ""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                send = self._flushing_at_shutdown(send)
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers when the app fails before its response

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            self.record(scope, status, time.perf_counter() - started)

    def record(self, scope: Scope, status: int, seconds: float) -> None:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        stamp = f"{self._stamp}.{int((now - second) * 1000):03d}"
        client = scope.get("client")
        host = client[0] if client else "-"
        if self.json:
            line = (
                f'{{"ts":"{stamp}+00:00","level":"info","logger":"access",'
                f'"method":"{scope["method"]}","path":{_json_string(scope["path"])},'
                f'"status":{status},"ms":{seconds * 1000:.1f},"client":"{host}"}}\n'
            )
        else:
            line = (
                f"{stamp} INFO access: {host} {scope['method']} {scope['path']} {status} "
                f"{seconds * 1000:.1f}ms\n"
            )
        self.lines.append(line)
        if len(self.lines) >= self.max_lines:
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.flush_seconds, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        lines, self.lines = self.lines, []
        if lines:
            # A closed stderr must not fail requests; there is nowhere to say it.
            with contextlib.suppress(OSError):
                self.write("".join(lines).encode())

    def _flushing_at_shutdown(self, send: Send) -> Send:
        async def flushing(message: Message) -> None:
            if message["type"].startswith("lifespan.shutdown"):
                self.flush()
            await send(message)

        return flushing
