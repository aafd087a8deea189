"""How `omnihub serve` meets slow and greedy clients.

uvicorn bounds idle keep-alive connections and, with `limit_concurrency`, the work in
flight, but waits for a request's head and body as long as bytes keep coming: a
client sending a byte every few seconds holds a connection forever. Here:

- the head (request line and headers) must arrive within `header_timeout` seconds of
  the connection opening or of the previous response; else the connection is closed
  (the request never reached the app, so there is nobody to answer);
- the body must arrive within `body_timeout` seconds of the app asking for it; else
  the client gets a 408 and the connection is closed (hub.limits, in the app).

Behind a reverse proxy (deploy/nginx.conf) the proxy buffers slow clients and these
limits only meet the proxy.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, ClassVar

import uvicorn
from starlette.types import ASGIApp

from hub.settings import Settings

log = logging.getLogger(__name__)

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _Http
except ImportError:  # no httptools wheel for this interpreter
    from uvicorn.protocols.http.h11_impl import H11Protocol as _Http  # type: ignore[assignment]

if TYPE_CHECKING:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _Base
else:
    _Base = object


class _HeadDeadline(_Base):
    """Closes the connection when a request's head is not in within `head_timeout`."""

    head_timeout: ClassVar[float] = 10.0
    _head_timer: asyncio.TimerHandle | None = None
    _waiting_after: Any = None  # the cycle (request) before the awaited head

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_deadline()
        super().connection_lost(exc)

    def shutdown(self) -> None:
        # A response still streaming (the inbox's live stream) would hold the shutdown for
        # as long as its tab stays open: it hears a disconnect and ends instead.
        cycle = self.cycle
        super().shutdown()
        if cycle is not None and cycle.response_started and not cycle.response_complete:
            cycle.disconnected = True
            cycle.message_event.set()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_head_deadline()

    def handle_websocket_upgrade(self, *args: Any) -> None:
        self._disarm_head_deadline()  # the connection is no longer ours to time
        super().handle_websocket_upgrade(*args)

    def _arm_head_deadline(self) -> None:
        self._disarm_head_deadline()
        self._waiting_after = self.cycle
        self._head_timer = self.loop.call_later(self.head_timeout, self._head_deadline_passed)

    def _disarm_head_deadline(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_deadline_passed(self) -> None:
        self._head_timer = None
        cycle = self.cycle
        # A new head arrived (a new cycle), or a pipelined request is still being served.
        if cycle is not self._waiting_after or (cycle is not None and not cycle.response_complete):
            return
        if not self.transport.is_closing():
            log.info("closing a connection: no request head within %ss", self.head_timeout)
            self.transport.close()


def http_protocol(head_timeout: float) -> type[asyncio.Protocol]:
    """uvicorn's HTTP/1.1 protocol with the head deadline."""
    return type("HeadDeadlineProtocol", (_HeadDeadline, _Http), {"head_timeout": head_timeout})


def server_config(app: ASGIApp, settings: Settings, host: str, port: int) -> uvicorn.Config:
    """uvicorn's configuration for `omnihub serve`, with the slow-client limits."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=http_protocol(settings.header_timeout),
        timeout_keep_alive=settings.keep_alive_timeout,
        limit_concurrency=settings.limit_concurrency or None,
        backlog=settings.backlog,
        log_config=None,
        access_log=False,  # the app writes its own, cheaper one (hub.logs.AccessLog)
        proxy_headers=True,
        server_header=False,
    )
