"""Normalising the ways to reach a contact, so one person is one identity everywhere."""

from __future__ import annotations

import re
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


# Dot-atom local part of at most 64 characters; a domain of LDH labels (none starting
# or ending with a hyphen) under an alphabetic top-level label. Anything else, IDN and
# quoted forms included, goes through email-validator.
_PLAIN_EMAIL = re.compile(
    r"(?=[^@]{1,64}@)[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
)


def normalize_email(raw: str) -> str:
    """A syntactically valid address, case-folded (no DNS lookups); InvalidInput otherwise."""
    candidate = raw.strip()
    if not candidate:
        raise InvalidInput("email is empty", code="invalid_email")
    if _PLAIN_EMAIL.fullmatch(candidate) and len(candidate) <= 254:
        # The everyday ASCII address needs none of email-validator's IDNA work.
        return candidate.lower()
    try:
        valid = validate_email(candidate, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidInput(f"invalid email address: {exc}", code="invalid_email") from exc
    # Local parts are case-sensitive by the letter of RFC 5321, case-blind in practice.
    # lower(), not casefold(): casefold rewrites letters ("ß" -> "ss"), another mailbox.
    return valid.normalized.lower()


def normalize_phone(raw: str, default_region: str = "RU") -> str:
    """The number in E.164 ("+79123456789"); national forms use `default_region`."""
    candidate = raw.strip()
    if not candidate:
        raise InvalidInput("phone is empty", code="invalid_phone")
    if candidate.startswith("00"):
        candidate = "+" + candidate[2:]
    number = _parsed(candidate, default_region)
    if number is None and _INTERNATIONAL_DIGITS.fullmatch(candidate):
        # Phone systems send international numbers without the "+" ("493055571600").
        number = _parsed("+" + candidate, default_region)
    if number is None:
        raise InvalidInput(f"invalid phone number: {raw!r}", code="invalid_phone")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


# 11 to 15 digits and nothing else: too long for a national number almost everywhere.
_INTERNATIONAL_DIGITS = re.compile(r"[1-9][0-9]{10,14}")


def _parsed(candidate: str, default_region: str) -> phonenumbers.PhoneNumber | None:
    """The valid number `candidate` spells, or None."""
    try:
        number = phonenumbers.parse(candidate, default_region.upper())
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number) or not phonenumbers.is_valid_number(number):
        return None
    return number


_TELEGRAM_ID = re.compile(r"-?[0-9]{1,19}")


def normalize_telegram(raw: str | int) -> str:
    """A Telegram user id (a signed 64-bit integer) as decimal text."""
    text = str(raw).strip()
    # ASCII digits only: str.isdigit() also accepts "²" and "١", which int() refuses or maps.
    if not _TELEGRAM_ID.fullmatch(text) or not -(2**63) <= int(text) < 2**63:
        raise InvalidInput(f"invalid Telegram user id: {raw!r}", code="invalid_telegram_id")
    return str(int(text))


def normalize(kind: IdentityKind | str, raw: str, default_region: str = "RU") -> IdentityValue:
    """The identity in its one stored form; InvalidInput if it cannot be one."""
    return _normalize(IdentityKind(kind), raw, default_region)


# A channel validates what it received, then intake normalises it again (the raw
# value or the already normalised one): remember both for a while.
_CACHE: dict[tuple[IdentityKind, str, str], IdentityValue] = {}
_CACHE_SIZE = 16384


def _normalize(kind: IdentityKind, raw: str, default_region: str) -> IdentityValue:
    key = (kind, raw, default_region)
    found = _CACHE.get(key)
    if found is None:
        found = _compute(kind, raw, default_region)
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.clear()
        _CACHE[key] = found
        _CACHE[(kind, found.value, default_region)] = found
    return found


def _compute(kind: IdentityKind, raw: str, default_region: str) -> IdentityValue:
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
