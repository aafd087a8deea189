"""The one base error: every refusal the hub gives carries its HTTP status and code."""

from __future__ import annotations

from typing import Any


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
