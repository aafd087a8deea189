"""Attachments: safe file names, size limits, forwarded messages kept as .eml files,
and the filter that marks the images the HTML body shows inline."""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Sequence
from email import policy
from email.generator import BytesGenerator
from email.message import EmailMessage, Message
from io import BytesIO
from typing import cast

from channels.email.parse.body import decode_transfer, transfer_encoding
from channels.email.parse.decoding import collapse, raw_bytes
from channels.email.parse.headers import (
    PARSER,
    content_id,
    decode_header_text,
    first_headers,
    first_id,
    param_text,
    parse_params,
)
from channels.email.parse.model import Mail, ParsedAttachment

_FLATTEN_POLICY = policy.default.clone(refold_source="none", linesep="\r\n")
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


def safe_filename(name: str | None, content_type: str, number: int) -> str:
    """A file name safe to store and offer: no path, no control or bidi characters, at
    most 200 characters; made up from the type when there is none."""
    if name:
        name = name.replace("\\", "/").rsplit("/", 1)[-1]
        name = collapse(_UNSAFE_FILENAME.sub("_", name)).strip(" .")
        if len(name) > 200:
            stem, dot, extension = name.rpartition(".")
            if dot and 0 < len(extension) <= 10:
                name = f"{stem[: 199 - len(extension)]}.{extension}"
            else:
                name = name[:200]
    return name or f"attachment-{number}{_extension(content_type)}"


def attach(
    mail: Mail, name: str | None, content_type: str, data: bytes, content_id: str | None
) -> None:
    """Add an attachment under a safe name; over the size limit only its size is kept."""
    number = len(mail.attachments) + 1
    filename = safe_filename(name, content_type, number)
    size = len(data)
    truncated = None
    if size > mail.max_bytes:
        truncated = f"{size} bytes, over the {mail.max_bytes}-byte attachment limit"
        data = b""
    mail.attachments.append(
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


def mark_inline(mail: Mail) -> None:
    """Filter: an image is inline when the HTML body shows it by its cid: URL."""
    if mail.raw_html is None:
        return
    lowered = mail.raw_html.lower()
    for attachment in mail.attachments:
        if attachment.content_id:
            attachment.inline = f"cid:{attachment.content_id.lower()}" in lowered


def flatten(message: Message) -> bytes:
    """A message part as bytes again, as close to how it came as the library allows."""
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


def eml_name(filename: str | None, subject: str | None) -> str | None:
    """The name of a forwarded message's file: its own, else its subject, ending in .eml."""
    name = filename or (subject[:100] if subject else None)
    if name and not name.lower().endswith(".eml"):
        name = f"{name}.eml"
    return name


def message_part(
    part: Message,
    content_type: str,
    headers: dict[str, str],
    payload: Sequence[object],
    mail: Mail,
) -> None:
    """A forwarded or returned message: kept whole as an .eml attachment."""
    inner = next((item for item in payload if isinstance(item, Message)), None)
    data = flatten(inner) if inner is not None else b""
    encoding = transfer_encoding(headers.get("content-transfer-encoding"), mail.defects)
    if encoding in ("base64", "quoted-printable", "uuencode") and inner is not None:
        # The parser read the encoded text as a message; decode and read it again.
        body = getattr(inner, "_payload", None) if not inner.keys() else None
        encoded = raw_bytes(body) if isinstance(body, str) else data
        data = decode_transfer(encoded, encoding)
        inner = PARSER.parsebytes(data)
    inner_headers = first_headers(inner) if inner is not None else {}
    message_id = first_id(inner_headers.get("message-id"))
    if message_id:
        mail.returned_ids.append(message_id)
    subject = inner_headers.get("subject")
    _, disposition_params = parse_params(headers.get("content-disposition"))
    _, type_params = parse_params(headers.get("content-type"))
    filename = param_text(disposition_params, "filename", mail.defects, mail.hint) or (
        param_text(type_params, "name", mail.defects, mail.hint)
    )
    subject_text = collapse(decode_header_text(subject, hint=mail.hint)) if subject else None
    name = eml_name(filename, subject_text)
    attach(mail, name, content_type, data, content_id(headers.get("content-id")))
