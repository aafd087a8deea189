"""Text bodies: transfer encodings (base64, quoted-printable, uuencode, unknown
labels), charsets, newlines and format=flowed, and the filters that make the
message's text and the text a manager reads first."""

from __future__ import annotations

import binascii
import re
from email.message import Message

from channels.email.charsets import decode_bytes
from channels.email.parse.decoding import b64decode, collapse, raw_bytes
from channels.email.parse.html import html_to_text
from channels.email.parse.model import Mail
from channels.email.quotes import strip_quotes

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


def transfer_encoding(value: str | None, defects: list[str]) -> str:
    """The Content-Transfer-Encoding as one of the known names; a misspelt one repaired,
    an unknown one taken as 8bit (with a defect)."""
    if not value:
        return "7bit"
    token = collapse(value).strip("\"'").lower().split(";", 1)[0].strip()
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


def encoded_payload(part: Message) -> bytes:
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
    return raw_bytes(str(payload or ""))


def decode_transfer(data: bytes, encoding: str) -> bytes:
    """The body bytes with the transfer encoding undone (leniently)."""
    if encoding == "base64":
        return b64decode(data)
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


def unflow(text: str, delsp: bool) -> str:
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


def decode_text(data: bytes, charset: str | None, mail: Mail, what: str) -> str:
    """Body bytes as text in the declared charset, repaired when it is wrong, with
    newlines normalized."""
    decoded = decode_bytes(data, charset)
    if decoded.repair:
        mail.defects.append(f"{what}: {decoded.repair}")
    return _normalize_newlines(decoded.text)


def read_text(mail: Mail) -> None:
    """Filter: the message's text from its text parts, else from its HTML, with trailing
    blanks removed; the HTML parts joined for the filters after this one."""
    mail.raw_html = "\n".join(h for h in mail.htmls if h.strip()) or None
    body_texts = [t.strip("\n") for t in mail.texts if t.strip()]
    if body_texts:
        text = "\n\n".join(body_texts)
    elif mail.raw_html is not None:
        text = html_to_text(mail.raw_html)
    else:
        text = ""
    mail.text = "\n".join(line.rstrip() for line in text.split("\n")).strip("\n")


def strip_quoted(mail: Mail) -> None:
    """Filter: the text a manager reads first, without the quoted reply and the signature."""
    # A delivery report's "Date:/From:/To:" lines are its substance, not a quote.
    mail.display_text = mail.text if mail.delivery_report else strip_quotes(mail.text)
