"""Parsing one raw email: headers, bodies, attachments, bounces and loop markers.

Pure functions over bytes: no database, no network. The structure comes from the
standard library's email package with ``policy.default``; header values, parameters,
transfer encodings and charsets are decoded here from the raw bytes, leniently,
because real mail (Russian mail in particular) breaks every rule: raw windows-1251
in headers, KOI8-R encoded words, wrong charset labels, broken boundaries and
base64 padding. Nothing raises on a real message: what cannot be decoded is
recorded in ``defects`` and skipped; :class:`UnparseableEmail` is raised only
when there is nothing usable at all.
"""

from __future__ import annotations

import binascii
import functools
import mimetypes
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import errors, policy
from email.generator import BytesGenerator
from email.message import EmailMessage, Message
from email.parser import BytesHeaderParser, BytesParser
from email.policy import EmailPolicy
from email.utils import getaddresses, parsedate_to_datetime
from html.parser import HTMLParser
from io import BytesIO
from typing import Any, cast
from urllib.parse import unquote_to_bytes

import nh3

from channels.email.charsets import decode_bytes
from channels.email.quotes import strip_quotes

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

DEFAULT_MAX_ATTACHMENT_BYTES = 25 * 1024 * 1024
MAX_DEPTH = 25
KEPT_HEADERS = (
    "message-id",
    "date",
    "from",
    "reply-to",
    "to",
    "cc",
    "subject",
    "in-reply-to",
    "references",
    "auto-submitted",
    "precedence",
    "list-id",
)


class UnparseableEmail(Exception):
    """Nothing usable can be got from the input (empty, or no header block at all)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(slots=True)
class ParsedAttachment:
    filename: str  # decoded, sanitized, never empty
    content_type: str  # lowercased maintype/subtype
    data: bytes
    content_id: str | None  # without <>
    inline: bool  # an inline image referenced by cid: from the HTML body
    truncated_reason: str | None = None  # set when over the size limit; data is then b""
    size: int = 0  # decoded size in bytes, also when the data was dropped


@dataclass(frozen=True, slots=True)
class SkippedPart:
    """A part left out on purpose (a signature): named on the message, not stored."""

    filename: str
    reason: str


@dataclass(slots=True)
class Bounce:
    """A delivery status notification (RFC 3464)."""

    original_message_id: str | None
    recipients: list[str]
    action: str | None  # failed / delayed / delivered / relayed / expanded
    status: str | None  # like 5.1.1
    diagnostic: str | None
    permanent: bool  # action failed or status 5.x.x
    reporting_mta: str | None = None  # the host that wrote the report (Reporting-MTA)


@dataclass(slots=True)
class ParsedEmail:
    message_id: str | None
    in_reply_to: list[str]
    references: list[str]
    subject: str
    from_address: str | None
    from_name: str | None
    reply_to: str | None
    to: list[str]
    cc: list[str]
    date: datetime | None  # aware UTC
    text: str  # the full plain-text body
    html: str | None  # sanitized
    display_text: str  # text without quoted reply and signature
    attachments: list[ParsedAttachment]
    auto_reason: str | None
    bounce: Bounce | None
    defects: list[str]
    headers: dict[str, str]
    read_receipt: bool = False  # a message disposition notification (RFC 8098)
    skipped: list[SkippedPart] = field(default_factory=list)
    # A bounce or delay report: a DSN, or mail from a mailer daemon (older bounces have
    # no DSN part). Its text is kept whole; it may come from the null sender.
    delivery_report: bool = False


# ---------------------------------------------------------------- header values


class _MemoPolicy(EmailPolicy):
    """``policy.default`` that builds each distinct header value once.

    The default policy parses a header anew on every access, and the parser itself
    asks each part for its Content-Type several times; with the same values
    ("text/plain; charset=utf-8") in every message, a bounded memo of the parsed,
    immutable header objects saves most of a message's parsing time.
    """

    def header_fetch_parse(self, name: str, value: Any) -> Any:
        if hasattr(value, "name"):
            return value
        return _parsed_header(self, name, value)


@functools.lru_cache(maxsize=4096)
def _parsed_header(memo: _MemoPolicy, name: str, value: str) -> Any:
    return EmailPolicy.header_fetch_parse(memo, name, value)


_MEMO_POLICY = _MemoPolicy()
_PARSER = BytesParser(policy=_MEMO_POLICY)
_HEADER_PARSER = BytesHeaderParser(policy=_MEMO_POLICY)
_FLATTEN_POLICY = policy.default.clone(refold_source="none", linesep="\r\n")
_UNFOLD = re.compile(r"\r\n|\r|\n")
_WHITESPACE = re.compile(r"\s+")
_ENCODED_WORD = re.compile(r"=\?([^?\s]+?)\?([bBqQ])\?([^?]*)\?=")
_B64_JUNK = re.compile(rb"[^A-Za-z0-9+/]")
_B64_CONCATENATED = re.compile(rb"(?<==)(?=\s*[A-Za-z0-9+/])")
_MESSAGE_ID = re.compile(r"<\s*([^<>\s]+?)\s*>")
_ADDRESS = re.compile(r"[^\s@<>,;:\"()\[\]\\]+@[^\s@<>,;:\"()\[\]\\]+")
_MAIN_VALUE = re.compile(r"\s*([^;\s]*)")
_PARAM = re.compile(
    r"""[;\s]\s*([A-Za-z0-9_.*'%!#$&+^`{|}~-]+)\s*=\s*"""
    r"""("(?:[^"\\]|\\.)*(?:"|$)|[^;\s"]+(?:[ \t]+[^;\s="]+)*)"""
)
_RFC2231_SECTION = re.compile(r"\*(\d{1,3})(\*?)")
_STATUS = re.compile(r"\b([245]\.\d{1,3}\.\d{1,3})\b")
_NOREPLY = re.compile(
    r"(?:^|[-_.+])(?:no[-_.]?reply|do[-_.]?not[-_.]?reply|dont[-_.]?reply|no[-_.]?answer|"
    r"ne[-_.]?pas[-_.]?repondre|nicht[-_.]?antworten)"
    r"(?:$|[-_.+\d])",
    re.IGNORECASE,
)
_DAEMONS = frozenset({"mailer-daemon", "mailerdaemon", "mail-daemon", "maildaemon", "postmaster"})
_BULK_PRECEDENCE = frozenset({"bulk", "list", "junk", "auto_reply", "auto-reply"})
_SUPPRESS_AUTO = frozenset({"all", "oof", "autoreply"})
_SIGNATURE_TYPES = frozenset(
    {
        "application/pgp-signature",
        "application/pkcs7-signature",
        "application/x-pkcs7-signature",
    }
)
_RENDERING_ALTERNATIVES = frozenset({"text/enriched", "text/richtext", "text/x-amp-html"})
_META_CHARSET = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
_BOUNDARY_LINE = re.compile(r"^--([^\s]{1,200}?)(?:--)?[ \t]*\r?$", re.MULTILINE)
_UU_BEGIN = re.compile(rb"^begin[ \t]+[0-7]{3,4}[ \t]+(.*?)\s*$")
_TRANSFER_ENCODINGS = {
    "7bit": "7bit",
    "7-bit": "7bit",
    "7bits": "7bit",
    "8bit": "8bit",
    "8-bit": "8bit",
    "8bits": "8bit",
    "binary": "binary",
    "base64": "base64",
    "base-64": "base64",
    "b64": "base64",
    "quoted-printable": "quoted-printable",
    "qp": "quoted-printable",
    "x-uuencode": "uuencode",
    "uuencode": "uuencode",
    "x-uue": "uuencode",
    "uue": "uuencode",
}


def _raw_bytes(value: str) -> bytes:
    """The original bytes of a value the parser decoded as ASCII with surrogateescape."""
    return value.encode("utf-8", "surrogateescape")


def _collapse(text: str) -> str:
    return _WHITESPACE.sub(" ", text).strip()


def _b64decode(data: bytes) -> bytes:
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


def _decode_words(text: str, defects: list[str] | None, what: str) -> str:
    """Decode RFC 2047 encoded words, leniently.

    Adjacent words in one charset are joined before decoding (a character split
    across words survives); broken base64 padding is repaired; wrong or unknown
    charset labels are repaired by :func:`decode_bytes`.
    """
    if "=?" not in text:
        return text
    out: list[str] = []
    pending_charset: str | None = None
    pending = bytearray()
    position = 0

    def flush() -> None:
        nonlocal pending_charset
        if pending_charset is None:
            return
        decoded = decode_bytes(bytes(pending), pending_charset)
        if decoded.repair and defects is not None:
            defects.append(f"{what}: encoded word {decoded.repair}")
        out.append(decoded.text)
        pending_charset = None
        pending.clear()

    for match in _ENCODED_WORD.finditer(text):
        between = text[position : match.start()]
        if pending_charset is None or between.strip():
            flush()
            out.append(between)
        charset, encoding, payload = match.groups()
        if encoding in "bB":
            data = _b64decode(payload.encode("ascii", "ignore"))
        else:
            data = binascii.a2b_qp(payload.encode("utf-8", "surrogateescape"), header=True)
        charset = charset.split("*", 1)[0].lower()
        if pending_charset is not None and charset != pending_charset:
            flush()
        pending_charset = charset
        pending.extend(data)
        position = match.end()
    flush()
    out.append(text[position:])
    return "".join(out)


def _header_text(value: str, defects: list[str] | None, what: str, hint: str | None = None) -> str:
    """A raw header value with raw 8-bit bytes repaired and folding removed (words not decoded).

    Raw 8-bit bytes (not allowed before RFC 6532, common anyway) are taken as UTF-8
    when they are, else in ``hint`` (the charset of the message's text) when that
    fits, else detected.
    """
    if not value.isascii():
        raw = _raw_bytes(value)
        decoded = decode_bytes(raw, hint)
        if defects is not None and decoded.codec != "utf-8":
            defects.append(f"{what}: raw 8-bit bytes decoded as {decoded.codec}")
        value = decoded.text
    return _UNFOLD.sub("", value)


def decode_header_text(
    value: str, defects: list[str] | None = None, what: str = "header", hint: str | None = None
) -> str:
    """A header value as readable text: 8-bit bytes repaired, encoded words decoded."""
    return _decode_words(_header_text(value, defects, what, hint), defects, what)


def _unquote(value: str) -> str:
    if len(value) >= 1 and value[0] == '"':
        value = value[1:-1] if len(value) >= 2 and value[-1] == '"' else value[1:]
        value = value.replace('\\"', '"').replace("\\\\", "\\")
    return value


def _parse_params(raw: str | None) -> tuple[str, dict[str, str]]:
    """The main value (lowercased) and the parameters of a Content-* header, leniently."""
    if not raw:
        return "", {}
    value = _UNFOLD.sub(" ", raw)
    main = _MAIN_VALUE.match(value)
    assert main is not None  # the pattern matches any string
    params: dict[str, str] = {}
    for match in _PARAM.finditer(value, main.end()):
        name = match.group(1).lower()
        if name not in params:
            params[name] = _unquote(match.group(2).strip())
    return main.group(1).strip().strip('"').lower(), params


def _rfc2231(params: dict[str, str], name: str) -> tuple[bytes, str | None] | None:
    """The bytes and charset of an RFC 2231 extended or continued parameter."""
    single = params.get(f"{name}*")
    if single is not None:
        parts = single.split("'", 2)
        if len(parts) == 3:
            return unquote_to_bytes(parts[2]), parts[0] or None
        return unquote_to_bytes(single), None
    sections: list[tuple[int, bool, str]] = []
    prefix = f"{name}*"
    for key, value in params.items():
        if key.startswith(prefix):
            match = _RFC2231_SECTION.fullmatch(key[len(name) :])
            if match:
                sections.append((int(match.group(1)), bool(match.group(2)), value))
    if not sections:
        return None
    sections.sort()
    charset: str | None = None
    data = bytearray()
    for index, (_, extended, value) in enumerate(sections):
        if extended:
            if index == 0 and value.count("'") >= 2:
                charset, _, value = value.split("'", 2)
            data.extend(unquote_to_bytes(value))
        else:
            data.extend(_raw_bytes(value))
    return bytes(data), charset or None


def _param_text(
    params: dict[str, str], name: str, defects: list[str], hint: str | None = None
) -> str | None:
    extended = _rfc2231(params, name)
    if extended is not None:
        data, charset = extended
        decoded = decode_bytes(data, charset)
        if decoded.repair:
            defects.append(f"{name} parameter: {decoded.repair}")
        return _decode_words(decoded.text, defects, name)
    value = params.get(name)
    if value is None:
        return None
    return decode_header_text(value, defects, name, hint)


def _first_id(value: str | None) -> str | None:
    if not value:
        return None
    match = _MESSAGE_ID.search(value)
    if match:
        return match.group(1)
    token = value.strip().strip("<>").strip()
    if token and "@" in token and not any(c.isspace() for c in token) and len(token) < 1000:
        return token
    return None


def _all_ids(values: list[str]) -> list[str]:
    ids: list[str] = []
    for value in values:
        found = _MESSAGE_ID.findall(value)
        if not found:
            found = [t.strip("<>,") for t in value.split() if "@" in t]
        for item in found:
            if item and item not in ids:
                ids.append(item)
    return ids


def _addresses(
    value: str | None, defects: list[str], what: str, hint: str | None = None
) -> list[tuple[str, str]]:
    """(display name, lowercased addr-spec) pairs; names decoded, invalid entries dropped."""
    if not value:
        return []
    text = _header_text(value, defects, what, hint)
    pairs: list[tuple[str, str]] = []
    try:
        parsed = getaddresses([text])
    except Exception:  # the address parser has raised on odd input in some Python versions
        parsed = []
    for name, address in parsed:
        address = address.strip().strip("<>").strip()
        if not _ADDRESS.fullmatch(address):
            continue
        pairs.append((_collapse(_decode_words(name, defects, what)).strip("\"' "), address.lower()))
    if not pairs:
        for match in _ADDRESS.finditer(text):
            pairs.append(("", match.group(0).strip(".").lower()))
    return pairs


def _address_list(
    value: str | None, defects: list[str], what: str, hint: str | None = None
) -> list[str]:
    seen: list[str] = []
    for _, address in _addresses(value, defects, what, hint):
        if address not in seen:
            seen.append(address)
    return seen


def _date(value: str | None, defects: list[str]) -> datetime | None:
    if not value:
        return None
    text = _collapse(_header_text(value, None, "date"))
    try:
        parsed = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        defects.append(f"unparseable date: {text[:80]}")
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        parsed = parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        defects.append(f"unparseable date: {text[:80]}")
        return None
    if not 1900 <= parsed.year <= 2200:
        defects.append(f"implausible date: {text[:80]}")
        return None
    return parsed


def _first_headers(message: Message) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in message.raw_items():
        key = name.strip().lower()
        if key not in headers:
            headers[key] = value if isinstance(value, str) else str(value)
    return headers


# ---------------------------------------------------------------- bodies


def _transfer_encoding(value: str | None, defects: list[str]) -> str:
    if not value:
        return "7bit"
    token = _collapse(value).strip("\"'").lower().split(";", 1)[0].strip()
    if token in _TRANSFER_ENCODINGS:
        return _TRANSFER_ENCODINGS[token]
    if token.startswith("quoted"):
        return "quoted-printable"
    if token.startswith("base64"):
        return "base64"
    defects.append(f"unknown transfer encoding {token[:40]!r}, taken as 8bit")
    return "8bit"


def _uudecode(data: bytes) -> bytes:
    out = bytearray()
    started = False
    for line in data.splitlines():
        if not started:
            started = bool(_UU_BEGIN.match(line.strip()))
            continue
        stripped = line.strip()
        if stripped == b"end":
            break
        if not stripped:
            continue
        try:
            out.extend(binascii.a2b_uu(line))
        except binascii.Error:
            # Some encoders pad lines wrongly; decode the length the line announces.
            length = (((line[0] - 32) & 63) * 4 + 5) // 3
            try:
                out.extend(binascii.a2b_uu(line[:length]))
            except binascii.Error:
                break
    return bytes(out) if started else data


def _encoded_payload(part: Message) -> bytes:
    """The body bytes exactly as they came, before any transfer decoding.

    ``get_payload()`` would decode 8-bit bytes with the declared charset and replace
    what does not fit, which loses exactly the mislabelled text this module repairs;
    the parser keeps the original bytes surrogate-escaped in the payload string.
    """
    payload = getattr(part, "_payload", None)
    if isinstance(payload, list):  # pragma: no cover - callers pass leaves
        return b""
    if isinstance(payload, bytes):
        return payload
    return _raw_bytes(str(payload or ""))


def _decode_transfer(data: bytes, encoding: str) -> bytes:
    if encoding == "base64":
        return _b64decode(data)
    if encoding == "quoted-printable":
        return binascii.a2b_qp(data)
    if encoding == "uuencode":
        return _uudecode(data)
    return data


def _normalize_newlines(text: str) -> str:
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "\x00" in text:
        text = text.replace("\x00", "")
    return text


def _unflow(text: str, delsp: bool) -> str:
    """Undo RFC 3676 format=flowed soft line breaks, keeping quote depth."""
    out: list[str] = []
    buffer: str | None = None
    buffer_depth = 0

    def emit(depth: int, content: str) -> None:
        out.append(f"{'>' * depth} {content}" if depth else content)

    for line in text.split("\n"):
        depth = len(line) - len(line.lstrip(">"))
        content = line[depth:]
        if content.startswith(" "):
            content = content[1:]
        soft = content.endswith(" ") and content != "-- "
        if soft and delsp:
            content = content[:-1]
        if buffer is not None and buffer_depth == depth:
            buffer += content
        else:
            if buffer is not None:
                emit(buffer_depth, buffer)
            buffer, buffer_depth = content, depth
        if not soft:
            emit(buffer_depth, buffer)
            buffer = None
    if buffer is not None:
        emit(buffer_depth, buffer)
    return "\n".join(out)


# ---------------------------------------------------------------- HTML


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_ALLOWED_TAGS = _words(
    "a abbr b blockquote br caption center cite code col colgroup dd del div dl dt em h1 h2 h3"
    " h4 h5 h6 hr i img ins kbd li ol p pre q s small span strike strong sub sup table tbody td"
    " tfoot th thead tr tt u ul"
)
_SANITIZER = nh3.Cleaner(
    tags=set(_ALLOWED_TAGS),
    clean_content_tags={"script", "style", "title", "noscript", "template"},
    attributes={
        "*": {"dir", "lang", "title"},
        "a": {"href"},
        "img": {"src", "alt", "width", "height"},
        "td": {"colspan", "rowspan", "align", "valign"},
        "th": {"colspan", "rowspan", "align", "valign"},
        "ol": {"start"},
    },
    url_schemes={"http", "https", "mailto", "tel", "cid"},
    attribute_filter=lambda tag, attribute, value: _filter_attribute(tag, attribute, value),
    link_rel="noopener noreferrer nofollow",
    strip_comments=True,
)


def _filter_attribute(tag: str, attribute: str, value: str) -> str | None:
    if attribute == "src" and tag == "img":
        return value if value.lower().startswith(("cid:", "https:")) else None
    if attribute == "href" and value[:4].lower() == "cid:":
        return None
    return value


def sanitize_html(html: str) -> str:
    """Safe HTML: basic formatting, links, images from cid: and https: only."""
    return _SANITIZER.clean(html)


_BLOCK_TAGS = _words(
    "address article aside center dd details dialog div dl dt fieldset figcaption figure footer"
    " form header li main nav section summary tr caption ul ol table tbody thead tfoot"
)
_PARAGRAPH_TAGS = frozenset({"p", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "hr"})
_SKIPPED_TAGS = frozenset(
    {"script", "style", "head", "title", "noscript", "template", "svg", "object", "xml"}
)
_VOID_TAGS = frozenset(
    {"br", "img", "hr", "meta", "link", "input", "wbr", "col", "area", "base", "source"}
)
_TAGS = re.compile(r"<[^>]*>")


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[tuple[int, str]] = []
        self.current: list[str] = []
        self.current_depth = 0
        self.depth = 0
        self.pending = 0
        self.pre = 0
        self.skipping: list[str] = []
        self.links: list[tuple[str, list[str]]] = []

    def _end_line(self) -> None:
        self.lines.append((self.current_depth, "".join(self.current).rstrip()))
        self.current = []
        self.current_depth = self.depth

    def _break(self, count: int) -> None:
        self.pending = max(self.pending, count)

    def _flush_breaks(self) -> None:
        if self.current:
            self._end_line()
            for _ in range(self.pending - 1):
                self.lines.append((self.depth, ""))
        elif self.lines:
            for _ in range(self.pending - 1):
                self.lines.append((self.depth, ""))
        self.pending = 0

    def _write(self, text: str) -> None:
        if not text:
            return
        if self.pending:
            self._flush_breaks()
        if not self.current:
            self.current_depth = self.depth
            if not self.pre:
                text = text.lstrip(" ")
                if not text:
                    return
        elif not self.pre and text.startswith(" ") and self.current[-1].endswith(" "):
            text = text[1:]
        self.current.append(text)
        for _, buffer in self.links:
            buffer.append(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body":
            self.skipping = [t for t in self.skipping if t != "head"]
            return
        if self.skipping:
            if tag in _SKIPPED_TAGS and tag not in _VOID_TAGS:
                self.skipping.append(tag)
            return
        if tag in _SKIPPED_TAGS:
            self.skipping.append(tag)
        elif tag == "br":
            if self.pending:
                self._flush_breaks()
            self._end_line()
        elif tag == "blockquote":
            self._break(1)
            self.depth += 1
        elif tag in _PARAGRAPH_TAGS:
            self._break(2)
            if tag == "pre":
                self.pre += 1
        elif tag in _BLOCK_TAGS:
            self._break(1)
            if tag == "li":
                self._write("- ")
        elif tag in ("td", "th"):
            if self.current and not self.current[-1].endswith(" "):
                self.current.append(" ")
        elif tag == "a":
            href = next((value for name, value in attrs if name == "href" and value), "")
            self.links.append((href.strip(), []))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if self.skipping:
            if tag == self.skipping[-1]:
                self.skipping.pop()
            elif tag in self.skipping:
                while self.skipping and self.skipping.pop() != tag:
                    pass
            return
        if tag == "blockquote":
            self._break(1)
            if self.pending:
                self._flush_breaks()
            self.depth = max(0, self.depth - 1)
            self.current_depth = self.depth
        elif tag in _PARAGRAPH_TAGS:
            self._break(2)
            if tag == "pre":
                self.pre = max(0, self.pre - 1)
        elif tag in _BLOCK_TAGS:
            self._break(1)
        elif tag == "a" and self.links:
            href, buffer = self.links.pop()
            shown = _link_suffix(href, "".join(buffer))
            if shown:
                self._write(shown)

    def handle_data(self, data: str) -> None:
        if self.skipping:
            return
        if self.pre:
            for index, piece in enumerate(data.replace("\r\n", "\n").split("\n")):
                if index:
                    self._end_line()
                self._write(piece.replace("\xa0", " "))
            return
        self._write(_WHITESPACE.sub(" ", data))

    def text(self) -> str:
        if self.current:
            self._end_line()
        out: list[str] = []
        for depth, line in self.lines:
            if depth:
                out.append(f"{'>' * depth} {line}" if line else ">" * depth)
            else:
                out.append(line)
        return "\n".join(out)


def _link_suffix(href: str, text: str) -> str:
    text = text.strip()
    if not href or not text or href.startswith("#"):
        return ""
    lowered = href.lower()
    if lowered.startswith(("javascript:", "cid:", "data:")):
        return ""
    if lowered.startswith("mailto:"):
        address = href[7:].split("?", 1)[0]
        return "" if address.lower() in text.lower() else f" ({address})"
    if href in text or href.rstrip("/") == text.rstrip("/"):
        return ""
    return f" ({href})"


_BLANK_RUNS = re.compile(r"\n(?:[ \t]*\n){2,}")


def html_to_text(html: str) -> str:
    """Readable text from HTML: blocks on their own lines, links as "text (url)",
    quoted blocks prefixed with ">", entities decoded, scripts and styles dropped."""
    extractor = _TextExtractor()
    try:
        extractor.feed(html)
        extractor.close()
        text = extractor.text()
    except Exception:  # HTMLParser is lenient; this is the last resort for odd input
        text = _WHITESPACE.sub(" ", _TAGS.sub(" ", html))
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return _BLANK_RUNS.sub("\n\n", text).strip("\n")


# ---------------------------------------------------------------- attachments

_UNSAFE_FILENAME = re.compile(r"[\x00-\x1f\x7f<>:\"|?*\u202a-\u202e\u2066-\u2069]")
_EXTENSIONS = {
    "application/octet-stream": ".bin",
    "application/pdf": ".pdf",
    "image/jpeg": ".jpg",
    "image/jpg": ".jpg",
    "image/pjpeg": ".jpg",
    "image/png": ".png",
    "image/gif": ".gif",
    "text/plain": ".txt",
    "text/html": ".html",
    "text/calendar": ".ics",
    "message/rfc822": ".eml",
    "message/global": ".eml",
}
_MIME_TYPES: mimetypes.MimeTypes | None = None


def _extension(content_type: str) -> str:
    global _MIME_TYPES
    known = _EXTENSIONS.get(content_type)
    if known:
        return known
    if _MIME_TYPES is None:
        _MIME_TYPES = mimetypes.MimeTypes()  # the built-in table only, not the machine's
    return _MIME_TYPES.guess_extension(content_type) or ".bin"


def _safe_filename(name: str | None, content_type: str, number: int) -> str:
    if name:
        name = name.replace("\\", "/").rsplit("/", 1)[-1]
        name = _collapse(_UNSAFE_FILENAME.sub("_", name)).strip(" .")
        if len(name) > 200:
            stem, dot, extension = name.rpartition(".")
            if dot and 0 < len(extension) <= 10:
                name = f"{stem[: 199 - len(extension)]}.{extension}"
            else:
                name = name[:200]
    return name or f"attachment-{number}{_extension(content_type)}"


# ---------------------------------------------------------------- the walk


@dataclass
class _Walk:
    max_bytes: int
    hint: str | None = None  # the charset of the message's text, for raw 8-bit headers
    defects: list[str] = field(default_factory=list)
    attachments: list[ParsedAttachment] = field(default_factory=list)
    skipped: list[SkippedPart] = field(default_factory=list)
    dsn_blocks: list[dict[str, str]] = field(default_factory=list)
    returned_ids: list[str] = field(default_factory=list)
    has_dsn: bool = False
    has_mdn: bool = False

    def attach(
        self, name: str | None, content_type: str, data: bytes, content_id: str | None
    ) -> None:
        number = len(self.attachments) + 1
        filename = _safe_filename(name, content_type, number)
        size = len(data)
        truncated = None
        if size > self.max_bytes:
            truncated = f"{size} bytes, over the {self.max_bytes}-byte attachment limit"
            data = b""
        self.attachments.append(
            ParsedAttachment(
                filename=filename,
                content_type=content_type,
                data=data,
                content_id=content_id,
                inline=False,
                truncated_reason=truncated,
                size=size,
            )
        )


_MEDIA_TYPE = re.compile(r"[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+")


def _content_type(headers: dict[str, str], default: str = "text/plain") -> str:
    """The lowercased media type from the raw header, as the parser decides it.

    Read here rather than with ``get_content_type()``, which builds a parsed header
    object on every call; a missing or invalid type falls back like the parser does.
    """
    raw = headers.get("content-type")
    if raw is None:
        return default
    main, _ = _parse_params(raw)
    return main if _MEDIA_TYPE.fullmatch(main) else "text/plain"


def _note_defects(part: Message, content_type: str, walk: _Walk) -> None:
    for defect in getattr(part, "defects", ()):
        walk.defects.append(f"{type(defect).__name__} in {content_type}")


def _walk(
    part: Message,
    walk: _Walk,
    texts: list[str],
    htmls: list[str],
    depth: int = 0,
    default_type: str = "text/plain",
) -> None:
    headers = _first_headers(part)
    content_type = _content_type(headers, default_type)
    _note_defects(part, content_type, walk)
    if depth > MAX_DEPTH:
        walk.defects.append("MIME nesting too deep; deeper parts skipped")
        return
    try:
        _walk_part(part, headers, content_type, walk, texts, htmls, depth)
    except Exception as exc:  # one broken part must not lose the message
        walk.defects.append(f"{content_type} part skipped: {type(exc).__name__}: {exc}"[:200])


def _walk_part(
    part: Message,
    headers: dict[str, str],
    content_type: str,
    walk: _Walk,
    texts: list[str],
    htmls: list[str],
    depth: int,
) -> None:
    payload = getattr(part, "_payload", None)
    if isinstance(payload, list) and not content_type.startswith("message/"):
        # The parser found parts: walk them even if the type reads oddly here.
        children = [child for child in payload if isinstance(child, Message)]
        child_default = "message/rfc822" if content_type == "multipart/digest" else "text/plain"
        if content_type == "multipart/alternative":
            best_text: list[str] = []
            best_html: list[str] = []
            for child in children:
                child_texts: list[str] = []
                child_htmls: list[str] = []
                _walk(child, walk, child_texts, child_htmls, depth + 1, child_default)
                if any(t.strip() for t in child_texts):
                    best_text = child_texts
                if any(h.strip() for h in child_htmls):
                    best_html = child_htmls
            texts.extend(best_text)
            htmls.extend(best_html)
            return
        for child in children:
            _walk(child, walk, texts, htmls, depth + 1, child_default)
        return
    if content_type.startswith("multipart/"):
        repaired = _repair_multipart(part, content_type, headers, walk)
        if repaired is not None:
            _walk(repaired, walk, texts, htmls, depth + 1)
            return
        body = _decode_transfer(
            _encoded_payload(part),
            _transfer_encoding(headers.get("content-transfer-encoding"), walk.defects),
        )
        if body.strip():
            walk.defects.append(f"{content_type} without parts; its body taken as text")
            texts.append(_decode_text(body, None, walk, "text/plain"))
        return
    if content_type == "message/delivery-status":
        walk.has_dsn = True
        _delivery_status(part, headers, walk)
        return
    if content_type == "message/disposition-notification":
        walk.has_mdn = True
        return
    if content_type == "text/rfc822-headers":
        data = _decode_transfer(
            _encoded_payload(part),
            _transfer_encoding(headers.get("content-transfer-encoding"), walk.defects),
        )
        returned = _HEADER_PARSER.parsebytes(data.lstrip())
        message_id = _first_id(_first_headers(returned).get("message-id"))
        if message_id:
            walk.returned_ids.append(message_id)
        return
    if content_type.startswith("message/") and isinstance(payload, list):
        _message_part(part, content_type, headers, payload, walk)
        return
    disposition, disposition_params = _parse_params(headers.get("content-disposition"))
    _, type_params = _parse_params(headers.get("content-type"))
    filename = _param_text(disposition_params, "filename", walk.defects, walk.hint) or (
        _param_text(type_params, "name", walk.defects, walk.hint)
    )
    if content_type in _SIGNATURE_TYPES:
        # A signature verifies bytes the hub does not keep as they were; it is named,
        # so a manager knows the mail was signed, but not stored.
        name = _safe_filename(filename, content_type, len(walk.skipped) + 1)
        walk.skipped.append(SkippedPart(name, f"signature ({content_type}), not kept"))
        return
    is_attachment = disposition == "attachment" or (bool(filename) and disposition != "inline")
    encoding = _transfer_encoding(headers.get("content-transfer-encoding"), walk.defects)
    data = _decode_transfer(_encoded_payload(part), encoding)
    if not is_attachment and content_type in ("text/plain", "text/html"):
        charset = type_params.get("charset")
        if content_type == "text/html":
            if charset is None:
                found = _META_CHARSET.search(data[:4096])
                charset = found.group(1).decode("ascii") if found else None
            htmls.append(_decode_text(data, charset, walk, content_type))
        else:
            text = _decode_text(data, charset, walk, content_type)
            if type_params.get("format", "").lower() == "flowed":
                text = _unflow(text, type_params.get("delsp", "").lower() == "yes")
            texts.append(text)
        return
    if not is_attachment and content_type in _RENDERING_ALTERNATIVES:
        return
    if content_type.startswith("message/"):
        filename = _eml_name(filename, None)
    walk.attach(filename, content_type, data, _content_id(headers.get("content-id")))


def _decode_text(data: bytes, charset: str | None, walk: _Walk, what: str) -> str:
    decoded = decode_bytes(data, charset)
    if decoded.repair:
        walk.defects.append(f"{what}: {decoded.repair}")
    return _normalize_newlines(decoded.text)


def _content_id(value: str | None) -> str | None:
    if not value:
        return None
    cleaned = _collapse(_header_text(value, None, "content-id")).strip("\"' ").strip("<>").strip()
    return cleaned or None


def _repair_multipart(
    part: Message, content_type: str, headers: dict[str, str], walk: _Walk
) -> Message | None:
    """Re-parse a multipart whose boundary the parser did not find in the body."""
    body = getattr(part, "_payload", None)
    if not isinstance(body, str) or not body.strip():
        return None
    candidates: list[str] = []
    _, params = _parse_params(headers.get("content-type"))
    declared = params.get("boundary")
    if declared:
        candidates.append(declared.strip())
    found = _BOUNDARY_LINE.search(body)
    if found:
        candidates.append(found.group(1))
    for boundary in candidates:
        if not boundary or f"--{boundary}" not in body or '"' in boundary:
            continue
        source = (
            f'Content-Type: {content_type}; boundary="{boundary}"\r\n\r\n'.encode()
            + _raw_bytes(body)
        )
        repaired = _PARSER.parsebytes(source)
        if repaired.is_multipart():
            walk.defects.append(f"{content_type} boundary repaired")
            return repaired
    return None


def _flatten(message: Message) -> bytes:
    buffer = BytesIO()
    try:
        generator = BytesGenerator(buffer, mangle_from_=False, policy=_FLATTEN_POLICY)
        generator.flatten(cast(EmailMessage, message))
    except Exception:
        try:
            return message.as_bytes(policy=policy.compat32)
        except Exception:
            return b""
    return buffer.getvalue()


def _eml_name(filename: str | None, subject: str | None) -> str | None:
    name = filename or (subject[:100] if subject else None)
    if name and not name.lower().endswith(".eml"):
        name = f"{name}.eml"
    return name


def _message_part(
    part: Message,
    content_type: str,
    headers: dict[str, str],
    payload: Sequence[object],
    walk: _Walk,
) -> None:
    """A forwarded or returned message: kept whole as an .eml attachment."""
    inner = next((item for item in payload if isinstance(item, Message)), None)
    data = _flatten(inner) if inner is not None else b""
    encoding = _transfer_encoding(headers.get("content-transfer-encoding"), walk.defects)
    if encoding in ("base64", "quoted-printable", "uuencode") and inner is not None:
        # The parser read the encoded text as a message; decode and read it again.
        body = getattr(inner, "_payload", None) if not inner.keys() else None
        encoded = _raw_bytes(body) if isinstance(body, str) else data
        data = _decode_transfer(encoded, encoding)
        inner = _PARSER.parsebytes(data)
    inner_headers = _first_headers(inner) if inner is not None else {}
    message_id = _first_id(inner_headers.get("message-id"))
    if message_id:
        walk.returned_ids.append(message_id)
    subject = inner_headers.get("subject")
    _, disposition_params = _parse_params(headers.get("content-disposition"))
    _, type_params = _parse_params(headers.get("content-type"))
    filename = _param_text(disposition_params, "filename", walk.defects, walk.hint) or (
        _param_text(type_params, "name", walk.defects, walk.hint)
    )
    subject_text = _collapse(decode_header_text(subject, hint=walk.hint)) if subject else None
    name = _eml_name(filename, subject_text)
    walk.attach(name, content_type, data, _content_id(headers.get("content-id")))


def _delivery_status(part: Message, headers: dict[str, str], walk: _Walk) -> None:
    blocks = getattr(part, "_payload", None)
    encoding = _transfer_encoding(headers.get("content-transfer-encoding"), walk.defects)
    if isinstance(blocks, list) and encoding not in ("base64", "quoted-printable"):
        for block in blocks:
            if isinstance(block, Message):
                _add_dsn_block(_first_headers(block), walk)
        return
    if isinstance(blocks, list):
        data = b"\r\n\r\n".join(_flatten(block) for block in blocks if isinstance(block, Message))
    else:
        data = _encoded_payload(part)
    data = _decode_transfer(data, encoding)
    for chunk in re.split(rb"\r?\n[ \t]*\r?\n", data):
        if chunk.strip():
            _add_dsn_block(
                _first_headers(_HEADER_PARSER.parsebytes(chunk.strip() + b"\r\n\r\n")), walk
            )


def _add_dsn_block(fields: dict[str, str], walk: _Walk) -> None:
    block = {name: _collapse(decode_header_text(value)) for name, value in fields.items()}
    if block:
        walk.dsn_blocks.append(block)


_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")


def _bounce(walk: _Walk, top: dict[str, str]) -> Bounce | None:
    if not walk.has_dsn:
        return None
    recipients: list[str] = []
    chosen: dict[str, str] | None = None
    envelope_id: str | None = None
    reporting_mta: str | None = None
    for block in walk.dsn_blocks:
        envelope_id = envelope_id or block.get("original-envelope-id") or None
        reporting_mta = reporting_mta or block.get("reporting-mta", "").split(";")[-1].strip()
        recipient = block.get("final-recipient") or block.get("original-recipient")
        if not (recipient or "action" in block or "status" in block):
            continue
        if recipient:
            address = recipient.split(";", 1)[-1].strip().strip("<>").strip().lower()
            if address and address not in recipients:
                recipients.append(address)
        failed = block.get("action", "").lower().startswith("failed")
        if chosen is None or (failed and not chosen.get("action", "").lower().startswith("failed")):
            chosen = block
    action = status = diagnostic = None
    if chosen is not None:
        action = (chosen.get("action") or "").lower().split(" ", 1)[0] or None
        diagnostic_code = chosen.get("diagnostic-code")
        if diagnostic_code:
            kind, separator, rest = diagnostic_code.partition(";")
            diagnostic = (rest.strip() if separator and len(kind) < 20 else diagnostic_code) or None
        found = _STATUS.search(chosen.get("status") or "") or _STATUS.search(diagnostic or "")
        status = found.group(1) if found else None
    original = (
        (walk.returned_ids[0] if walk.returned_ids else None)
        or _first_id(top.get("x-original-message-id"))
        or (_first_id(envelope_id) or envelope_id)
    )
    return Bounce(
        original_message_id=original,
        recipients=recipients,
        action=action,
        status=status,
        diagnostic=diagnostic,
        permanent=action == "failed" or (status or "").startswith("5"),
        reporting_mta=reporting_mta.lower()
        if reporting_mta and _HOST.fullmatch(reporting_mta)
        else None,
    )


_DAEMON_NAME = re.compile(r"mailer[ -]?daemon|mail[ -]?daemon|postmaster", re.IGNORECASE)


def _from_daemon(top: dict[str, str], from_address: str | None) -> bool:
    """Sent by a mail system: a daemon's address, or a daemon's name over the null sender."""
    if from_address:
        return from_address.split("@", 1)[0] in _DAEMONS
    return bool(_DAEMON_NAME.search(top.get("from", "")))


def _auto_reason(
    top: dict[str, str],
    from_address: str | None,
    message_id: str | None,
    own_domains: frozenset[str],
    bounce: Bounce | None,
    read_receipt: bool,
) -> str | None:
    if message_id and own_domains and "@" in message_id:
        domain = message_id.rsplit("@", 1)[1].strip().rstrip(">").lower()
        if domain in {own.lower() for own in own_domains}:
            return "own message id"
    auto_submitted = top.get("auto-submitted")
    if auto_submitted is not None:
        token = re.split(r"[\s;(]", auto_submitted.strip().lower(), maxsplit=1)[0]
        if token and token != "no":
            return f"auto-submitted: {token}"
    for name in ("x-autoreply", "x-autorespond"):
        value = top.get(name)
        if value is not None and value.strip().lower() not in ("no", "false", "0"):
            return name
    precedence = (top.get("precedence") or "").strip().lower()
    if precedence in _BULK_PRECEDENCE:
        return f"precedence: {precedence}"
    if "list-id" in top:
        return "list-id"
    if "list-unsubscribe" in top:
        return "list-unsubscribe"
    suppress = top.get("x-auto-response-suppress")
    if suppress and _SUPPRESS_AUTO & set(re.split(r"[\s,;]+", suppress.strip().lower())):
        return "x-auto-response-suppress"
    if from_address:
        local = from_address.split("@", 1)[0]
        if local in _DAEMONS:
            return "mailer-daemon sender"
        if _NOREPLY.search(local):
            return "noreply sender"
    elif any(daemon in top.get("from", "").lower() for daemon in ("mailer-daemon", "postmaster")):
        return "mailer-daemon sender"  # "From: MAILER-DAEMON (Mail Delivery System)"
    if bounce is not None:
        return "delivery status notification"
    if read_receipt:
        return "read receipt"
    if top.get("return-path", "").strip() == "<>":
        return "null return-path"
    return None


_OBSOLETE_FIELD_NAME = re.compile(rb"^([!-9;-~]+)[ \t]+:", re.MULTILINE)
_HEADER_END = re.compile(rb"\r?\n\r?\n")


def _reparse_obsolete_headers(data: bytes) -> Message | None:
    """RFC 5322 obsolete syntax allows blanks before the colon ("From  : ..."); the
    parser does not, and then finds no header at all."""
    end = _HEADER_END.search(data)
    head, body = (data[: end.start()], data[end.start() :]) if end else (data, b"")
    fixed = _OBSOLETE_FIELD_NAME.sub(rb"\1:", head)
    if fixed == head:
        return None
    message = _PARSER.parsebytes(fixed + body)
    if message.keys():
        message.defects.append(errors.ObsoleteHeaderDefect("blanks before a header colon"))
        return message
    return None


def _charset_hint(message: Message) -> str | None:
    """The first charset declared for a text part, other than ASCII and Latin-1."""
    for part in message.walk():
        raw = _first_headers(part).get("content-type")
        if raw and "charset" in raw.lower():
            charset = _parse_params(raw)[1].get("charset", "").strip().lower()
            if charset and charset not in ("us-ascii", "ascii", "iso-8859-1", "latin1", "utf-8"):
                return charset
    return None


def _dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def parse_email(
    raw: bytes,
    *,
    max_attachment_bytes: int = DEFAULT_MAX_ATTACHMENT_BYTES,
    own_domains: frozenset[str] = frozenset(),
) -> ParsedEmail:
    """Parse one raw RFC 5322 message. Raises :class:`UnparseableEmail` only when
    the input is empty or has no header block at all."""
    data = bytes(raw).lstrip(b"\r\n\t ")
    if not data:
        raise UnparseableEmail("empty input")
    message: Message
    try:
        message = _PARSER.parsebytes(data)
    except Exception as exc:  # pragma: no cover - the feed parser does not raise on bytes
        raise UnparseableEmail(f"parser error: {type(exc).__name__}: {exc}") from exc
    if not message.keys():
        message = _reparse_obsolete_headers(data) or message
    if not message.keys():
        raise UnparseableEmail("no header block")
    top = _first_headers(message)
    hint = _charset_hint(message)
    walk = _Walk(max_bytes=max_attachment_bytes, hint=hint)
    defects = walk.defects

    subject = _collapse(decode_header_text(top.get("subject", ""), defects, "subject", hint))
    senders = _addresses(top.get("from"), defects, "from", hint)
    if not senders and top.get("sender"):
        senders = _addresses(top.get("sender"), defects, "sender", hint)
    from_name, from_address = senders[0] if senders else ("", None)
    reply_to = _address_list(top.get("reply-to"), defects, "reply-to", hint)
    message_id = _first_id(_header_text(top.get("message-id", ""), None, "message-id"))
    references = _all_ids(
        [_header_text(value, None, "references") for name, value in message.raw_items()
         if name.lower() == "references" and isinstance(value, str)]
    )  # fmt: skip

    texts: list[str] = []
    htmls: list[str] = []
    _walk(message, walk, texts, htmls)

    raw_html = "\n".join(h for h in htmls if h.strip()) or None
    body_texts = [t.strip("\n") for t in texts if t.strip()]
    if body_texts:
        text = "\n\n".join(body_texts)
    elif raw_html is not None:
        text = html_to_text(raw_html)
    else:
        text = ""
    text = "\n".join(line.rstrip() for line in text.split("\n")).strip("\n")
    html = sanitize_html(raw_html) if raw_html is not None else None
    if raw_html is not None:
        lowered = raw_html.lower()
        for attachment in walk.attachments:
            if attachment.content_id:
                attachment.inline = f"cid:{attachment.content_id.lower()}" in lowered

    bounce = _bounce(walk, top)
    report = bounce is not None or _from_daemon(top, from_address)
    kept = {
        name: _collapse(decode_header_text(top[name], None, name, hint))
        for name in KEPT_HEADERS
        if name in top
    }
    return ParsedEmail(
        message_id=message_id,
        in_reply_to=_all_ids([_header_text(top.get("in-reply-to", ""), None, "in-reply-to")]),
        references=references,
        subject=subject,
        from_address=from_address,
        from_name=from_name or None,
        reply_to=reply_to[0] if reply_to else None,
        to=_address_list(top.get("to"), defects, "to", hint),
        cc=_address_list(top.get("cc"), defects, "cc", hint),
        date=_date(top.get("date"), defects),
        text=text,
        html=html,
        # A delivery report's "Date:/From:/To:" lines are its substance, not a quote.
        display_text=text if report else strip_quotes(text),
        attachments=walk.attachments,
        auto_reason=_auto_reason(top, from_address, message_id, own_domains, bounce, walk.has_mdn),
        bounce=bounce,
        defects=_dedupe(defects),
        headers=kept,
        read_receipt=walk.has_mdn,
        skipped=walk.skipped,
        delivery_report=report,
    )
