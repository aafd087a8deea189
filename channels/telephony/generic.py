"""Generic CTI, compatible with Zammad's: a PBX set up for Zammad can point at the hub.

    POST /webhooks/telephony/{key}/{token}      (or ?token=...)
    event=newCall|answer|hangup, from, to, direction=in|out, callId, user (or user[]),
    queue, answeringNumber, cause

as form fields or JSON. The answer is `{}`, or `{"action": "reject", "reason": "busy"}`
for a new inbound call from a blocked number.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

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

KINDS = {
    "newCall": CallEventKind.RINGING,
    "answer": CallEventKind.ANSWERED,
    "hangup": CallEventKind.ENDED,
}
# Zammad's hangup causes; normalClearing means the call was established (answered).
CAUSES = {
    "normalClearing": EndCause.NORMAL,
    "busy": EndCause.BUSY,
    "cancel": EndCause.CANCEL,
    "noAnswer": EndCause.NO_ANSWER,
    "congestion": EndCause.CONGESTION,
    "notFound": EndCause.NOT_FOUND,
    "forwarded": EndCause.FORWARDED,
}
REJECT = {"action": "reject", "reason": "busy"}


class GenericProvider:
    name: ClassVar[str] = "generic"
    required_secrets: ClassVar[tuple[str, ...]] = ("token",)
    generated_secrets: ClassVar[tuple[str, ...]] = ("token",)

    def parse(self, request: WebhookRequest, setup: TelephonySetup) -> Parsed:
        token = request.subpath.strip("/") or request.query.get("token")
        if not token:
            raise SignatureMissing("the webhook URL has no token")
        if not same_secret(token, setup.secrets.get("token")):
            raise SignatureInvalid("wrong token")
        fields = _fields(request)
        name = text(fields.get("event"))
        kind = KINDS.get(name or "")
        if kind is None:
            raise InvalidInput(f"unknown event {name!r}", code="unknown_event")
        direction_raw = text(fields.get("direction"))
        if direction_raw not in (None, "in", "out"):
            raise InvalidInput("direction is in or out", code="invalid_direction")
        direction = CallDirection.OUTBOUND if direction_raw == "out" else CallDirection.INBOUND
        users = _users(fields.get("user", fields.get("user[]")))
        answering = text(fields.get("answeringNumber"), 200)
        cause_raw = text(fields.get("cause"))
        cause = CAUSES.get(cause_raw or "")
        answered: bool | None = None
        if kind is CallEventKind.ENDED and cause is not None:
            answered = cause is EndCause.NORMAL
        agent = answering
        if agent is None and users and (kind is CallEventKind.ANSWERED or direction_raw == "out"):
            agent = users[0]
        details: dict[str, Any] = {}
        if users:
            details["users"] = users
        if cause_raw and cause is None:
            details["cause"] = cause_raw
        return Parsed(
            [
                CallEvent(
                    kind=kind,
                    call_id=required(fields, "callId"),
                    direction=direction,
                    from_number=text(fields.get("from"), 64),
                    to_number=text(fields.get("to"), 64),
                    agent=agent,
                    queue=text(fields.get("queue"), 200),
                    answered=answered,
                    cause=cause,
                    details=details,
                )
            ]
        )

    def answer(
        self,
        request: WebhookRequest,
        setup: TelephonySetup,
        parsed: Parsed,
        outcomes: Sequence[CallOutcome],
    ) -> WebhookAnswer:
        for event, outcome in zip(parsed.events, outcomes, strict=False):
            if event.kind is CallEventKind.RINGING and outcome.rejected:
                return WebhookAnswer.json(REJECT)
        return WebhookAnswer.json({})


def _fields(request: WebhookRequest) -> dict[str, Any]:
    if isinstance(request.json_body, dict):
        return request.json_body
    if request.json_body is not None:
        raise InvalidInput("expected a JSON object", code="invalid_body")
    fields: dict[str, Any] = {}
    for key, value in request.form:
        if key in ("user", "user[]"):
            fields.setdefault("user", []).append(value)
        else:
            fields[key] = value
    return fields


def _users(value: Any) -> list[str]:
    if value is None:
        return []
    values = value if isinstance(value, list) else [value]
    return [name for name in (text(v, 200) for v in values) if name]


PROVIDER = GenericProvider()
