"""What the hosted pages share: the lead forms (`endpoints`) and the claim form (`claims`).

Both render from this package's templates, put the same honeypot field in the page,
sign the page's token with the same key (`page_signer`; checked against
`TOKEN_MAX_AGE` when the page comes back), count submissions per client address
against the forms' rate limit, and store uploaded files in the hub's blob store
under a cleaned name.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import Request
from fastapi.templating import Jinja2Templates
from itsdangerous import TimestampSigner
from starlette.datastructures import UploadFile

from channels.base import HubContext
from intake.schemas import AttachmentIn
from storage.errors import PayloadTooLarge, RateLimited

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")

# A field people do not see and bots fill in: a page that comes back with it is a bot's.
HONEYPOT = "website"
TOKEN_FIELD = "_token"
TOKEN_MAX_AGE = 24 * 3600


def hub_context(request: Request) -> HubContext:
    context: HubContext = request.app.state.context
    return context


def page_signer(context: HubContext) -> TimestampSigner:
    """Signs and checks the token a page carries (the hub's secret, the pages' salt)."""
    return TimestampSigner(context.secret, salt="omnihub.webform")


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def check_rate(context: HubContext, request: Request) -> None:
    """Count one submission from the client's address; 429 when it is over the limit."""
    limiter = context.forms_rate_limiter
    if limiter is None:
        return
    decision = await limiter.hit(client_ip(request))
    if not decision.allowed:
        raise RateLimited(decision.retry_after)


async def store_upload(context: HubContext, upload: UploadFile, max_bytes: int) -> AttachmentIn:
    """Store an uploaded file in the blob store; 413 when it is over `max_bytes`."""
    data = await upload.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"file {upload.filename!r} is over {max_bytes} bytes")
    content_type = upload.content_type or "application/octet-stream"
    ref = await context.blobs.put(data, content_type)
    return AttachmentIn(
        filename=safe_filename(upload.filename or "file"),
        content_type=ref.content_type,
        size=ref.size,
        sha256=ref.sha256,
    )


def safe_filename(name: str) -> str:
    """The file's own name without a client's path, control characters or excess length."""
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip() or "file"
    return name[:255]
