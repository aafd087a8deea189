"""A local stand-in for the Telegram Bot API: aiogram's real Bot talks HTTP to it.

It runs an aiohttp server on a free loopback port, answers the methods the hub uses
the way Telegram does (`{"ok": true, "result": ...}`), records every call with its
parameters, serves files at /file/bot<token>/<path>, queues updates for getUpdates
(long polling), and can be told to answer the next calls with 403 ("bot was blocked
by the user") or 429 with parameters.retry_after.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

BLOCKED = (
    403,
    {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked by the user"},
)


def too_many(retry_after: int) -> tuple[int, dict[str, Any]]:
    return (
        429,
        {
            "ok": False,
            "error_code": 429,
            "description": f"Too Many Requests: retry after {retry_after}",
            "parameters": {"retry_after": retry_after},
        },
    )


@dataclass
class Call:
    method: str
    token: str
    params: dict[str, Any]
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    at: float = field(default_factory=time.monotonic)
    failed: int | None = None

    @property
    def chat_id(self) -> str | None:
        value = self.params.get("chat_id")
        return None if value is None else str(value)

    @property
    def text(self) -> str:
        return str(self.params.get("text", ""))

    @property
    def markup(self) -> dict[str, Any]:
        value = self.params.get("reply_markup")
        return value if isinstance(value, dict) else {}

    def file(self, param: str) -> tuple[str, bytes]:
        """The (filename, content) uploaded for a parameter (sent as attach://<field>)."""
        value = self.params.get(param)
        field_name = value["attach"] if isinstance(value, dict) else param
        return self.files[field_name]

    def buttons(self) -> list[str]:
        """Callback data of inline buttons, or the texts of reply-keyboard buttons."""
        markup = self.markup
        if "inline_keyboard" in markup:
            return [b.get("callback_data", "") for row in markup["inline_keyboard"] for b in row]
        return [b.get("text", "") for row in markup.get("keyboard", []) for b in row]


class BotApiStandIn:
    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.files: dict[str, bytes] = {}  # file_id -> content
        self.updates: list[dict[str, Any]] = []
        self.failures: list[tuple[set[str] | None, int, dict[str, Any]]] = []
        self._message_ids = itertools.count(1000)
        self._new_update = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application(client_max_size=100 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._method)
        app.router.add_get("/file/bot{token}/{path:.*}", self._file)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # What tests tell it

    def add_file(self, file_id: str, content: bytes) -> None:
        self.files[file_id] = content

    def fail_next(
        self, failure: tuple[int, dict[str, Any]], methods: set[str] | None = None, times: int = 1
    ) -> None:
        """The next `times` calls (of these methods) get this error answer."""
        for _ in range(times):
            self.failures.append((methods, *failure))

    def queue_update(self, update: dict[str, Any]) -> None:
        self.updates.append(update)
        self._new_update.set()

    # What tests read

    def sent(self, method: str | None = None, chat_id: int | str | None = None) -> list[Call]:
        return [
            c
            for c in self.calls
            if c.failed is None
            and (method is None or c.method == method)
            and (chat_id is None or c.chat_id == str(chat_id))
        ]

    def texts(self, chat_id: int | str | None = None) -> list[str]:
        return [c.text for c in self.sent("sendMessage", chat_id)]

    # The server

    async def _params(
        self, request: web.Request
    ) -> tuple[dict[str, Any], dict[str, tuple[str, bytes]]]:
        params: dict[str, Any] = dict(request.query)
        files: dict[str, tuple[str, bytes]] = {}
        if request.method == "POST" and request.can_read_body:
            if request.content_type == "application/json":
                params.update(await request.json())
            else:
                form = await request.post()
                for name, value in form.items():
                    if isinstance(value, web.FileField):
                        files[name] = (value.filename, value.file.read())
                    else:
                        params[name] = value
        for name, value in list(params.items()):
            if isinstance(value, str) and value[:1] in "[{":
                with contextlib.suppress(ValueError):
                    params[name] = json.loads(value)
        # A file sent as multipart is named by attach://<field> in its parameter.
        for name, value in list(params.items()):
            if isinstance(value, str) and value.startswith("attach://"):
                params[name] = {"attach": value[len("attach://") :]}
        return params, files

    async def _method(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        token = request.match_info["token"]
        params, files = await self._params(request)
        call = Call(method, token, params, files)
        self.calls.append(call)
        for index, (methods, status, body) in enumerate(self.failures):
            if methods is None or method in methods:
                del self.failures[index]
                call.failed = status
                return web.json_response(body, status=status)
        handler = getattr(self, f"_do_{method}", None)
        if handler is None:
            return web.json_response({"ok": True, "result": True})
        result = await handler(call)
        if isinstance(result, web.Response):
            return result
        return web.json_response({"ok": True, "result": result})

    async def _file(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        file_id = path.rsplit("/", 1)[-1]
        if file_id not in self.files:
            return web.Response(status=404)
        return web.Response(body=self.files[file_id])

    def _message(self, call: Call, **extra: Any) -> dict[str, Any]:
        chat_id = int(call.params.get("chat_id", 0))
        return {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private"},
            **extra,
        }

    async def _do_getMe(self, call: Call) -> dict[str, Any]:
        return {
            "id": int(call.token.split(":")[0]),
            "is_bot": True,
            "first_name": "Shop bot",
            "username": "shop_test_bot",
        }

    async def _do_sendMessage(self, call: Call) -> dict[str, Any]:
        return self._message(call, text=call.text)

    async def _do_sendPhoto(self, call: Call) -> dict[str, Any]:
        photo = {
            "file_id": f"sent-{len(self.calls)}",
            "file_unique_id": "u",
            "width": 1,
            "height": 1,
        }
        return self._message(call, photo=[photo])

    async def _do_sendDocument(self, call: Call) -> dict[str, Any]:
        return self._message(
            call, document={"file_id": f"sent-{len(self.calls)}", "file_unique_id": "u"}
        )

    async def _do_getFile(self, call: Call) -> Any:
        file_id = str(call.params.get("file_id", ""))
        if file_id not in self.files:
            return web.json_response(
                {"ok": False, "error_code": 400, "description": "Bad Request: invalid file_id"},
                status=400,
            )
        return {
            "file_id": file_id,
            "file_unique_id": f"u-{file_id}",
            "file_size": len(self.files[file_id]),
            "file_path": f"documents/{file_id}",
        }

    async def _do_getUpdates(self, call: Call) -> list[dict[str, Any]]:
        offset = int(call.params.get("offset") or 0)
        timeout = min(float(call.params.get("timeout") or 0), 2.0)
        deadline = time.monotonic() + timeout
        while True:
            # Confirmed updates (below the offset) are forgotten, as Telegram does.
            self.updates = [u for u in self.updates if u["update_id"] >= offset]
            if self.updates or time.monotonic() >= deadline:
                return list(self.updates)
            self._new_update.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new_update.wait(), deadline - time.monotonic())
