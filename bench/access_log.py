"""What the access log costs a request: the log as shipped before (uvicorn's access logger
through the JSON formatter, a record and a write per request) against `hub.logs.AccessLog`
(one format per request, written in batches), both writing to /dev/null, in one process.

    python -m bench.access_log [--requests 50000]

Each figure is CPU microseconds per request (time.process_time), with the cost of a
trivial ASGI app called alone taken off, so what is left is the log's own cost.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import IO

from starlette.types import Message, Receive, Scope, Send

from hub.logs import AccessLog, JsonFormatter

SCOPE: Scope = {
    "type": "http",
    "asgi": {"version": "3.0"},
    "http_version": "1.1",
    "method": "POST",
    "scheme": "http",
    "path": "/forms/default",
    "raw_path": b"/forms/default",
    "query_string": b"utm_source=bench&utm_medium=cpc",
    "headers": [],
    "client": ("127.0.0.1", 51234),
    "server": ("127.0.0.1", 8000),
}
START: Message = {"type": "http.response.start", "status": 201, "headers": []}
BODY: Message = {"type": "http.response.body", "body": b"{}"}


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    await send(START)
    await send(BODY)


async def receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def send(message: Message) -> None:
    pass


def uvicorn_access_logger(stream: IO[str]) -> logging.Logger:
    """The access logger as `omnihub serve` configured it: propagating to a root handler
    with the JSON formatter (hub.logs.configure_logging)."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("bench-root")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    root.propagate = False
    return logging.getLogger("bench-root.uvicorn.access")


async def per_request(call: Callable[[], Awaitable[None]], requests: int) -> float:
    """CPU microseconds per call."""
    for _ in range(1000):  # warm the caches
        await call()
    started = time.process_time()
    for _ in range(requests):
        await call()
    return (time.process_time() - started) / requests * 1e6


async def measure(requests: int, devnull: IO[str]) -> dict[str, float]:
    logger = uvicorn_access_logger(devnull)

    async def bare() -> None:
        await app(SCOPE, receive, send)

    async def as_shipped() -> None:
        # What uvicorn's protocol does after each response (httptools_impl), with the
        # root handler's JSON formatter and a write and flush per record.
        await app(SCOPE, receive, send)
        scope = SCOPE
        query = scope["query_string"].decode("ascii")
        logger.info(
            '%s - "%s %s HTTP/%s" %d',
            "{}:{}".format(*scope["client"]),
            scope["method"],
            scope["path"] + "?" + query,
            scope["http_version"],
            201,
        )

    def write(data: bytes) -> None:
        os.write(devnull.fileno(), data)

    access_log = AccessLog(app, write=write)

    async def batched() -> None:
        await access_log(SCOPE, receive, send)

    figures = {
        "bare": await per_request(bare, requests),
        "as shipped": await per_request(as_shipped, requests),
        "batched": await per_request(batched, requests),
    }
    access_log.flush()
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=50_000)
    args = parser.parse_args(argv)
    with open(os.devnull, "w") as devnull:
        figures = asyncio.run(measure(args.requests, devnull))
    bare = figures["bare"]
    old, new = figures["as shipped"] - bare, figures["batched"] - bare
    print(
        f"access log, CPU per request over {args.requests} requests (a trivial app: {bare:.1f} µs)"
    )
    print(f"  as shipped (uvicorn's access logger, JSON formatter): {old:6.1f} µs")
    print(f"  batched (hub.logs.AccessLog):                        {new:6.1f} µs")
    if old > 0:
        print(f"  ratio: {new / old:.2f} of the cost as shipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
