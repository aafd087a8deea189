"""Header values: encoded words, raw 8-bit bytes, Content-* parameters (RFC 2231),
message ids, addresses and dates, and the two filters that read the top-level
headers into the mail."""

from __future__ import annotations

import binascii
import functools
import re
from datetime import UTC, datetime
from email import errors
from email.message import Message
from email.parser import BytesHeaderParser, BytesParser
from email.policy import EmailPolicy
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any
from urllib.parse import unquote_to_bytes

from channels.email.charsets import decode_bytes
from channels.email.parse.decoding import b64decode, collapse, raw_bytes
from channels.email.parse.model import Mail

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
PARSER = BytesParser(policy=_MEMO_POLICY)
HEADER_PARSER = BytesHeaderParser(policy=_MEMO_POLICY)
_UNFOLD = re.compile(r"\r\n|\r|\n")
_ENCODED_WORD = re.compile(r"=\?([^?\s]+?)\?([bBqQ])\?([^?]*)\?=")
_MESSAGE_ID = re.compile(r"<\s*([^<>\s]+?)\s*>")
_ADDRESS = re.compile(r"[^\s@<>,;:\"()\[\]\\]+@[^\s@<>,;:\"()\[\]\\]+")
_MAIN_VALUE = re.compile(r"\s*([^;\s]*)")
_PARAM = re.compile(
    r"""[;\s]\s*([A-Za-z0-9_.*'%!#$&+^`{|}~-]+)\s*=\s*"""
    r"""("(?:[^"\\]|\\.)*(?:"|$)|[^;\s"]+(?:[ \t]+[^;\s="]+)*)"""
)
_RFC2231_SECTION = re.compile(r"\*(\d{1,3})(\*?)")


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
            data = b64decode(payload.encode("ascii", "ignore"))
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
        raw = raw_bytes(value)
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


def parse_params(raw: str | None) -> tuple[str, dict[str, str]]:
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
            data.extend(raw_bytes(value))
    return bytes(data), charset or None


def param_text(
    params: dict[str, str], name: str, defects: list[str], hint: str | None = None
) -> str | None:
    """A parameter's value as text (a file name, say): RFC 2231 sections and charsets,
    encoded words and raw 8-bit bytes all decoded."""
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


def first_id(value: str | None) -> str | None:
    """The first message id in a header value, without angle brackets."""
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
        pairs.append((collapse(_decode_words(name, defects, what)).strip("\"' "), address.lower()))
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
    text = collapse(_header_text(value, None, "date"))
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


def first_headers(message: Message) -> dict[str, str]:
    """The first value of each header, by lowercased name, raw (nothing decoded)."""
    headers: dict[str, str] = {}
    for name, value in message.raw_items():
        key = name.strip().lower()
        if key not in headers:
            headers[key] = value if isinstance(value, str) else str(value)
    return headers


def content_id(value: str | None) -> str | None:
    """A Content-ID without its angle brackets, or None."""
    if not value:
        return None
    cleaned = collapse(_header_text(value, None, "content-id")).strip("\"' ").strip("<>").strip()
    return cleaned or None


_OBSOLETE_FIELD_NAME = re.compile(rb"^([!-9;-~]+)[ \t]+:", re.MULTILINE)
_HEADER_END = re.compile(rb"\r?\n\r?\n")


def reparse_obsolete_headers(data: bytes) -> Message | None:
    """RFC 5322 obsolete syntax allows blanks before the colon ("From  : ..."); the
    parser does not, and then finds no header at all."""
    end = _HEADER_END.search(data)
    head, body = (data[: end.start()], data[end.start() :]) if end else (data, b"")
    fixed = _OBSOLETE_FIELD_NAME.sub(rb"\1:", head)
    if fixed == head:
        return None
    message = PARSER.parsebytes(fixed + body)
    if message.keys():
        message.defects.append(errors.ObsoleteHeaderDefect("blanks before a header colon"))
        return message
    return None


def charset_hint(message: Message) -> str | None:
    """The first charset declared for a text part, other than ASCII and Latin-1."""
    for part in message.walk():
        raw = first_headers(part).get("content-type")
        if raw and "charset" in raw.lower():
            charset = parse_params(raw)[1].get("charset", "").strip().lower()
            if charset and charset not in ("us-ascii", "ascii", "iso-8859-1", "latin1", "utf-8"):
                return charset
    return None


def read_sender(mail: Mail) -> None:
    """Filter: the subject, who wrote (From, else Sender; Reply-To), Message-ID and
    References."""
    top, defects, hint = mail.top, mail.defects, mail.hint
    mail.subject = collapse(decode_header_text(top.get("subject", ""), defects, "subject", hint))
    senders = _addresses(top.get("from"), defects, "from", hint)
    if not senders and top.get("sender"):
        senders = _addresses(top.get("sender"), defects, "sender", hint)
    mail.from_name, mail.from_address = senders[0] if senders else ("", None)
    reply_to = _address_list(top.get("reply-to"), defects, "reply-to", hint)
    mail.reply_to = reply_to[0] if reply_to else None
    mail.message_id = first_id(_header_text(top.get("message-id", ""), None, "message-id"))
    mail.references = _all_ids(
        [_header_text(value, None, "references") for name, value in mail.message.raw_items()
         if name.lower() == "references" and isinstance(value, str)]
    )  # fmt: skip


def read_addressing(mail: Mail) -> None:
    """Filter: the headers kept with the message, In-Reply-To, To, Cc and Date."""
    top, defects, hint = mail.top, mail.defects, mail.hint
    mail.headers = {
        name: collapse(decode_header_text(top[name], None, name, hint))
        for name in KEPT_HEADERS
        if name in top
    }
    mail.in_reply_to = _all_ids([_header_text(top.get("in-reply-to", ""), None, "in-reply-to")])
    mail.to = _address_list(top.get("to"), defects, "to", hint)
    mail.cc = _address_list(top.get("cc"), defects, "cc", hint)
    mail.date = _date(top.get("date"), defects)
