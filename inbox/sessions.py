"""The web side of managers' sessions: the cookie, CSRF defence and sign-in limits.

CSRF: a state-changing request (anything but GET, HEAD, OPTIONS) authenticated by
the session cookie must come from the hub's own pages. Its `Origin` (or, when a
browser sends none, the origin of its `Referer`) must be the request's own origin
or `OMNIHUB_PUBLIC_URL`'s; a request with neither header must carry the session's
CSRF token in `X-CSRF-Token` (htmx sends headers) or the `csrf_token` form field.
A token in the header must always be right. The token is an HMAC of the session
token, so it needs no storage and dies with the session. Requests with a Bearer
token are not subject: a browser never adds that header by itself.

Sign-in is limited per account (the email as typed, normalised) and per client IP
with the hub's rate limiter (in memory, or in Redis across processes); each attempt
counts before the password is hashed, so a refused one costs no CPU.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import urlsplit

from fastapi import Request, Response

from channels.base import HubContext
from intake.sessions import SESSION_LIFETIME
from storage.errors import Forbidden, RateLimited, coded
from storage.ratelimit import Rate, RateLimiter, create_rate_limiter

SESSION_COOKIE = "omnihub_session"
SESSION_MAX_AGE = int(SESSION_LIFETIME.total_seconds())
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# What check_csrf and check_origin refuse, for the routes' declared answers.
CSRF_REFUSALS = coded(Forbidden, "csrf_origin", "csrf_required", "csrf_token")
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def csrf_token(secret: str, session_token: str) -> str:
    """The CSRF token of a session: derived, so the pages can be given it at any time."""
    key = hashlib.sha256(f"omnihub.csrf:{secret}".encode()).digest()
    return hmac.new(key, session_token.encode(), hashlib.sha256).hexdigest()


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _origin(url: str) -> str | None:
    parts = urlsplit(url.strip())
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def own_origins(request: Request, context: HubContext) -> set[str]:
    """The origins of the hub's own pages: the request's host and the public URL."""
    origins = {_origin(str(request.base_url))}
    if context.public_url:
        origins.add(_origin(context.public_url))
    return {origin for origin in origins if origin is not None}


def claimed_origin(request: Request) -> str | None:
    """Where the browser says the request comes from: Origin, else Referer's origin.

    None when it says nothing; "null" (opaque origins) and unparsable values are
    returned as they are and never match.
    """
    origin = request.headers.get("origin")
    if origin is not None:
        return _origin(origin) or origin
    referer = request.headers.get("referer")
    if referer is not None:
        return _origin(referer) or referer
    return None


def check_origin(request: Request, context: HubContext) -> str | None:
    """403 `csrf_origin` when the request claims to come from another site; else the
    origin it claims (None when it claims none)."""
    origin = claimed_origin(request)
    if origin is not None and origin not in own_origins(request, context):
        raise Forbidden(
            "cross-site request refused: Origin/Referer is not this hub", code="csrf_origin"
        )
    return origin


async def _form_token(request: Request) -> str | None:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in FORM_TYPES:
        # Starlette keeps the parsed form, so the endpoint reads the same one.
        value = (await request.form()).get(CSRF_FIELD)
        return value if isinstance(value, str) else None
    return None


async def check_csrf(request: Request, context: HubContext, session_token: str) -> None:
    """Refuse (403) a state-changing cookie request that is not from the hub's own pages."""
    if request.method in SAFE_METHODS:
        return
    origin = check_origin(request, context)
    presented = request.headers.get(CSRF_HEADER)
    if presented is None and origin is None:
        # Only then: parsing the body here is wasted work for most requests.
        presented = await _form_token(request)
    if presented is not None:
        expected = csrf_token(context.secret, session_token)
        if not hmac.compare_digest(presented.encode(), expected.encode()):
            raise Forbidden("the CSRF token is wrong or of another session", code="csrf_token")
        return
    if origin is None:
        raise Forbidden(
            f"neither Origin nor Referer: send the {CSRF_HEADER} header "
            f"or the {CSRF_FIELD} form field",
            code="csrf_required",
        )


def set_session_cookie(
    request: Request, response: Response, context: HubContext, session_token: str
) -> None:
    """Give the browser its session cookie, and the page its CSRF token in a header."""
    response.set_cookie(
        SESSION_COOKIE,
        session_token,
        max_age=SESSION_MAX_AGE,
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    response.headers[CSRF_HEADER] = csrf_token(context.secret, session_token)


def clear_session_cookie(request: Request, response: Response) -> None:
    response.delete_cookie(
        SESSION_COOKIE,
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )


@dataclass(frozen=True, slots=True)
class LoginLimits:
    """Sign-in attempts per account and per client IP; None means no limit."""

    per_account: RateLimiter | None
    per_ip: RateLimiter | None

    @classmethod
    def create(cls, account_rate: str, ip_rate: str, redis_url: str | None) -> LoginLimits:
        """From settings' rate strings (`10/15m`, `0` for none); ValueError on a bad one."""
        return cls(
            create_rate_limiter(Rate.parse(account_rate), redis_url, "login:account"),
            create_rate_limiter(Rate.parse(ip_rate), redis_url, "login:ip"),
        )

    async def check(self, account: str, ip: str) -> None:
        """Count one attempt; 429 with Retry-After when the IP or the account is over."""
        # The address first: a flood from one address must not use up the account's
        # attempts and lock its manager out.
        for limiter, key in ((self.per_ip, ip), (self.per_account, account)):
            if limiter is None:
                continue
            decision = await limiter.hit(key)
            if not decision.allowed:
                raise RateLimited(decision.retry_after)

    async def close(self) -> None:
        for limiter in (self.per_account, self.per_ip):
            if limiter is not None:
                await limiter.close()


def login_limits(context: HubContext) -> LoginLimits:
    """The hub's sign-in limits (the context keeps their two limiters)."""
    return LoginLimits(context.login_account_limiter, context.login_ip_limiter)
