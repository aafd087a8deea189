"""The call journal's words: call events, their kinds and end causes, what an event did,
the call's line in its conversation, and the caller's number."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import intake
from intake.i18n import Catalogue, lang_of
from intake.identities import normalize
from intake.schemas import IdentityIn, InboundMessage
from storage.errors import InvalidInput
from storage.models import Call, CallDirection, CallState, Contact, IdentityKind

PROVIDER_CALL_ID_LENGTH = 255
# The longest call id kept whole: the call's message is "call:<id>" in a 255-character
# column. A longer id is refused rather than cut, or two calls sharing a prefix would be one.
CALL_ID_LENGTH = PROVIDER_CALL_ID_LENGTH - len("call:")
NUMBER_LENGTH = 64
AGENT_LENGTH = 200
RECORDING_URL_LENGTH = 2000


class CallEventKind(StrEnum):
    RINGING = "ringing"
    ANSWERED = "answered"
    ENDED = "ended"
    RECORDING = "recording"


class EndCause(StrEnum):
    NORMAL = "normal"
    BUSY = "busy"
    CANCEL = "cancel"  # the caller hung up before anybody answered
    NO_ANSWER = "no_answer"
    CONGESTION = "congestion"
    NOT_FOUND = "not_found"
    FAILED = "failed"
    FORWARDED = "forwarded"  # passed on to another party: not the hub's to call back
    BLOCKED = "blocked"


@dataclass(frozen=True, slots=True)
class CallEvent:
    """One provider's report about a call, in the hub's words."""

    kind: CallEventKind
    call_id: str
    direction: CallDirection | None = None
    from_number: str | None = None
    to_number: str | None = None
    # When it happened by the provider's clock; None: when it was received.
    at: datetime | None = None
    started_at: datetime | None = None
    answered_at: datetime | None = None
    # The manager involved as the PBX names them (extension, SIP login, email or phone):
    # who answered an inbound call, who placed an outbound one.
    agent: str | None = None
    # Phones ringing now (extensions), for the screen pop of those managers.
    ringing: tuple[str, ...] = ()
    queue: str | None = None
    # ENDED: whether somebody answered, when the provider says so.
    answered: bool | None = None
    cause: EndCause | None = None
    talk_seconds: int | None = None
    recording_url: str | None = None
    recording_ref: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.call_id or len(self.call_id) > CALL_ID_LENGTH:
            raise InvalidInput(
                f"a call id has 1 to {CALL_ID_LENGTH} characters", code="invalid_call_id"
            )


@dataclass(slots=True)
class CallOutcome:
    """What one event did to its call (for the caller's follow-up in the same transaction)."""

    call: Call
    created: bool = False
    answered_now: bool = False  # the call became answered with this event
    manager_now: bool = False  # the answering (or calling) manager became known
    missed_now: bool = False  # an inbound call ended unanswered, not forwarded
    ended_now: bool = False
    duplicate: bool = False  # nothing changed
    lead_id: int | None = None

    @property
    def rejected(self) -> bool:
        return self.call.state == CallState.REJECTED


# Found from the intake package, so the calls' modules may move within it.
CATALOGUE = Catalogue(Path(intake.__file__).parent / "calls" / "locale")


def call_text(call: Call, language: str) -> str:
    """The call as one line of the conversation, in the channel's language."""
    lang = lang_of(language)
    number = call.client_number or call.from_number
    inbound = call.direction == CallDirection.INBOUND
    if call.state == CallState.MISSED and not call.forwarded:
        return CATALOGUE.text(lang, "call.missed" if inbound else "call.unanswered", number=number)
    what = CATALOGUE.text(lang, "call.inbound" if inbound else "call.outbound", number=number)
    if call.forwarded:
        return CATALOGUE.text(lang, "call.forwarded", what=what)
    if call.state == CallState.COMPLETED and call.talk_seconds is not None:
        minutes, seconds = divmod(call.talk_seconds, 60)
        duration = f"{minutes}:{seconds:02d}"
        return CATALOGUE.text(lang, "call.talked", what=what, duration=duration)
    return what


def client_number(raw: str | None, region: str) -> str | None:
    """The E.164 number behind what a PBX sent, or None ("anonymous", an extension)."""
    if not raw:
        return None
    value = raw.strip()
    if value.lower().startswith(("sip:", "tel:")):
        value = value[4:].split("@", 1)[0]
    try:
        return normalize(IdentityKind.PHONE, value, region).value  # cached
    except InvalidInput:
        return None


def blocklist_key(raw: str | None, region: str) -> str | None:
    """What the blocklist holds for a caller: E.164, or the raw value ("anonymous")."""
    if not raw or not raw.strip():
        return None
    return client_number(raw, region) or raw.strip().lower()[:NUMBER_LENGTH]


def contact_card(contact: Contact | None, phone: str | None) -> dict[str, Any] | None:
    """What a manager's screen shows when the phone rings."""
    if contact is None:
        return None
    return {
        "id": contact.id,
        "name": contact.name,
        "company": contact.company,
        "language": contact.language,
        "owner_id": contact.owner_id,
        "phone": phone,
    }


@dataclass(frozen=True, slots=True)
class CallChannel:
    """What the journal needs to know of the telephony channel."""

    id: int
    kind: str
    language: str = "ru"


def key_of(channel: CallChannel, event: CallEvent) -> tuple[int, str]:
    return (channel.id, event.call_id)


def agent_of(raw: str) -> str:
    agent = raw.strip()
    if agent.lower().startswith(("sip:", "client:")):
        agent = agent.split(":", 1)[1].split("@", 1)[0]
    return agent[:AGENT_LENGTH]


def build_call(key: tuple[int, str], event: CallEvent, at: datetime, region: str) -> Call:
    direction = event.direction or CallDirection.INBOUND
    return Call(
        channel_id=key[0],
        provider_call_id=key[1],
        direction=direction,
        state=CallState.RINGING,
        from_number=(event.from_number or "")[:NUMBER_LENGTH],
        to_number=(event.to_number or "")[:NUMBER_LENGTH],
        client_number=client_number(client_side(direction, event), region),
        started_at=start_of(event) or at,
        forwarded=False,
        queue=(event.queue or None) and event.queue[:AGENT_LENGTH],
        details={},
    )


def reject(call: Call, at: datetime) -> None:
    call.state = CallState.REJECTED
    call.end_reason = EndCause.BLOCKED
    call.ended_at = at


def inbound_message(channel: CallChannel, call: Call) -> InboundMessage:
    """The inbound call as intake takes it: a message in the caller's open conversation."""
    assert call.client_number is not None
    return InboundMessage(
        channel_id=channel.id,
        channel_kind=channel.kind,
        external_id=f"call:{call.provider_call_id}",
        identities=[IdentityIn(IdentityKind.PHONE, call.client_number)],
        text=call_text(call, channel.language),
        thread_key=f"phone:{call.client_number}",
        meta=call_meta(call),
        received_at=call.started_at,
        lead_kind="call",
    )


def client_side(direction: CallDirection, event: CallEvent) -> str | None:
    return event.from_number if direction == CallDirection.INBOUND else event.to_number


def start_of(event: CallEvent) -> datetime | None:
    """When the call began, as far as this event tells."""
    if event.started_at is not None:
        return event.started_at
    return event.at if event.kind is CallEventKind.RINGING else None


def call_meta(call: Call) -> dict[str, Any]:
    # Only what never changes: the line's text says how the call went, the journal the rest.
    return {"call": {"id": call.id, "direction": call.direction}}
