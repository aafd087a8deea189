"""The telephony channel's HTTP side: `/webhooks/telephony/{key}` (and paths below it).

The line's provider checks the request (token or signature), reads its call events
and shapes the answer; the events are recorded (`CallJournal`) before the answer
goes out, so what was acknowledged is stored. A request that fails its check stores
nothing.
"""

from __future__ import annotations

import json
import logging
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from channels.base import HubContext
from channels.telephony.base import SignatureInvalid, SignatureMissing, WebhookRequest
from channels.telephony.config import TelephonySetup
from channels.telephony.registry import provider
from storage.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
    answers,
)

log = logging.getLogger(__name__)

router = APIRouter(
    tags=["telephony"],
    responses=answers(
        SignatureMissing,
        SignatureInvalid,
        NotFound(code="unknown_channel"),
        Conflict,
        PayloadTooLarge,
        UnsupportedMediaType,
        InvalidInput,
    ),
)

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
# A call event is a few hundred bytes (Twilio's fullest callback about 2 KB): far more
# is not a phone system talking. Enforced while reading by hub.limits.
MAX_BODY_BYTES = 64 * 1024


@router.post("/webhooks/telephony/{key}", summary="Call events from a phone system")
async def webhook(key: str, request: Request) -> Response:
    """Generic CTI (Zammad-compatible), Twilio, Zadarma or Mango Office events, by the
    line's provider. 401 without credentials, 403 with wrong ones."""
    return await _handle(key, "", request)


@router.get("/webhooks/telephony/{key}", summary="A phone system's check of the webhook")
async def webhook_check(key: str, request: Request) -> Response:
    """Zadarma's `?zd_echo=` check when the webhook is set up (and GET-configured lines)."""
    return await _handle(key, "", request)


@router.post(
    "/webhooks/telephony/{key}/{subpath:path}",
    summary="Call events from a phone system (the token in the path; Mango's event paths)",
)
async def webhook_subpath(key: str, subpath: str, request: Request) -> Response:
    return await _handle(key, subpath, request)


async def _handle(key: str, subpath: str, request: Request) -> Response:
    context: HubContext = request.app.state.context
    setup = await context.phone_lines.get(context.db, key)
    line = provider(setup.config.provider)
    webhook_request = await _read(request, setup, context, subpath)
    parsed = line.parse(webhook_request, setup)
    if parsed.reply is not None:
        answer = parsed.reply
    else:
        outcomes = await context.calls.record(setup, parsed.events) if parsed.events else []
        answer = line.answer(webhook_request, setup, parsed, outcomes)
    return Response(answer.body, status_code=answer.status, media_type=answer.media_type)


async def _read(
    request: Request, setup: TelephonySetup, context: HubContext, subpath: str
) -> WebhookRequest:
    body = await request.body()
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    form: list[tuple[str, str]] = []
    json_body = None
    if request.method == "POST" and body:
        if content_type == "application/json" or content_type.endswith("+json"):
            try:
                json_body = json.loads(body)
            except ValueError as exc:
                raise InvalidInput("the body is not JSON", code="invalid_json") from exc
        elif content_type == FORM_TYPES[0]:
            try:
                form = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
            except UnicodeDecodeError as exc:
                raise InvalidInput("the form is not UTF-8", code="invalid_body") from exc
        elif content_type == FORM_TYPES[1]:
            parsed = await request.form()
            form = [(k, v) for k, v in parsed.multi_items() if not isinstance(v, UploadFile)]
        else:
            raise UnsupportedMediaType(f"cannot read {content_type or 'an untyped body'}")
    return WebhookRequest(
        method=request.method,
        url=_public_url(request, setup, context),
        subpath=subpath,
        query=dict(request.query_params),
        headers={k.lower(): v for k, v in request.headers.items()},
        body=body,
        content_type=content_type,
        form=form,
        json_body=json_body,
    )


def _public_url(request: Request, setup: TelephonySetup, context: HubContext) -> str:
    """The URL as the provider called it: signatures cover it (Twilio)."""
    base = setup.config.public_url or context.public_url
    if not base:
        return str(request.url)
    url = base.rstrip("/") + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    return url
