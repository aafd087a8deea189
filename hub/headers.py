"""Security headers on every response the hub sends, its errors and files included."""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# nosniff: a browser never runs an answer (an echoed webhook value, a text attachment) as
# script or style. strict-origin-when-cross-origin: links leaving the hub (in a client's
# email, say) tell the other site the hub's origin, never the inbox's paths and ids.
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "strict-origin-when-cross-origin",
}


class SecurityHeadersMiddleware:
    """Adds SECURITY_HEADERS to each HTTP response that does not set them itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


# The managers' pages: every script and style is a file of the hub (no inline script, no
# eval), nothing loads from elsewhere, forms post only to the hub, and no other site frames
# them. Email HTML is shown in frames of the hub's own URLs (frame-src 'self').
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; frame-src 'self'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'; object-src 'none'",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}

# A client's email HTML (sanitized already) as its own document inside a sandboxed frame:
# no script at all, no remote images or fonts, styles only its own inline ones; only the
# inbox's pages may frame it.
EMAIL_FRAME_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'self'; sandbox",
    "Cache-Control": "no-store",
}
