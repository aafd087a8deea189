"""Mango Office's virtual PBX (VPBX API) events, posted to the line's URL plus:

    events/call           a leg's state: Appeared, Connected, OnHold, Disconnected
    events/summary        the call's outcome, once it is over
    events/record/added   a recording was saved

Every request is a form with `vpbx_api_key`, `json` (the event) and `sign`, the hex
SHA-256 of api_key + json + api_salt. Mango names a whole call by `entry_id` (its legs
have their own `call_id`s): the journal keeps one call per `entry_id`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any, ClassVar

from channels.telephony.base import (
    Parsed,
    SignatureInvalid,
    SignatureMissing,
    WebhookAnswer,
    WebhookRequest,
    same_secret,
    text,
    unix_time,
)
from channels.telephony.config import TelephonySetup
from intake.calls.events import CallEvent, CallEventKind, CallOutcome, EndCause
from storage.errors import InvalidInput
from storage.models import CallDirection

# disconnect_reason codes of unanswered calls, by what they mean for the caller.
CAUSES = {
    1110: EndCause.CANCEL,  # the client hung up
    1111: EndCause.CANCEL,  # the client did not wait for an answer
    1121: EndCause.BUSY,
    1122: EndCause.BUSY,  # rejected by the employee
    1151: EndCause.BLOCKED,
    1152: EndCause.BLOCKED,
    1163: EndCause.NO_ANSWER,  # queue timeout
    1164: EndCause.NO_ANSWER,  # nobody available
}


def sign(api_key: str, body: str, api_salt: str) -> str:
    return hashlib.sha256((api_key + body + api_salt).encode("utf-8")).hexdigest()


class MangoProvider:
    name: ClassVar[str] = "mango"
    required_secrets: ClassVar[tuple[str, ...]] = ("api_key", "api_salt")
    generated_secrets: ClassVar[tuple[str, ...]] = ()

    def parse(self, request: WebhookRequest, setup: TelephonySetup) -> Parsed:
        fields = request.fields()
        given, body = fields.get("sign"), fields.get("json")
        if not given or body is None:
            raise SignatureMissing("vpbx_api_key, json and sign are required")
        key, salt = setup.secrets.get("api_key", ""), setup.secrets.get("api_salt", "")
        if not key or not same_secret(fields.get("vpbx_api_key"), key):
            raise SignatureInvalid("unknown vpbx_api_key")
        if not same_secret(given.lower(), sign(key, body, salt)):
            raise SignatureInvalid("the sign does not match")
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise InvalidInput("json is not JSON", code="invalid_body") from exc
        if not isinstance(data, dict):
            raise InvalidInput("json is not an object", code="invalid_body")
        path = request.subpath.strip("/")
        if path == "events/call":
            return Parsed(_leg(data))
        if path == "events/summary":
            return Parsed(_summary(data))
        if path == "events/record/added":
            return Parsed(_record(data))
        return Parsed()  # other VPBX events (DTMF, SMS, ...) are not about calls

    def answer(
        self,
        request: WebhookRequest,
        setup: TelephonySetup,
        parsed: Parsed,
        outcomes: Sequence[CallOutcome],
    ) -> WebhookAnswer:
        return WebhookAnswer(b"", media_type="text/plain")


def _party(data: dict[str, Any], name: str) -> dict[str, Any]:
    value = data.get(name)
    return value if isinstance(value, dict) else {}


def _entry(data: dict[str, Any]) -> str:
    entry = text(data.get("entry_id"), None) or text(data.get("call_id"), None)
    if entry is None:
        raise InvalidInput("entry_id is required", code="missing_field")
    return entry


def _leg(data: dict[str, Any]) -> list[CallEvent]:
    caller, callee = _party(data, "from"), _party(data, "to")
    outbound = bool(text(caller.get("extension")))
    state = text(data.get("call_state")) or ""
    location = text(data.get("location")) or ""
    at = unix_time(data.get("timestamp"))
    manager = text(caller.get("extension") if outbound else callee.get("extension"), 200)
    base: dict[str, Any] = {
        "call_id": _entry(data),
        "at": at,
        **_numbers(caller, callee, outbound, text(callee.get("line_number"), 64)),
    }
    if state == "Connected" and (outbound or location == "abonent"):
        return [CallEvent(kind=CallEventKind.ANSWERED, agent=manager, **base)]
    ringing = (manager,) if manager and location == "abonent" and not outbound else ()
    return [CallEvent(kind=CallEventKind.RINGING, ringing=ringing, **base)]


def _summary(data: dict[str, Any]) -> list[CallEvent]:
    direction = data.get("call_direction")
    if direction not in (1, 2, "1", "2"):
        return []  # an internal call between employees
    outbound = str(direction) == "2"
    caller, callee = _party(data, "from"), _party(data, "to")
    created, talked = unix_time(data.get("create_time")), unix_time(data.get("talk_time"))
    ended = unix_time(data.get("end_time"))
    answered = str(data.get("entry_result")) == "1" and talked is not None
    reason = _int(data.get("disconnect_reason"))
    talk = int((ended - talked).total_seconds()) if answered and ended and talked else None
    return [
        CallEvent(
            kind=CallEventKind.ENDED,
            call_id=_entry(data),
            at=ended,
            started_at=created,
            answered_at=talked if answered else None,
            agent=text(caller.get("extension") if outbound else callee.get("extension"), 200),
            answered=answered,
            cause=EndCause.NORMAL if answered else CAUSES.get(reason or 0, EndCause.NO_ANSWER),
            talk_seconds=talk,
            details={"disconnect_reason": reason},
            **_numbers(caller, callee, outbound, text(data.get("line_number"), 64)),
        )
    ]


def _record(data: dict[str, Any]) -> list[CallEvent]:
    return [
        CallEvent(
            kind=CallEventKind.RECORDING,
            call_id=_entry(data),
            at=unix_time(data.get("timestamp")),
            recording_ref=text(data.get("recording_id")),
        )
    ]


def _numbers(
    caller: dict[str, Any], callee: dict[str, Any], outbound: bool, line: str | None
) -> dict[str, Any]:
    if outbound:
        return {
            "direction": CallDirection.OUTBOUND,
            "from_number": line or text(caller.get("number"), 64) or text(caller.get("extension")),
            "to_number": text(callee.get("number"), 64),
        }
    return {
        "direction": CallDirection.INBOUND,
        "from_number": text(caller.get("number"), 64),
        "to_number": line or text(callee.get("number"), 64),
    }


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


PROVIDER = MangoProvider()
