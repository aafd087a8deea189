"""The walk over the MIME tree: which part is the text, the HTML, an attachment, a
delivery report or a read receipt; broken multiparts repaired on the way."""

from __future__ import annotations

import re
from email.message import Message

from channels.email.parse.attachments import attach, eml_name, message_part, safe_filename
from channels.email.parse.body import (
    decode_text,
    decode_transfer,
    encoded_payload,
    transfer_encoding,
    unflow,
)
from channels.email.parse.bounces import delivery_status
from channels.email.parse.decoding import raw_bytes
from channels.email.parse.headers import (
    HEADER_PARSER,
    PARSER,
    content_id,
    first_headers,
    first_id,
    param_text,
    parse_params,
)
from channels.email.parse.model import Mail, SkippedPart

MAX_DEPTH = 25
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
_MEDIA_TYPE = re.compile(r"[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+")


def _content_type(headers: dict[str, str], default: str = "text/plain") -> str:
    """The lowercased media type from the raw header, as the parser decides it.

    Read here rather than with ``get_content_type()``, which builds a parsed header
    object on every call; a missing or invalid type falls back like the parser does.
    """
    raw = headers.get("content-type")
    if raw is None:
        return default
    main, _ = parse_params(raw)
    return main if _MEDIA_TYPE.fullmatch(main) else "text/plain"


def _note_defects(part: Message, content_type: str, mail: Mail) -> None:
    for defect in getattr(part, "defects", ()):
        mail.defects.append(f"{type(defect).__name__} in {content_type}")


def _walk(
    part: Message,
    mail: Mail,
    texts: list[str],
    htmls: list[str],
    depth: int = 0,
    default_type: str = "text/plain",
) -> None:
    """One part and, below it, its children: bodies into ``texts`` and ``htmls``, the
    rest into the mail; a part that breaks is skipped with a defect."""
    headers = first_headers(part)
    content_type = _content_type(headers, default_type)
    _note_defects(part, content_type, mail)
    if depth > MAX_DEPTH:
        mail.defects.append("MIME nesting too deep; deeper parts skipped")
        return
    try:
        _read_part(part, headers, content_type, mail, texts, htmls, depth)
    except Exception as exc:  # one broken part must not lose the message
        mail.defects.append(f"{content_type} part skipped: {type(exc).__name__}: {exc}"[:200])


def _read_part(
    part: Message,
    headers: dict[str, str],
    content_type: str,
    mail: Mail,
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
                _walk(child, mail, child_texts, child_htmls, depth + 1, child_default)
                if any(t.strip() for t in child_texts):
                    best_text = child_texts
                if any(h.strip() for h in child_htmls):
                    best_html = child_htmls
            texts.extend(best_text)
            htmls.extend(best_html)
            return
        for child in children:
            _walk(child, mail, texts, htmls, depth + 1, child_default)
        return
    if content_type.startswith("multipart/"):
        repaired = _repair_multipart(part, content_type, headers, mail)
        if repaired is not None:
            _walk(repaired, mail, texts, htmls, depth + 1)
            return
        body = decode_transfer(
            encoded_payload(part),
            transfer_encoding(headers.get("content-transfer-encoding"), mail.defects),
        )
        if body.strip():
            mail.defects.append(f"{content_type} without parts; its body taken as text")
            texts.append(decode_text(body, None, mail, "text/plain"))
        return
    if content_type == "message/delivery-status":
        mail.has_dsn = True
        delivery_status(part, headers, mail)
        return
    if content_type == "message/disposition-notification":
        mail.has_mdn = True
        return
    if content_type == "text/rfc822-headers":
        data = decode_transfer(
            encoded_payload(part),
            transfer_encoding(headers.get("content-transfer-encoding"), mail.defects),
        )
        returned = HEADER_PARSER.parsebytes(data.lstrip())
        message_id = first_id(first_headers(returned).get("message-id"))
        if message_id:
            mail.returned_ids.append(message_id)
        return
    if content_type.startswith("message/") and isinstance(payload, list):
        message_part(part, content_type, headers, payload, mail)
        return
    disposition, disposition_params = parse_params(headers.get("content-disposition"))
    _, type_params = parse_params(headers.get("content-type"))
    filename = param_text(disposition_params, "filename", mail.defects, mail.hint) or (
        param_text(type_params, "name", mail.defects, mail.hint)
    )
    if content_type in _SIGNATURE_TYPES:
        # A signature verifies bytes the hub does not keep as they were; it is named,
        # so a manager knows the mail was signed, but not stored.
        name = safe_filename(filename, content_type, len(mail.skipped) + 1)
        mail.skipped.append(SkippedPart(name, f"signature ({content_type}), not kept"))
        return
    is_attachment = disposition == "attachment" or (bool(filename) and disposition != "inline")
    encoding = transfer_encoding(headers.get("content-transfer-encoding"), mail.defects)
    data = decode_transfer(encoded_payload(part), encoding)
    if not is_attachment and content_type in ("text/plain", "text/html"):
        charset = type_params.get("charset")
        if content_type == "text/html":
            if charset is None:
                found = _META_CHARSET.search(data[:4096])
                charset = found.group(1).decode("ascii") if found else None
            htmls.append(decode_text(data, charset, mail, content_type))
        else:
            text = decode_text(data, charset, mail, content_type)
            if type_params.get("format", "").lower() == "flowed":
                text = unflow(text, type_params.get("delsp", "").lower() == "yes")
            texts.append(text)
        return
    if not is_attachment and content_type in _RENDERING_ALTERNATIVES:
        return
    if content_type.startswith("message/"):
        filename = eml_name(filename, None)
    attach(mail, filename, content_type, data, content_id(headers.get("content-id")))


def _repair_multipart(
    part: Message, content_type: str, headers: dict[str, str], mail: Mail
) -> Message | None:
    """Re-parse a multipart whose boundary the parser did not find in the body."""
    body = getattr(part, "_payload", None)
    if not isinstance(body, str) or not body.strip():
        return None
    candidates: list[str] = []
    _, params = parse_params(headers.get("content-type"))
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
            + raw_bytes(body)
        )
        repaired = PARSER.parsebytes(source)
        if repaired.is_multipart():
            mail.defects.append(f"{content_type} boundary repaired")
            return repaired
    return None


def read_parts(mail: Mail) -> None:
    """Filter: walk the message's parts into the mail's texts, HTML, attachments and
    reports."""
    _walk(mail.message, mail, mail.texts, mail.htmls)
