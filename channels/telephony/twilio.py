"""Twilio Programmable Voice: the voice webhook, status callbacks, <Dial> action and
recording callbacks, all at `POST /webhooks/telephony/{key}`.

Every request carries `X-Twilio-Signature`, checked with the twilio package's own
`RequestValidator` against the URL Twilio called (the hub's public URL, or the line's
`public_url`). An inbound call's voice webhook is answered with TwiML: <Reject> for a
blocked number, a <Dial> of the line's `dial` targets (with callbacks back here, so
the hub hears who answered), or an empty <Response/>.

How a call maps to events: the parent call's status gives ringing and the end; the
dialled legs (`ParentCallSid`) tell which agent's phone rang and who answered; the
<Dial> action's `DialCallStatus` says whether anybody answered at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar
from xml.sax.saxutils import escape, quoteattr

from twilio.request_validator import RequestValidator

from channels.telephony.base import (
    Parsed,
    SignatureInvalid,
    SignatureMissing,
    WebhookAnswer,
    WebhookRequest,
    required,
    text,
)
from channels.telephony.config import TelephonySetup
from intake.calls.events import CallEvent, CallEventKind, CallOutcome, EndCause
from storage.models import CallDirection

TWIML = "text/xml"
EMPTY = b'<?xml version="1.0" encoding="UTF-8"?><Response/>'
REJECT = b'<?xml version="1.0" encoding="UTF-8"?><Response><Reject reason="busy"/></Response>'
# Statuses that end a call or a <Dial> without anybody answering.
UNANSWERED = {
    "busy": EndCause.BUSY,
    "no-answer": EndCause.NO_ANSWER,
    "canceled": EndCause.CANCEL,
    "failed": EndCause.FAILED,
}
RINGING = {"queued", "initiated", "ringing"}


class TwilioProvider:
    name: ClassVar[str] = "twilio"
    required_secrets: ClassVar[tuple[str, ...]] = ("auth_token",)
    generated_secrets: ClassVar[tuple[str, ...]] = ()

    def parse(self, request: WebhookRequest, setup: TelephonySetup) -> Parsed:
        signature = request.header("x-twilio-signature")
        if not signature:
            raise SignatureMissing("X-Twilio-Signature is missing")
        params = request.fields() if request.method == "POST" else dict(request.query)
        validator = RequestValidator(setup.secrets.get("auth_token", ""))
        if not setup.secrets.get("auth_token") or not validator.validate(
            request.url, params, signature
        ):
            raise SignatureInvalid("X-Twilio-Signature does not match")
        return Parsed(_events(params))

    def answer(
        self,
        request: WebhookRequest,
        setup: TelephonySetup,
        parsed: Parsed,
        outcomes: Sequence[CallOutcome],
    ) -> WebhookAnswer:
        params = request.fields() if request.method == "POST" else dict(request.query)
        if not _is_voice_request(params):
            return WebhookAnswer(EMPTY, media_type=TWIML)
        if any(outcome.rejected for outcome in outcomes):
            return WebhookAnswer(REJECT, media_type=TWIML)
        targets = setup.config.dial
        if not targets:
            return WebhookAnswer(EMPTY, media_type=TWIML)
        callback = request.url.split("?", 1)[0]
        legs = "".join(_leg(target, callback) for target in targets)
        body = (
            '<?xml version="1.0" encoding="UTF-8"?><Response>'
            f'<Dial action={quoteattr(callback)} answerOnBridge="true">{legs}</Dial>'
            "</Response>"
        )
        return WebhookAnswer(body.encode("utf-8"), media_type=TWIML)


def _leg(target: str, callback: str) -> str:
    events = 'statusCallbackEvent="initiated ringing answered completed"'
    attrs = f"{events} statusCallback={quoteattr(callback)}"
    if target.startswith("client:"):
        return f"<Client {attrs}>{escape(target[7:])}</Client>"
    if target.startswith("sip:"):
        return f"<Sip {attrs}>{escape(target)}</Sip>"
    return f"<Number {attrs}>{escape(target)}</Number>"


def _is_voice_request(params: dict[str, str]) -> bool:
    """The first request of an inbound call, which expects TwiML to run."""
    return (
        params.get("Direction") == "inbound"
        and "CallbackSource" not in params
        and "DialCallStatus" not in params
        and "RecordingSid" not in params
        and "ParentCallSid" not in params
    )


def _at(params: dict[str, str]) -> datetime | None:
    raw = params.get("Timestamp")
    if not raw:
        return None
    try:
        return parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None


def _seconds(value: str | None) -> int | None:
    if value is None or not value.strip().isdigit():
        return None
    return int(value)


def _events(params: dict[str, str]) -> list[CallEvent]:
    status = (params.get("CallStatus") or "").lower()
    at = _at(params)
    if "RecordingSid" in params or "RecordingUrl" in params:
        if params.get("RecordingStatus", "completed") != "completed":
            return []
        return [
            CallEvent(
                kind=CallEventKind.RECORDING,
                call_id=required(params, "CallSid"),
                at=at,
                recording_url=text(params.get("RecordingUrl"), 2000),
                recording_ref=text(params.get("RecordingSid")),
            )
        ]
    parent = text(params.get("ParentCallSid"), None)
    if parent is not None:
        return _leg_events(parent, params, status, at)
    call_id = required(params, "CallSid")
    outbound = (params.get("Direction") or "inbound").startswith("outbound")

    def event(kind: CallEventKind, **extra: Any) -> list[CallEvent]:
        return [
            CallEvent(
                kind=kind,
                call_id=call_id,
                direction=CallDirection.OUTBOUND if outbound else CallDirection.INBOUND,
                from_number=text(params.get("From"), 64),
                to_number=text(params.get("To"), 64),
                at=at,
                **extra,
            )
        ]

    dial_status = (params.get("DialCallStatus") or "").lower()
    if dial_status:  # the <Dial> action: did anybody pick up?
        if dial_status in ("completed", "answered"):
            talk = _seconds(params.get("DialCallDuration"))
            return event(CallEventKind.ENDED, answered=True, talk_seconds=talk)
        cause = UNANSWERED.get(dial_status, EndCause.NO_ANSWER)
        return event(CallEventKind.ENDED, answered=False, cause=cause)
    if status in RINGING:
        return event(CallEventKind.RINGING)
    if status == "in-progress":
        # An outbound call is answered by the client; an inbound one only by Twilio.
        return event(CallEventKind.ANSWERED if outbound else CallEventKind.RINGING)
    if status == "completed":
        talk = _seconds(params.get("CallDuration")) if outbound else None
        return event(CallEventKind.ENDED, talk_seconds=talk)
    if status in UNANSWERED:
        return event(CallEventKind.ENDED, answered=False, cause=UNANSWERED[status])
    return []


def _leg_events(
    parent: str, params: dict[str, str], status: str, at: datetime | None
) -> list[CallEvent]:
    """A dialled leg of an inbound call: the agent's phone rings, or the agent answers."""
    agent = text(params.get("To"), 200)
    if agent is None:
        return []
    if status in RINGING:
        name = agent.split(":", 1)[1] if agent.startswith("client:") else agent
        return [CallEvent(kind=CallEventKind.RINGING, call_id=parent, at=at, ringing=(name,))]
    if status in ("in-progress", "answered"):
        return [CallEvent(kind=CallEventKind.ANSWERED, call_id=parent, at=at, agent=agent)]
    return []


PROVIDER = TwilioProvider()
