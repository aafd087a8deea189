"""Raw values read leniently: the original bytes of a surrogate-escaped string,
collapsed whitespace, base64 with broken padding or junk."""

from __future__ import annotations

import binascii
import re

WHITESPACE = re.compile(r"\s+")
_B64_JUNK = re.compile(rb"[^A-Za-z0-9+/]")
_B64_CONCATENATED = re.compile(rb"(?<==)(?=\s*[A-Za-z0-9+/])")


def raw_bytes(value: str) -> bytes:
    """The original bytes of a value the parser decoded as ASCII with surrogateescape."""
    return value.encode("utf-8", "surrogateescape")


def collapse(text: str) -> str:
    """Runs of whitespace as one space, none at the ends."""
    return WHITESPACE.sub(" ", text).strip()


def b64decode(data: bytes) -> bytes:
    """Lenient base64: junk characters ignored, padding repaired, concatenated blocks joined."""
    stripped = data.strip()
    if b"=" in stripped.rstrip(b"= \t\r\n"):
        return b"".join(_b64_chunk(chunk) for chunk in _B64_CONCATENATED.split(stripped))
    return _b64_chunk(stripped)


def _b64_chunk(data: bytes) -> bytes:
    try:
        return binascii.a2b_base64(data)
    except binascii.Error:
        pass
    cleaned = _B64_JUNK.sub(b"", data.replace(b"-", b"+").replace(b"_", b"/"))
    remainder = len(cleaned) % 4
    if remainder == 1:
        cleaned = cleaned[:-1]
    elif remainder:
        cleaned += b"=" * (4 - remainder)
    try:
        return binascii.a2b_base64(cleaned)
    except binascii.Error:
        return b""
