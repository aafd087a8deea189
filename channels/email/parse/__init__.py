"""Parsing one raw email: headers, bodies, attachments, bounces and loop markers.

Pure functions over bytes: no database, no network. The structure comes from the
standard library's email package with ``policy.default``; header values, parameters,
transfer encodings and charsets are decoded here from the raw bytes, leniently,
because real mail (Russian mail in particular) breaks every rule: raw windows-1251
in headers, KOI8-R encoded words, wrong charset labels, broken boundaries and
base64 padding. Nothing raises on a real message: what cannot be decoded is
recorded in ``defects`` and skipped; :class:`UnparseableEmail` is raised only
when there is nothing usable at all.

After the structure is read, small filters run in order over one :class:`Mail`
(as Zammad's ``Channel::Filter::*`` do), each reading what the ones before it
found: the sender, the MIME parts, the text, the safe HTML, the inline images,
the bounce, the addressing, the robots' markers, the text without quotes. Each
filter lives in the module of its concern (headers, parts, body, html,
attachments, bounces, robots); the order is also the order of ``defects``.
"""

from __future__ import annotations

from collections.abc import Callable
from email.message import Message

from channels.email.parse import attachments, body, bounces, headers, html, parts, robots
from channels.email.parse.headers import (
    PARSER,
    charset_hint,
    decode_header_text,
    first_headers,
    reparse_obsolete_headers,
)
from channels.email.parse.html import html_to_text, sanitize_html
from channels.email.parse.model import (
    DEFAULT_MAX_ATTACHMENT_BYTES,
    Bounce,
    Mail,
    ParsedAttachment,
    ParsedEmail,
    SkippedPart,
    UnparseableEmail,
)

__all__ = [
    "Bounce",
    "ParsedAttachment",
    "ParsedEmail",
    "SkippedPart",
    "UnparseableEmail",
    "decode_header_text",
    "html_to_text",
    "parse_email",
    "sanitize_html",
]

FILTERS: tuple[Callable[[Mail], None], ...] = (
    headers.read_sender,
    parts.read_parts,
    body.read_text,
    html.sanitize,
    attachments.mark_inline,
    bounces.read_bounce,
    headers.read_addressing,
    robots.mark_automatic,
    body.strip_quoted,
)


def parse_email(
    raw: bytes,
    *,
    max_attachment_bytes: int = DEFAULT_MAX_ATTACHMENT_BYTES,
    own_domains: frozenset[str] = frozenset(),
) -> ParsedEmail:
    """Parse one raw RFC 5322 message. Raises :class:`UnparseableEmail` only when
    the input is empty or has no header block at all."""
    message = _structure(raw)
    mail = Mail(
        message=message,
        top=first_headers(message),
        max_bytes=max_attachment_bytes,
        own_domains=own_domains,
        hint=charset_hint(message),
    )
    for apply in FILTERS:
        apply(mail)
    return mail.parsed()


def _structure(raw: bytes) -> Message:
    data = bytes(raw).lstrip(b"\r\n\t ")
    if not data:
        raise UnparseableEmail("empty input")
    message: Message
    try:
        message = PARSER.parsebytes(data)
    except Exception as exc:  # pragma: no cover - the feed parser does not raise on bytes
        raise UnparseableEmail(f"parser error: {type(exc).__name__}: {exc}") from exc
    if not message.keys():
        message = reparse_obsolete_headers(data) or message
    if not message.keys():
        raise UnparseableEmail("no header block")
    return message
