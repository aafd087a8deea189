"""Normalising the ways to reach a contact, so one person is one identity everywhere."""

from __future__ import annotations

from dataclasses import dataclass

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from storage.errors import InvalidInput
from storage.models import IdentityKind


@dataclass(frozen=True, slots=True)
class IdentityValue:
    """A normalised identity: (kind, value) is what the identities table keeps unique."""

    kind: IdentityKind
    value: str


def normalize_email(raw: str) -> str:
    """A syntactically valid address, case-folded (no DNS lookups); InvalidInput otherwise."""
    candidate = raw.strip()
    if not candidate:
        raise InvalidInput("email is empty", code="invalid_email")
    try:
        valid = validate_email(candidate, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidInput(f"invalid email address: {exc}", code="invalid_email") from exc
    # Local parts are case-sensitive by the letter of RFC 5321, case-blind in practice.
    return valid.normalized.casefold()


def normalize_phone(raw: str, default_region: str = "RU") -> str:
    """The number in E.164 ("+79123456789"); national forms use `default_region`."""
    candidate = raw.strip()
    if not candidate:
        raise InvalidInput("phone is empty", code="invalid_phone")
    if candidate.startswith("00"):
        candidate = "+" + candidate[2:]
    try:
        number = phonenumbers.parse(candidate, default_region.upper())
    except phonenumbers.NumberParseException as exc:
        raise InvalidInput(f"invalid phone number: {raw!r}", code="invalid_phone") from exc
    if not phonenumbers.is_possible_number(number) or not phonenumbers.is_valid_number(number):
        raise InvalidInput(f"invalid phone number: {raw!r}", code="invalid_phone")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_telegram(raw: str | int) -> str:
    """A Telegram user id as decimal text."""
    text = str(raw).strip()
    if not text.lstrip("-").isdigit():
        raise InvalidInput(f"invalid Telegram user id: {raw!r}", code="invalid_telegram_id")
    return str(int(text))


def normalize(kind: IdentityKind | str, raw: str, default_region: str = "RU") -> IdentityValue:
    kind = IdentityKind(kind)
    if kind is IdentityKind.EMAIL:
        return IdentityValue(kind, normalize_email(raw))
    if kind is IdentityKind.PHONE:
        return IdentityValue(kind, normalize_phone(raw, default_region))
    if kind is IdentityKind.TELEGRAM:
        return IdentityValue(kind, normalize_telegram(raw))
    value = raw.strip()
    if not value or len(value) > 320:
        raise InvalidInput("invalid web session identity", code="invalid_identity")
    return IdentityValue(kind, value)
