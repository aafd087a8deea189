"""Limits on what a client may send: a body size enforced while reading (so no handler
buffers an oversized body) and a time for the body to arrive (so a client dribbling
bytes does not hold a request open)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.settings import Settings


class Refused(Exception):
    """Raised while the body is read: the request is answered with this JSON error."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


class BodyLimitMiddleware:
    """Answers 413 when the declared Content-Length, or the bytes of a chunked body counted
    as they arrive, pass the limit; the rest of the body is never read.

    `limits` maps path prefixes to their own (smaller) limits: a provider's webhook gets
    what its provider ever sends, not what an attachment upload needs.
    """

    def __init__(
        self, app: ASGIApp, max_bytes: int, limits: Mapping[str, int] | None = None
    ) -> None:
        self.app = app
        self.default = max_bytes
        # The longest prefix first, so a more specific path wins.
        self.limits = sorted((limits or {}).items(), key=lambda item: -len(item[0]))

    def limit_for(self, path: str) -> int:
        for prefix, limit in self.limits:
            if path.startswith(prefix):
                return limit
        return self.default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.limit_for(scope["path"])
        too_large = Refused(413, "payload_too_large", f"request body over {max_bytes} bytes")
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > max_bytes:
                    await _refuse(send, too_large)
                    return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    raise too_large
            return message

        await _run_refusing(self.app, scope, limited_receive, send)


class BodyTimeoutMiddleware:
    """Answers 408 when a request's body is not all in within `seconds` of the app's first
    read of it. Reads after the body (waiting for the client to disconnect, as streaming
    responses do) have no deadline."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deadline: float | None = None
        body_done = False

        async def timed_receive() -> Message:
            nonlocal deadline, body_done
            if body_done:
                return await receive()
            if deadline is None:
                deadline = asyncio.get_running_loop().time() + self.seconds
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                detail = f"the request body did not arrive within {self.seconds:g} s"
                raise Refused(408, "request_timeout", detail) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        await _run_refusing(self.app, scope, timed_receive, send)


async def _run_refusing(app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    """Runs the app; a Refused raised by `receive` is answered, unless an answer began."""
    response_started = False

    async def tracking_send(message: Message) -> None:
        nonlocal response_started
        if message["type"] == "http.response.start":
            response_started = True
        await send(message)

    try:
        await app(scope, receive, tracking_send)
    except Refused as refused:
        if not response_started:
            await _refuse(send, refused)


async def _refuse(send: Send, refused: Refused) -> None:
    """The JSON error for a request whose body is left unread: the connection closes, as it
    cannot carry another request."""
    body = json.dumps({"error": refused.code, "detail": refused.detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": refused.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def install_limits(app: FastAPI, settings: Settings) -> None:
    """The body size and time limits; webhooks get their providers' sizes."""
    from channels.telegram.webhook import MAX_BODY_BYTES as TELEGRAM_MAX_BODY
    from channels.telephony.endpoints import MAX_BODY_BYTES as TELEPHONY_MAX_BODY

    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        limits={
            "/webhooks/telephony/": TELEPHONY_MAX_BODY,
            "/webhooks/telegram/": TELEGRAM_MAX_BODY,
        },
    )
    app.add_middleware(BodyTimeoutMiddleware, seconds=settings.body_timeout)
