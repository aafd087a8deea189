"""The composition root's web side: create_app() wires storage, channels and the inbox."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.telemetry import TelemetryConfig
from sqlalchemy import text
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from channels.base import HubContext, error_response
from hub.context import build_context, close_context
from hub.headers import SECURITY_HEADERS, SecurityHeadersMiddleware
from hub.limits import install_limits
from hub.logs import AccessLog
from hub.settings import Settings
from hub.worker import announce_commits, background_services, run_services
from storage.errors import HubError

log = logging.getLogger(__name__)


def _error(
    status: int, code: str, detail: Any, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status, headers=headers)


HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> str:
    """Every method some route of this path takes: the router's 405 names only the first
    route it tried, but one path is often several routes (GET, PATCH and DELETE)."""
    allowed = [
        method
        for method in HTTP_METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL
            for route in request.app.router.routes
        )
    ]
    return ", ".join(allowed)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HubError)
    async def hub_error(_request: Request, exc: HubError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        detail = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")}
            for e in exc.errors()
        ]
        return _error(422, "invalid_input", detail)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {
            400: "bad_request",
            404: "not_found",
            405: "method_not_allowed",
            401: "unauthorized",
            403: "forbidden",
            413: "payload_too_large",
        }
        headers = dict(exc.headers) if exc.headers else {}
        if exc.status_code == 405:
            headers["Allow"] = allowed_methods(request)
        return _error(
            exc.status_code,
            codes.get(exc.status_code, "http_error"),
            exc.detail,
            headers or None,
        )

    @app.exception_handler(Exception)
    async def server_error(_request: Request, _exc: Exception) -> JSONResponse:
        # Starlette sends this from outside every middleware (and logs the exception
        # itself), so the security headers are set here too.
        return _error(
            500, "internal_error", "the hub failed; the failure is logged", SECURITY_HEADERS
        )


def telemetry_config(enabled: bool) -> TelemetryConfig:
    """FastAPI's OpenTelemetry instrumentation on or off (`OMNIHUB_TELEMETRY`)."""
    return {"tracing": enabled, "metrics": enabled, "logs": enabled}


def create_app(settings: Settings | None = None) -> FastAPI:
    """The hub's ASGI app; its lifespan opens storage and, if configured, runs the worker."""
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        context = await build_context(settings)
        app.state.context = context
        announce_commits(context, settings)
        stop = asyncio.Event()
        tasks: list[asyncio.Task[None]] = []
        if settings.run_worker:
            tasks.append(
                asyncio.create_task(
                    run_services(background_services(context, settings), stop),
                    name="hub-services",
                )
            )
        try:
            yield
        finally:
            stop.set()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait_for(task, timeout=10)
            await close_context(context)

    app = FastAPI(
        title="omnihub",
        version="0.1.0",
        description="Omnichannel hub: web forms, email, Telegram and phone calls "
        "into one lead journal and a shared inbox.",
        lifespan=lifespan,
        telemetry=telemetry_config(settings.telemetry),
    )
    install_limits(app, settings)
    # Every response (errors, files, the limits' own answers) carries the security headers.
    app.add_middleware(SecurityHeadersMiddleware)
    install_error_handlers(app)
    if settings.access_log:  # outermost of ours: it times and sees what the others answer
        app.add_middleware(AccessLog, fmt=settings.log_format)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    async def readyz(request: Request) -> JSONResponse:
        """The database (and Redis, when configured) answer."""
        context: HubContext = request.app.state.context
        checks: dict[str, str] = {}
        try:
            async with context.db.read() as session:
                await session.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"error: {type(exc).__name__}"
        ping = getattr(context.bus, "ping", None)
        if ping is not None:
            try:
                await ping()
                checks["redis"] = "ok"
            except Exception as exc:
                checks["redis"] = f"error: {type(exc).__name__}"
        ready = all(value == "ok" for value in checks.values())
        return JSONResponse(
            {"status": "ok" if ready else "unavailable", "checks": checks},
            status_code=200 if ready else 503,
        )

    from channels.telegram.webhook import router as telegram_router
    from channels.telephony.endpoints import router as telephony_router
    from channels.webform.claims import router as claims_form_router
    from channels.webform.endpoints import router as webform_router
    from inbox.api import router as api_router
    from inbox.calls_api import router as calls_router
    from inbox.canned_api import router as canned_router
    from inbox.channels_api import router as channels_router
    from inbox.claims_api import router as claims_router
    from inbox.composer_api import router as composer_router
    from inbox.merges_api import router as merges_router
    from inbox.routing_api import router as routing_router
    from inbox.search_api import router as search_router
    from inbox.states_api import router as states_router
    from inbox.telegram_link_api import router as telegram_link_router

    # Phone systems post many small events: their routes are matched first.
    app.include_router(telephony_router)
    # Before the web forms: /forms/claims is the claims form, not a form channel's key.
    app.include_router(claims_form_router)
    app.include_router(webform_router)
    app.include_router(telegram_router)
    app.include_router(claims_router)
    app.include_router(api_router)
    app.include_router(routing_router)
    app.include_router(states_router)
    app.include_router(channels_router)
    app.include_router(calls_router)
    app.include_router(telegram_link_router)
    app.include_router(search_router)
    app.include_router(composer_router)
    app.include_router(canned_router)
    app.include_router(merges_router)
    from inbox.web import install_workspace

    install_workspace(app)
    return app
