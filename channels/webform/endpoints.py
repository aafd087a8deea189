"""The web-form channel's HTTP side: hosted page, embed script, browser and JSON posts."""

from __future__ import annotations

import json
import logging
import re
import uuid
from typing import Any
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from itsdangerous import BadSignature, SignatureExpired
from pydantic import ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from channels.base import HubContext, error_response, ingest_committed
from channels.greeting import greeting_text
from channels.webform.pages import (
    HONEYPOT,
    TOKEN_FIELD,
    TOKEN_MAX_AGE,
    check_rate,
    client_ip,
    hub_context,
    page_signer,
    safe_filename,
    store_upload,
    templates,
)
from channels.webform.schemas import WebFormSubmission
from channels.webform.service import (
    FieldErrors,
    Form,
    attribution_from_url,
    build_inbound,
    consent_record,
    validate_submission,
)
from channels.webform.texts import FORM, text
from intake.i18n import other_language, pick_language
from storage.errors import (
    Forbidden,
    HubError,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    UnsupportedMediaType,
    answers,
)
from storage.types import DbId, utcnow

log = logging.getLogger(__name__)

router = APIRouter(
    tags=["web forms"],
    responses=answers(
        HubError(code="invalid_json"),
        Forbidden,
        NotFound(code="unknown_form"),
        PayloadTooLarge,
        UnsupportedMediaType,
        InvalidInput,
        RateLimited,
    ),
)
IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")
BROWSER_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _own_origin(request: Request, context: HubContext) -> str:
    parts = urlsplit(context.public_url or str(request.base_url))
    return f"{parts.scheme}://{parts.netloc}"


def _origin_allowed(form: Form, origin: str | None, request: Request, context: HubContext) -> bool:
    """No Origin (a server's script) or our own pages pass; other sites must be allowed."""
    if not origin:
        return True
    if origin == _own_origin(request, context) or origin == str(request.base_url).rstrip("/"):
        return True
    allowed = form.config.allowed_origins
    return "*" in allowed or origin in allowed


def _cors_headers(
    form: Form, origin: str | None, request: Request, context: HubContext
) -> dict[str, str]:
    if not origin or not _origin_allowed(form, origin, request, context):
        return {}
    return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}


@router.get("/forms/{key}", response_class=HTMLResponse, summary="The hosted form page")
async def show_form(
    key: str,
    request: Request,
    lang: str | None = None,
    embed: bool = False,
    page: str | None = None,
    referrer: str | None = None,
) -> Response:
    """An accessible page that works without JavaScript; `?lang=ru|en` picks the language."""
    context = hub_context(request)
    form = await context.forms.get(context.db, key)
    language = pick_language(
        lang, accept_language=request.headers.get("accept-language"), default=form.config.language
    )
    page_url = (page if embed else None) or str(request.url)
    ref = referrer if embed else request.headers.get("referer")
    return _render_form(
        request,
        context,
        form,
        language,
        embed=embed,
        page_url=page_url,
        referrer=ref or "",
        values={},
        errors={},
        status=200,
    )


def _render_form(
    request: Request,
    context: HubContext,
    form: Form,
    language: str,
    *,
    embed: bool,
    page_url: str,
    referrer: str,
    values: dict[str, str],
    errors: dict[str, str],
    status: int,
    submission_id: str | None = None,
    file_name: str = "",
) -> Response:
    token = page_signer(context).sign(f"{form.key}:{submission_id or uuid.uuid4().hex}").decode()
    max_file_mb = max(1, form.config.max_file_bytes // (1024 * 1024))
    messages = {
        name: text(language, code, name=file_name, size=max_file_mb, count=form.config.max_files)
        for name, code in errors.items()
    }
    response = templates.TemplateResponse(
        request,
        "form.html",
        {
            "form": form,
            "config": form.config,
            "lang": language,
            "other_lang": other_language(language),
            **FORM.for_templates(language),
            "values": values,
            "errors": messages,
            "token": token,
            "page_url": page_url,
            "referrer": referrer,
            "embed": embed,
            "honeypot": HONEYPOT,
            "max_file_mb": max_file_mb,
        },
        status_code=status,
    )
    ancestors = form.config.allowed_origins
    if embed and ancestors and "*" not in ancestors:
        response.headers["Content-Security-Policy"] = "frame-ancestors 'self' " + " ".join(
            ancestors
        )
    elif not embed:
        response.headers["X-Frame-Options"] = "SAMEORIGIN"
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/forms/{key}/thanks", response_class=HTMLResponse, summary="After a browser post")
async def thanks(
    key: str, request: Request, lang: str | None = None, n: DbId | None = None, embed: bool = False
) -> Response:
    context = hub_context(request)
    form = await context.forms.get(context.db, key)
    language = pick_language(
        lang, accept_language=request.headers.get("accept-language"), default=form.config.language
    )
    greeting = form.config.greeting
    return templates.TemplateResponse(
        request,
        "thanks.html",
        {
            "form": form,
            "config": form.config,
            "lang": language,
            **FORM.for_templates(language),
            "number": n,
            "embed": embed,
            # In or out of working hours: when a manager will answer.
            "greeting": greeting_text(greeting, "form", language, utcnow(), number=n)
            if greeting.enabled
            else None,
        },
    )


@router.get("/forms/{key}/embed.js", summary="Script that embeds the form on any site")
async def embed_script(key: str, request: Request) -> Response:
    """`<script src=".../forms/KEY/embed.js" data-lang="ru" async></script>` where the form goes."""
    context = hub_context(request)
    form = await context.forms.get(context.db, key)
    origin = _own_origin(request, context)
    body = templates.get_template("embed.js").render(
        origin=json.dumps(origin),
        key=json.dumps(form.key),
        title=json.dumps(form.config.title.get(form.config.language)),
        titles=json.dumps({lang: form.config.title.get(lang) for lang in ("ru", "en")}),
    )
    return Response(
        body, media_type="application/javascript", headers={"Cache-Control": "public, max-age=300"}
    )


@router.options("/forms/{key}", include_in_schema=False)
async def preflight(key: str, request: Request) -> Response:
    context = hub_context(request)
    form = await context.forms.get(context.db, key)
    origin = request.headers.get("origin")
    if not _origin_allowed(form, origin, request, context):
        return error_response(
            Forbidden(f"origin {origin} is not allowed", code="origin_not_allowed"), {}
        )
    return Response(
        status_code=204,
        headers={
            **_cors_headers(form, origin, request, context),
            "Access-Control-Allow-Methods": "POST, OPTIONS",
            "Access-Control-Allow-Headers": "Content-Type, Idempotency-Key",
            "Access-Control-Max-Age": "600",
        },
    )


@router.post(
    "/forms/{key}",
    status_code=201,
    summary="Submit a form",
    responses={
        201: {"description": "JSON: {lead_id, conversation_id, contact_id}"},
        303: {"description": "Browser post: to the thanks page"},
    },
)
async def submit(key: str, request: Request) -> Response:
    """JSON (201 with ids; `Idempotency-Key` honoured; UTM from this URL's query) or a
    browser post (urlencoded or multipart with files; 303 to the thanks page)."""
    context = hub_context(request)
    form = await context.forms.get(context.db, key)
    origin = request.headers.get("origin")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    is_json = content_type == "application/json" or content_type.endswith("+json")
    if not _origin_allowed(form, origin, request, context):
        exc = Forbidden(
            f"origin {origin} is not allowed for form {form.key}", code="origin_not_allowed"
        )
        return error_response(exc, {})
    cors = _cors_headers(form, origin, request, context)
    try:
        await check_rate(context, request)
        if is_json:
            return await _submit_json(request, context, form, cors)
        if content_type in BROWSER_TYPES:
            return await _submit_browser(request, context, form)
        raise UnsupportedMediaType(
            "send application/json, application/x-www-form-urlencoded or multipart/form-data"
        ) from None
    except HubError as exc:
        if isinstance(exc, RateLimited) and not is_json:
            return HTMLResponse(
                f"<p>{text(form.config.language, 'rate_limited')}</p>",
                status_code=429,
                headers=exc.headers,
            )
        return error_response(exc, cors)


async def _submit_json(
    request: Request, context: HubContext, form: Form, cors: dict[str, str]
) -> Response:
    body = await request.body()
    try:
        submission = WebFormSubmission.model_validate_json(body)
    except ValidationError as exc:
        issues = exc.errors(include_url=False, include_context=False, include_input=False)
        if any(e["type"] == "json_invalid" for e in issues) or not body:
            raise HubError("the body is not valid JSON", code="invalid_json") from None
        detail = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in issues]
        raise InvalidInput(detail) from None
    idempotency_key = request.headers.get("idempotency-key")
    if idempotency_key is not None and not IDEMPOTENCY_KEY.match(idempotency_key):
        raise InvalidInput(
            "Idempotency-Key must be 1-200 visible ASCII characters", code="invalid_idempotency_key"
        )
    clean, problems = validate_submission(form.config, submission, context.intake.default_region)
    language = form.config.language
    if problems:
        raise FieldErrors(problems, {n: text("en", c) for n, c in problems.items()})
    # A site's script posts to our URL: UTM tags come from that URL's query, the page
    # (if the script says which) from ?page=.
    attribution = attribution_from_url(
        str(request.url), request.query_params.get("referrer") or request.headers.get("referer")
    )
    attribution.pop("page_url", None)
    if request.query_params.get("page"):
        attribution["page_url"] = request.query_params["page"][:2000]
    external_id = f"idem:{idempotency_key}" if idempotency_key else f"json:{uuid.uuid4().hex}"
    ip = client_ip(request)
    inbound = build_inbound(
        form,
        clean,
        external_id=external_id,
        attribution=attribution,
        language=language,
        meta={"ip": ip},
        consent=consent_record(form.config, clean, language, ip, utcnow()),
    )
    result = await ingest_committed(context, inbound)
    headers = dict(cors)
    if result.duplicate:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(
        {
            "lead_id": result.lead_id,
            "conversation_id": result.conversation_id,
            "contact_id": result.contact_id,
        },
        status_code=201,
        headers=headers,
    )


async def _submit_browser(request: Request, context: HubContext, form: Form) -> Response:
    config = form.config
    budget = config.max_files * config.max_file_bytes + 2 * 1024 * 1024
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > budget:
        raise PayloadTooLarge(f"the form accepts at most {budget} bytes")
    try:
        data = await request.form(max_files=50, max_fields=200, max_part_size=1024 * 1024)
    except HTTPException as exc:
        # Starlette's parser refuses a field over max_part_size, too many parts, a broken body.
        if "exceeded maximum size" in str(exc.detail):
            raise PayloadTooLarge(str(exc.detail)) from None
        raise InvalidInput(str(exc.detail), code="invalid_form") from None
    values = {name: value for name, value in data.items() if isinstance(value, str)}
    files = [f for f in data.getlist("attachments") if isinstance(f, UploadFile) and f.filename]
    language = pick_language(values.get("_lang"), default=config.language)
    page_url = values.get("_page", "")[:2000]
    referrer = values.get("_referrer", "")[:2000]
    embed = values.get("_embed") == "1"
    shown = {n: v for n, v in values.items() if not n.startswith("_") and n != HONEYPOT}

    def again(
        errors: dict[str, str], submission_id: str | None = None, file_name: str = ""
    ) -> Response:
        return _render_form(
            request,
            context,
            form,
            language,
            embed=embed,
            page_url=page_url,
            referrer=referrer,
            values=shown,
            errors=errors,
            status=422,
            submission_id=submission_id,
            file_name=file_name,
        )

    if values.get(HONEYPOT):
        log.info("web form %s: honeypot filled, submission dropped", form.key)
        return RedirectResponse(_thanks_url(form, language, None, embed), status_code=303)
    try:
        payload, age = page_signer(context).unsign(
            values.get(TOKEN_FIELD, ""), max_age=TOKEN_MAX_AGE, return_timestamp=True
        )
    except (BadSignature, SignatureExpired):
        return again({"_form": "expired"})
    token_key, _, submission_id = payload.decode().partition(":")
    if token_key != form.key or not submission_id:
        return again({"_form": "expired"})
    if (utcnow() - age).total_seconds() < config.min_fill_seconds:
        log.info(
            "web form %s: sent %.1f s after rendering, asked again",
            form.key,
            (utcnow() - age).total_seconds(),
        )
        return again({"_form": "too_fast"})

    known = {f.name for f in config.fields}
    try:
        submission = WebFormSubmission(
            name=shown.get("name") if "name" in known else None,
            email=shown.get("email") if "email" in known else None,
            phone=shown.get("phone") if "phone" in known else None,
            message=shown.get("message") if "message" in known else None,
            fields={
                n: v
                for n, v in shown.items()
                if n in known and n not in ("name", "email", "phone", "message")
            },
            consent=values.get("consent") == "1",
        )
    except ValidationError as exc:
        too_long = {str(e["loc"][-1]): "too_long" for e in exc.errors()}
        return again(too_long, submission_id)
    clean, errors = validate_submission(config, submission, context.intake.default_region)
    if len(files) > (config.max_files if config.accept_files else 0):
        errors["attachments"] = "too_many_files"
    too_large = ""
    for upload in files:
        if upload.size is not None and upload.size > config.max_file_bytes:
            errors["attachments"] = "file_too_large"
            too_large = safe_filename(upload.filename or "file")
    if errors:
        return again(errors, submission_id, too_large)
    attachments = [await store_upload(context, upload, config.max_file_bytes) for upload in files]
    ip = client_ip(request)
    inbound = build_inbound(
        form,
        clean,
        external_id=f"form:{submission_id}",
        attribution=attribution_from_url(page_url or None, referrer or None),
        language=language,
        attachments=attachments,
        meta={"ip": ip, "user_agent": request.headers.get("user-agent", "")[:300]},
        consent=consent_record(config, clean, language, ip, utcnow()),
    )
    result = await ingest_committed(context, inbound)
    return RedirectResponse(_thanks_url(form, language, result.lead_id, embed), status_code=303)


def _thanks_url(form: Form, language: str, lead_id: int | None, embed: bool) -> str:
    query: dict[str, Any] = {"lang": language}
    if lead_id is not None:
        query["n"] = lead_id
    if embed:
        query["embed"] = 1
    return f"/forms/{form.key}/thanks?{urlencode(query)}"
