"""The hosted claims form `/forms/claims`: server-rendered, Russian and English, works
without JavaScript. A submission files a claim through `intake.claims.service.file_claim`."""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from itsdangerous import BadSignature, SignatureExpired
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from channels.base import HubContext
from channels.webform import pages
from channels.webform.schemas import FormField, LocalizedText, default_form_config
from channels.webform.texts import CLAIMS_FORM
from intake.claims.service import DEFAULT_DUE_DAYS, ClaimIn, Reason, default_reasons, file_claim
from intake.i18n import other_language, pick_language
from intake.identities import normalize_email, normalize_phone
from storage.db import Database
from storage.errors import ERROR_OUT_REF, HubError, InvalidInput, PayloadTooLarge, answers
from storage.models import Channel, ChannelKind
from storage.repositories import ChannelRepository
from storage.retry import in_transaction
from storage.types import utcnow

log = logging.getLogger(__name__)

router = APIRouter(tags=["web forms"], responses=answers(PayloadTooLarge, InvalidInput))
KEY = "claims"
MAX_FILES = 5
MAX_FILE_BYTES = 10 * 1024 * 1024
MIN_DESCRIPTION = 10
NUMBER = re.compile(r"^CLM-[0-9]{4}-[0-9]{6,12}$")

LIMITS = {"name": 200, "email": 320, "phone": 50, "order_ref": 100, "description": 4000}


# `text(lang, "code", **values)`: the claims form's messages.
text = CLAIMS_FORM.text


def _config() -> dict[str, Any]:
    """A form configuration the generic form pages can read too, plus the claims part."""
    config = default_form_config()
    config.title = LocalizedText.said(CLAIMS_FORM, "title")
    config.thanks = LocalizedText.said(CLAIMS_FORM, "thanks_text")
    config.fields = [*config.fields[:3], FormField(name="message", label=config.fields[3].label)]
    values = config.model_dump(mode="json")
    values["claims"] = {
        "reasons": [{"code": r.code, "ru": r.ru, "en": r.en} for r in default_reasons()],
        "due_days": DEFAULT_DUE_DAYS,
    }
    return values


async def claims_channel(db: Database) -> Channel:
    """The web-form channel `claims` (made on first use)."""
    async with db.read() as session:
        channel = await ChannelRepository(session).get_by_key(KEY, ChannelKind.WEBFORM)
    if channel is not None:
        return channel

    async def find_or_add(session: AsyncSession) -> Channel:
        repo = ChannelRepository(session)
        # Looked for again: after a lost race, the retry finds the winner's channel.
        found = await repo.get_by_key(KEY, ChannelKind.WEBFORM)
        if found is not None:
            return found
        return await repo.add(
            key=KEY, kind=ChannelKind.WEBFORM, title="Claims form", config=_config()
        )

    return await in_transaction(db, find_or_add)


def _reasons(channel: Channel) -> list[Reason]:
    listed = (channel.config.get("claims") or {}).get("reasons") or []
    reasons = [Reason(str(r["code"]), str(r["ru"]), str(r["en"])) for r in listed if "code" in r]
    return reasons or default_reasons()


def _render(
    request: Request,
    context: HubContext,
    channel: Channel,
    lang: str,
    *,
    values: dict[str, str],
    errors: dict[str, str],
    status: int,
    submission_id: str | None = None,
) -> Response:
    token = pages.page_signer(context).sign(f"{KEY}:{submission_id or uuid.uuid4().hex}").decode()
    response = pages.templates.TemplateResponse(
        request,
        "claim_form.html",
        {
            "lang": lang,
            "other_lang": other_language(lang),
            **CLAIMS_FORM.for_templates(lang),
            "values": values,
            "errors": errors,
            "token": token,
            "honeypot": pages.HONEYPOT,
            "reasons": _reasons(channel),
            "max_files": MAX_FILES,
            "max_file_mb": MAX_FILE_BYTES // (1024 * 1024),
            "embed": False,
        },
        status_code=status,
    )
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/forms/claims", response_class=HTMLResponse, summary="The hosted claims form")
async def claim_form(request: Request, lang: str | None = None) -> Response:
    """File a claim without a messenger; `?lang=ru|en` picks the language."""
    context = pages.hub_context(request)
    channel = await claims_channel(context.db)
    language = pick_language(lang, accept_language=request.headers.get("accept-language"))
    return _render(request, context, channel, language, values={}, errors={}, status=200)


@router.get("/forms/claims/thanks", response_class=HTMLResponse, include_in_schema=False)
async def claim_thanks(request: Request, lang: str | None = None, n: str | None = None) -> Response:
    language = pick_language(lang, accept_language=request.headers.get("accept-language"))
    return pages.templates.TemplateResponse(
        request,
        "claim_thanks.html",
        {
            "lang": language,
            **CLAIMS_FORM.for_templates(language),
            "number": n if n and NUMBER.match(n) else None,
            "embed": False,
        },
    )


@router.post(
    "/forms/claims",
    summary="File a claim from the hosted form",
    responses={
        303: {"description": "To the thanks page with the claim's number"},
        422: {
            "description": "The form again with its errors (HTML); a body that is not a "
            "form: `invalid_form` (JSON)",
            "content": {"text/html": {}, "application/json": {"schema": {"$ref": ERROR_OUT_REF}}},
        },
    },
)
async def submit_claim(request: Request) -> Response:
    context = pages.hub_context(request)
    channel = await claims_channel(context.db)
    await pages.check_rate(context, request)
    budget = MAX_FILES * MAX_FILE_BYTES + 2 * 1024 * 1024
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > budget:
        raise PayloadTooLarge(f"the form accepts at most {budget} bytes")
    try:
        data = await request.form(max_files=20, max_fields=50, max_part_size=1024 * 1024)
    except HTTPException as exc:
        raise InvalidInput(str(exc.detail), code="invalid_form") from None
    values = {n: v.replace("\x00", "").strip() for n, v in data.items() if isinstance(v, str)}
    files = [f for f in data.getlist("attachments") if isinstance(f, UploadFile) and f.filename]
    lang = pick_language(values.get("_lang"))
    shown = {n: v for n, v in values.items() if not n.startswith("_") and n != pages.HONEYPOT}

    def again(errors: dict[str, str], submission_id: str | None = None) -> Response:
        return _render(
            request,
            context,
            channel,
            lang,
            values=shown,
            errors=errors,
            status=422,
            submission_id=submission_id,
        )

    if values.get(pages.HONEYPOT):
        log.info("claims form: honeypot filled, submission dropped")
        return RedirectResponse(f"/forms/claims/thanks?{urlencode({'lang': lang})}", 303)
    try:
        payload, age = pages.page_signer(context).unsign(
            values.get(pages.TOKEN_FIELD, ""), max_age=pages.TOKEN_MAX_AGE, return_timestamp=True
        )
    except (BadSignature, SignatureExpired):
        return again({"_form": text(lang, "expired")})
    token_key, _, submission_id = payload.decode().partition(":")
    if token_key != KEY or not submission_id:
        return again({"_form": text(lang, "expired")})
    if (utcnow() - age).total_seconds() < 2.0:
        return again({"_form": text(lang, "too_fast")}, submission_id)

    errors: dict[str, str] = {}
    for name, limit in LIMITS.items():
        if len(shown.get(name, "")) > limit:
            errors[name] = text(lang, "too_long")
    reasons = _reasons(channel)
    if shown.get("reason") not in {r.code for r in reasons}:
        errors["reason"] = text(lang, "invalid_reason")
    if len(shown.get("description", "")) < MIN_DESCRIPTION:
        errors["description"] = text(lang, "short_description")
    region = context.intake.default_region
    email = phone = None
    if shown.get("email") and "email" not in errors:
        try:
            email = normalize_email(shown["email"])
        except InvalidInput:
            errors["email"] = text(lang, "invalid_email")
    if shown.get("phone") and "phone" not in errors:
        try:
            phone = normalize_phone(shown["phone"], region)
        except InvalidInput:
            errors["phone"] = text(lang, "invalid_phone")
    if not (email or phone) and "email" not in errors and "phone" not in errors:
        errors["email"] = text(lang, "contact_required")
    if len(files) > MAX_FILES:
        errors["attachments"] = text(lang, "too_many_files")
    for upload in files:
        if upload.size is not None and upload.size > MAX_FILE_BYTES:
            name = pages.safe_filename(upload.filename or "file")
            size = MAX_FILE_BYTES // (1024 * 1024)
            errors["attachments"] = text(lang, "file_too_large", name=name, size=size)
    if errors:
        return again(errors, submission_id)
    attachments = [await pages.store_upload(context, upload, MAX_FILE_BYTES) for upload in files]
    claim = ClaimIn(
        channel_id=channel.id,
        channel_kind=ChannelKind.WEBFORM,
        external_id=f"form:{submission_id}",
        reason=shown["reason"],
        description=shown["description"],
        order_ref=shown.get("order_ref") or None,
        phone=phone,
        email=email,
        contact_name=shown.get("name") or None,
        language=lang,
        attachments=attachments,
        reasons=reasons,
        due_days=int((channel.config.get("claims") or {}).get("due_days", DEFAULT_DUE_DAYS)),
        meta={"form": KEY, "ip": pages.client_ip(request)},
    )

    async def file(session: AsyncSession) -> str:
        # The same submission posted twice at once: a retry finds the other post's claim.
        return (await file_claim(session, claim, context.intake)).claim.number

    try:
        number = await in_transaction(context.db, file)
    except HubError as exc:
        return again({"_form": str(exc.detail)}, submission_id)
    query = urlencode({"lang": lang, "n": number})
    return RedirectResponse(f"/forms/claims/thanks?{query}", status_code=303)
