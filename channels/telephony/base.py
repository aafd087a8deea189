"""What every telephony provider shares: the request it reads, the answer it gives, its
errors, and the typed Protocol a provider module implements.

A provider is one module in this package with a module-level `PROVIDER` object; the
registry (`channels.telephony.registry`) finds it. It checks the request's token or
signature, turns the request into the hub's `CallEvent`s and shapes the answer the
phone system expects. It knows nothing of storage.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Protocol

from channels.telephony.config import TelephonySetup
from intake.calls.events import CallEvent, CallOutcome
from storage.errors import HubError, InvalidInput


class SignatureMissing(HubError):
    status_code = 401
    code = "signature_missing"


class SignatureInvalid(HubError):
    status_code = 403
    code = "signature_invalid"


@dataclass(frozen=True)
class WebhookRequest:
    """An inbound webhook request, already read: what a provider needs to check and parse."""

    method: str
    url: str  # as the provider called it (the public URL when one is configured)
    subpath: str  # what follows /webhooks/telephony/{key}/ ("events/call", a token)
    query: Mapping[str, str]
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    content_type: str
    # Form fields (urlencoded or multipart) in order, repeated names repeated.
    form: Sequence[tuple[str, str]] = ()
    json_body: Any = None

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def fields(self) -> dict[str, str]:
        """Form fields by name (the last of a repeated name)."""
        return dict(self.form)


@dataclass(frozen=True)
class WebhookAnswer:
    body: bytes = b""
    status: int = 200
    media_type: str = "application/json"

    @classmethod
    def json(cls, value: Any, status: int = 200) -> WebhookAnswer:
        return cls(json.dumps(value, ensure_ascii=False).encode("utf-8"), status)


@dataclass
class Parsed:
    """The events in a request; `reply` answers at once without recording anything."""

    events: list[CallEvent] = field(default_factory=list)
    reply: WebhookAnswer | None = None


class Provider(Protocol):
    """One phone system's webhook dialect."""

    name: ClassVar[str]
    # Secret names a line of this provider must have; `generated` ones the hub makes up.
    required_secrets: ClassVar[tuple[str, ...]]
    generated_secrets: ClassVar[tuple[str, ...]]

    def parse(self, request: WebhookRequest, setup: TelephonySetup) -> Parsed:
        """Check the request's credentials (SignatureMissing, SignatureInvalid) and read
        its events (InvalidInput when it is not what the provider sends)."""
        ...

    def answer(
        self,
        request: WebhookRequest,
        setup: TelephonySetup,
        parsed: Parsed,
        outcomes: Sequence[CallOutcome],
    ) -> WebhookAnswer:
        """The body the phone system expects after the events were recorded."""
        ...


def same_secret(given: str | None, expected: str | None) -> bool:
    """Constant-time comparison; an empty expected secret never matches."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def unix_time(value: Any) -> datetime | None:
    """A Unix timestamp (seconds, as text or number) as an aware UTC datetime; 0 is None."""
    if value is None or value == "":
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"not a Unix time: {value!r}", code="invalid_time") from exc
    if seconds == 0:
        return None  # "never" (Mango's talk_time of an unanswered call)
    if not 0 < seconds < 2**33:
        raise InvalidInput(f"not a Unix time: {value!r}", code="invalid_time")
    return datetime.fromtimestamp(seconds, UTC)


def text(value: Any, limit: int | None = 255) -> str | None:
    """A field as stripped text (cut to `limit`), or None when empty; a JSON object or
    array where text or a number belongs is InvalidInput, never stored as its repr."""
    if value is None:
        return None
    if isinstance(value, dict | list):
        kind = "an object" if isinstance(value, dict) else "an array"
        raise InvalidInput(f"expected text or a number, not {kind}", code="invalid_field")
    result = str(value).strip()
    return result[:limit] or None


def required(fields: Mapping[str, Any], name: str) -> str:
    """A required field, whole (call ids: cutting one could make two calls one)."""
    value = text(fields.get(name), None)
    if value is None:
        raise InvalidInput(f"{name} is required", code="missing_field")
    return value
