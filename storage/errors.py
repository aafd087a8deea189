"""The one base error: every refusal the hub gives carries its HTTP status and code.

Routes declare their refusals in OpenAPI from the same classes: a route that may raise
`NotFound` and `Conflict("...", code="queue_in_use")` says
`responses=answers(NotFound, Conflict(code="queue_in_use"))`, one entry per status with
the shared body (`ErrorOut`) and the codes it may carry. A class stands for its default
code; an instance built with `code=` (and no detail) for that code, and
`coded(InvalidInput, "a", "b")` gives one such instance per code. A new error class
plugs in by being named in the `answers()` of the routes (or routers) that raise it.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from pydantic import BaseModel, Field


class HubError(Exception):
    """An error meant for the caller: rendered as `{"error": code, "detail": detail}`."""

    status_code = 400
    code = "bad_request"
    headers: dict[str, str] | None = None

    def __init__(
        self, detail: Any = None, *, code: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail if isinstance(detail, str) else (code or self.code))
        self.detail = detail
        if code is not None:
            self.code = code
        if headers is not None:
            self.headers = headers


class NotFound(HubError):
    status_code = 404
    code = "not_found"


class Conflict(HubError):
    status_code = 409
    code = "conflict"


class InvalidInput(HubError):
    status_code = 422
    code = "invalid_input"


class Unauthorized(HubError):
    status_code = 401
    code = "unauthorized"
    headers: dict[str, str] | None = {"WWW-Authenticate": "Bearer"}  # noqa: RUF012


class Forbidden(HubError):
    status_code = 403
    code = "forbidden"


class PayloadTooLarge(HubError):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaType(HubError):
    status_code = 415
    code = "unsupported_media_type"


class RateLimited(HubError):
    status_code = 429
    code = "rate_limited"

    def __init__(self, retry_after: float) -> None:
        super().__init__(
            f"too many requests; retry after {int(retry_after) + 1} s",
            headers={"Retry-After": str(int(retry_after) + 1)},
        )
        self.retry_after = retry_after


class ErrorOut(BaseModel):
    """Every refusal: a stable code and a human-readable (or structured) detail."""

    error: str = Field(examples=["not_found"])
    detail: Any = None


ERROR_OUT_REF = "#/components/schemas/ErrorOut"
Declared = type[HubError] | HubError
Responses = dict[int | str, dict[str, Any]]

# Every input may be refused as the schema says (`invalid_input`) or for control
# characters (`invalid_characters`): a declared 422 names both.
INPUT_CODES = ("invalid_input", "invalid_characters")


def coded(error: type[HubError], *codes: str) -> tuple[HubError, ...]:
    """`error` once with each of `codes`: `answers(*coded(InvalidInput, "invalid_cursor"))`."""
    return tuple(error(code=code) for code in codes)


def answers(*errors: Declared) -> Responses:
    """`responses=` for a route (or router) that may raise `errors`."""
    codes: dict[int, list[str]] = {}
    for error in errors:
        listed = codes.setdefault(error.status_code, [])
        if error.code not in listed:
            listed.append(error.code)
    if 422 in codes:
        codes[422] = [*INPUT_CODES, *(c for c in codes[422] if c not in INPUT_CODES)]
    return {
        status: {
            "model": ErrorOut,
            # Named outright: on a route that answers HTML, FastAPI would file the
            # model under text/html, but refusals are always JSON.
            "content": {"application/json": {"schema": {"$ref": ERROR_OUT_REF}}},
            "description": f"{HTTPStatus(status).phrase}: "
            + ", ".join(f"`{code}`" for code in listed),
        }
        for status, listed in sorted(codes.items())
    }
