"""Zadarma's PBX notifications: NOTIFY_START, NOTIFY_INTERNAL, NOTIFY_ANSWER, NOTIFY_END,
NOTIFY_OUT_START, NOTIFY_OUT_END and NOTIFY_RECORD, posted as form fields.

Each is signed in the `Signature` header: base64 of the hex HMAC-SHA1, keyed with the
API secret, of fields that depend on the event (as in Zadarma's own library):

    NOTIFY_START, NOTIFY_INTERNAL, NOTIFY_END   caller_id + called_did + call_start
    NOTIFY_ANSWER                               caller_id + destination + call_start
    NOTIFY_OUT_START, NOTIFY_OUT_END            internal + destination + call_start
    NOTIFY_RECORD                               pbx_call_id + call_id_with_rec

When the webhook is set up Zadarma checks it with `GET ?zd_echo=X` and expects X back.
`call_start` is a wall-clock time in the account's zone (the line's `timezone`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from channels.telephony.base import (
    Parsed,
    SignatureInvalid,
    SignatureMissing,
    WebhookAnswer,
    WebhookRequest,
    required,
    same_secret,
    text,
)
from channels.telephony.config import TelephonySetup
from intake.calls.events import CallEvent, CallEventKind, CallOutcome, EndCause
from storage.errors import InvalidInput
from storage.models import CallDirection

Fields = dict[str, str]

SIGNED: dict[str, Callable[[Fields], str]] = {
    "NOTIFY_START": lambda f: f.get("caller_id", "") + f.get("called_did", "") + f["call_start"],
    "NOTIFY_INTERNAL": lambda f: f.get("caller_id", "") + f.get("called_did", "") + f["call_start"],
    "NOTIFY_END": lambda f: f.get("caller_id", "") + f.get("called_did", "") + f["call_start"],
    "NOTIFY_ANSWER": lambda f: f.get("caller_id", "") + f.get("destination", "") + f["call_start"],
    "NOTIFY_OUT_START": lambda f: (
        f.get("internal", "") + f.get("destination", "") + f["call_start"]
    ),
    "NOTIFY_OUT_END": lambda f: f.get("internal", "") + f.get("destination", "") + f["call_start"],
    "NOTIFY_RECORD": lambda f: f["pbx_call_id"] + f["call_id_with_rec"],
}
ECHO = re.compile(r"[A-Za-z0-9_-]{1,128}")
DISPOSITIONS = {
    "busy": EndCause.BUSY,
    "cancel": EndCause.CANCEL,
    "no answer": EndCause.NO_ANSWER,
    "unallocated number": EndCause.NOT_FOUND,
}


def signature(secret: str, signed: str) -> str:
    """Zadarma's: base64 of the lower-case hex digest (PHP's hash_hmac default)."""
    digest = hmac.new(secret.encode("utf-8"), signed.encode("utf-8"), hashlib.sha1).hexdigest()
    return base64.b64encode(digest.encode("ascii")).decode("ascii")


class ZadarmaProvider:
    name: ClassVar[str] = "zadarma"
    required_secrets: ClassVar[tuple[str, ...]] = ("api_secret",)
    generated_secrets: ClassVar[tuple[str, ...]] = ()

    def parse(self, request: WebhookRequest, setup: TelephonySetup) -> Parsed:
        echo = request.query.get("zd_echo")
        if echo is not None:  # the check Zadarma makes when the webhook is set up
            # Whatever the query holds is echoed only if it looks like Zadarma's token:
            # the hub never reflects markup or script to whoever crafted the link.
            if not ECHO.fullmatch(echo):
                raise InvalidInput(
                    "zd_echo is 1 to 128 letters, digits, - or _", code="invalid_echo"
                )
            return Parsed(reply=WebhookAnswer(echo.encode("ascii"), media_type="text/plain"))
        fields = request.fields()
        event = fields.get("event", "")
        signed = SIGNED.get(event)
        if signed is None:
            return Parsed(reply=WebhookAnswer.json({}))  # IVR, SMS, ...: not about calls
        given = request.header("signature")
        if not given:
            raise SignatureMissing("the Signature header is missing")
        try:
            expected = signature(setup.secrets.get("api_secret", ""), signed(fields))
        except KeyError as exc:
            raise SignatureInvalid(f"{exc.args[0]} is missing") from None
        if not setup.secrets.get("api_secret") or not same_secret(given, expected):
            raise SignatureInvalid("the Signature does not match")
        return Parsed([_event(event, fields, ZoneInfo(setup.config.timezone))])

    def answer(
        self,
        request: WebhookRequest,
        setup: TelephonySetup,
        parsed: Parsed,
        outcomes: Sequence[CallOutcome],
    ) -> WebhookAnswer:
        return WebhookAnswer.json({})


def _started(fields: Fields, zone: ZoneInfo) -> datetime | None:
    raw = fields.get("call_start", "").strip()
    try:
        return datetime.strptime(raw, "%Y-%m-%d %H:%M:%S").replace(tzinfo=zone)
    except ValueError:
        return None


def _duration(fields: Fields) -> int | None:
    raw = fields.get("duration", "").strip()
    return int(raw) if raw.isdigit() else None


def _event(name: str, fields: Fields, zone: ZoneInfo) -> CallEvent:
    call_id = required(fields, "pbx_call_id")
    started = _started(fields, zone)
    internal = text(fields.get("internal"), 200)
    if name == "NOTIFY_RECORD":
        return CallEvent(
            kind=CallEventKind.RECORDING,
            call_id=call_id,
            recording_ref=text(fields.get("call_id_with_rec")),
        )
    if name in ("NOTIFY_OUT_START", "NOTIFY_OUT_END"):
        outbound: dict[str, Any] = {
            "call_id": call_id,
            "direction": CallDirection.OUTBOUND,
            "from_number": internal or text(fields.get("caller_id"), 64),
            "to_number": text(fields.get("destination"), 64),
            "started_at": started,
            "agent": internal,
        }
        if name == "NOTIFY_OUT_START":
            return CallEvent(kind=CallEventKind.RINGING, **outbound)
        return _end(fields, outbound)
    inbound: dict[str, Any] = {
        "call_id": call_id,
        "direction": CallDirection.INBOUND,
        "from_number": text(fields.get("caller_id"), 64),
        "to_number": text(fields.get("called_did"), 64),
        "started_at": started,
    }
    if name == "NOTIFY_START":
        return CallEvent(kind=CallEventKind.RINGING, **inbound)
    if name == "NOTIFY_INTERNAL":
        return CallEvent(
            kind=CallEventKind.RINGING,
            ringing=(internal,) if internal else (),
            **inbound,
        )
    if name == "NOTIFY_ANSWER":
        return CallEvent(
            kind=CallEventKind.ANSWERED,
            agent=internal or text(fields.get("destination"), 200),
            **inbound,
        )
    return _end(fields, {**inbound, "agent": internal})


def _end(fields: Fields, base: dict[str, Any]) -> CallEvent:
    disposition = (fields.get("disposition") or "").strip().lower()
    answered = disposition == "answered"
    recorded = fields.get("is_recorded") == "1"
    return CallEvent(
        kind=CallEventKind.ENDED,
        answered=answered,
        cause=EndCause.NORMAL if answered else DISPOSITIONS.get(disposition, EndCause.FAILED),
        talk_seconds=_duration(fields) if answered else None,
        recording_ref=text(fields.get("call_id_with_rec")) if recorded else None,
        details={"disposition": disposition, "status_code": fields.get("status_code")},
        **base,
    )


PROVIDER = ZadarmaProvider()
