"""Web forms as channels: lookup, validation of a submission, and its InboundMessage."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from sqlalchemy.ext.asyncio import AsyncSession

from channels.base import CHANNEL_KEY
from channels.webform.schemas import (
    STANDARD_FIELDS,
    FormConfig,
    WebFormSubmission,
    default_form_config,
)
from intake.identities import normalize
from intake.schemas import AttachmentIn, IdentityIn, InboundMessage
from storage.db import Database
from storage.errors import HubError, InvalidInput, NotFound
from storage.models import ChannelKind, IdentityKind
from storage.repositories import ChannelRepository
from storage.retry import in_transaction

ATTRIBUTION_PARAMS = (
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
    "yclid",
    "gclid",
)
CACHE_SECONDS = 5.0


def storable(value: str) -> str:
    """The text without NUL characters, which PostgreSQL cannot store in text or JSON."""
    return value.replace("\x00", "")


@dataclass(frozen=True)
class Form:
    channel_id: int
    key: str
    config: FormConfig


class FormCache:
    """Forms by key, cached briefly: a busy form costs no query per submission, and when
    its entry runs out, the submissions arriving meanwhile wait for one read together."""

    def __init__(self, ttl: float = CACHE_SECONDS) -> None:
        self.ttl = ttl
        self._forms: dict[str, tuple[float, Form]] = {}
        self._reading: dict[str, asyncio.Future[Form]] = {}

    async def get(self, db: Database, key: str) -> Form:
        if not CHANNEL_KEY.match(key):
            raise NotFound(f"no form {key!r}", code="unknown_form")
        cached = self._forms.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        reading = self._reading.get(key)
        if reading is None:
            reading = asyncio.ensure_future(self._read(db, key))
            self._reading[key] = reading
            reading.add_done_callback(lambda done: self._read_done(key, done))
        # Shielded: a caller that goes away does not cancel the others' read.
        return await asyncio.shield(reading)

    def _read_done(self, key: str, done: asyncio.Future[Form]) -> None:
        self._reading.pop(key, None)
        if not done.cancelled():
            done.exception()  # retrieved: the callers that still wait have it raised

    async def _read(self, db: Database, key: str) -> Form:
        now = time.monotonic()
        async with db.read() as session:
            channel = await ChannelRepository(session).get_by_key(key, ChannelKind.WEBFORM)
        if channel is None or not channel.is_active:
            raise NotFound(f"no form {key!r}", code="unknown_form")
        form = Form(channel.id, channel.key, FormConfig.model_validate(channel.config))
        self._forms[key] = (now + self.ttl, form)
        return form


async def ensure_default_form(db: Database) -> None:
    """Create the form `default` if this hub has none (every hub has one out of the box)."""
    async with db.read() as session:
        if await ChannelRepository(session).get_by_key("default") is not None:
            return

    # It collects names, addresses and phones: Russian law (152-FZ) wants the person's
    # consent first, so the built-in form asks for it (the policy link is the owner's to add).
    config = default_form_config()
    config.consent.required = True

    async def create(session: AsyncSession) -> None:
        repo = ChannelRepository(session)
        if await repo.get_by_key("default") is None:  # another process may have made it
            await repo.add(
                key="default",
                kind=ChannelKind.WEBFORM,
                title="Default web form",
                config=config.model_dump(mode="json"),
            )

    await in_transaction(db, create)


class FieldErrors(HubError):
    """Submitted values that do not fit the form; `fields` maps a field to an error code."""

    status_code = 422
    code = "invalid_input"

    def __init__(self, fields: dict[str, str], messages: dict[str, str]) -> None:
        super().__init__(
            {name: {"code": code, "message": messages[name]} for name, code in fields.items()}
        )
        self.fields = fields


@dataclass
class CleanSubmission:
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    message: str = ""
    custom: dict[str, str] = field(default_factory=dict)
    consent: bool = False


def validate_submission(
    form: FormConfig, submission: WebFormSubmission, region: str
) -> tuple[CleanSubmission, dict[str, str]]:
    """The cleaned values and a map of field name -> error code (empty when all is well)."""
    errors: dict[str, str] = {}
    clean = CleanSubmission()
    declared = {f.name: f for f in form.fields}
    values: dict[str, str | None] = {
        "name": submission.name and storable(submission.name),
        "email": submission.email and storable(submission.email),
        "phone": submission.phone and storable(submission.phone),
        "message": submission.message and storable(submission.message),
    }
    for name, value in submission.fields.items():
        if name in STANDARD_FIELDS or name not in declared:
            errors[name] = "unknown_field"
            continue
        values[name] = storable(value).strip()
    for name, spec in declared.items():
        value = (values.get(name) or "").strip()
        if not value:
            if spec.required:
                errors[name] = "required"
            continue
        if len(value) > spec.max_length:
            errors[name] = "too_long"
            continue
        if spec.type == "select" and spec.options and value not in spec.options:
            errors[name] = "invalid_option"
            continue
        if name == "email":
            try:
                clean.email = normalize(IdentityKind.EMAIL, value, region).value
            except InvalidInput:
                errors[name] = "invalid_email"
        elif name == "phone":
            try:
                clean.phone = normalize(IdentityKind.PHONE, value, region).value
            except InvalidInput:
                errors[name] = "invalid_phone"
        elif name == "name":
            clean.name = value
        elif name == "message":
            clean.message = value
        else:
            clean.custom[name] = value
    for name in ("name", "email", "phone", "message"):
        if values.get(name) and name not in declared:
            errors[name] = "unknown_field"
    clean.consent = submission.consent is True
    if form.consent.required and not clean.consent:
        errors["consent"] = "consent_required"
    required = form.require_contact
    if required != "none" and "email" not in errors and "phone" not in errors:
        has = {"email": bool(clean.email), "phone": bool(clean.phone)}
        missing = (
            not (has["email"] or has["phone"])
            if required == "email_or_phone"
            else not has[required]
        )
        if missing:
            target = "phone" if required == "phone" else "email"
            if target not in declared:
                target = "phone" if "phone" in declared else "_form"
            errors[target] = f"contact_required_{required}"
    return clean, errors


def attribution_from_url(url: str | None, referrer: str | None) -> dict[str, str]:
    """UTM tags and click ids from the page's URL, plus the referrer."""
    result: dict[str, str] = {}
    url, referrer = url and storable(url), referrer and storable(referrer)
    if url:
        url = url[:2000]
        for name, value in parse_qsl(urlsplit(url).query, keep_blank_values=False):
            if name in ATTRIBUTION_PARAMS and name not in result:
                result[name] = storable(value)[:500]
        result["page_url"] = url
    if referrer:
        result["referrer"] = referrer[:2000]
    return result


def consent_record(
    form: FormConfig, clean: CleanSubmission, language: str, ip: str, now: datetime
) -> dict[str, Any] | None:
    """What the person agreed to, when and from where; None if they gave no consent."""
    if not clean.consent:
        return None
    return {
        "given_at": now.isoformat(),
        "version": form.consent.version,
        "text": form.consent.wording(language),
        "policy_url": form.consent.policy_url,
        "ip": ip,
    }


def build_inbound(
    form: Form,
    clean: CleanSubmission,
    *,
    external_id: str,
    attribution: dict[str, Any],
    language: str,
    attachments: list[AttachmentIn] | None = None,
    meta: dict[str, Any] | None = None,
    consent: dict[str, Any] | None = None,
) -> InboundMessage:
    identities: list[IdentityIn] = []
    if clean.email:
        identities.append(IdentityIn(IdentityKind.EMAIL, clean.email))
    if clean.phone:
        identities.append(IdentityIn(IdentityKind.PHONE, clean.phone))
    fields: dict[str, Any] = {
        k: v for k, v in (("name", clean.name), ("email", clean.email), ("phone", clean.phone)) if v
    }
    fields.update(clean.custom)
    text = clean.message
    if clean.custom:
        labels = {f.name: f.label.get(language) for f in form.config.fields}
        extra = "\n".join(f"{labels.get(k, k)}: {v}" for k, v in clean.custom.items())
        text = f"{text}\n\n{extra}" if text else extra
    return InboundMessage(
        channel_id=form.channel_id,
        channel_kind=ChannelKind.WEBFORM,
        external_id=external_id,
        identities=identities,
        text=text,
        subject=None,
        contact_name=clean.name,
        contact_language=language,
        thread_key=None,
        attachments=attachments or [],
        meta={
            "form": form.key,
            "form_title": form.config.title.get(language),
            "language": language,
            **(meta or {}),
        },
        attribution=attribution,
        form_fields=fields,
        consent=consent,
    )
