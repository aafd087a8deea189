"""Delivery status notifications (RFC 3464) and other reports from mail systems:
the bounce, the message it returns, and whether the mail is a delivery report."""

from __future__ import annotations

import re
from email.message import Message

from channels.email.parse.attachments import flatten
from channels.email.parse.body import decode_transfer, encoded_payload, transfer_encoding
from channels.email.parse.decoding import collapse
from channels.email.parse.headers import HEADER_PARSER, decode_header_text, first_headers, first_id
from channels.email.parse.model import Bounce, Mail

_STATUS = re.compile(r"\b([245]\.\d{1,3}\.\d{1,3})\b")
DAEMONS = frozenset({"mailer-daemon", "mailerdaemon", "mail-daemon", "maildaemon", "postmaster"})


def delivery_status(part: Message, headers: dict[str, str], mail: Mail) -> None:
    """A message/delivery-status part: its per-message and per-recipient blocks, kept for
    the bounce filter."""
    blocks = getattr(part, "_payload", None)
    encoding = transfer_encoding(headers.get("content-transfer-encoding"), mail.defects)
    if isinstance(blocks, list) and encoding not in ("base64", "quoted-printable"):
        for block in blocks:
            if isinstance(block, Message):
                _add_dsn_block(first_headers(block), mail)
        return
    if isinstance(blocks, list):
        data = b"\r\n\r\n".join(flatten(block) for block in blocks if isinstance(block, Message))
    else:
        data = encoded_payload(part)
    data = decode_transfer(data, encoding)
    for chunk in re.split(rb"\r?\n[ \t]*\r?\n", data):
        if chunk.strip():
            _add_dsn_block(
                first_headers(HEADER_PARSER.parsebytes(chunk.strip() + b"\r\n\r\n")), mail
            )


def _add_dsn_block(fields: dict[str, str], mail: Mail) -> None:
    block = {name: collapse(decode_header_text(value)) for name, value in fields.items()}
    if block:
        mail.dsn_blocks.append(block)


_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")


def _bounce(mail: Mail, top: dict[str, str]) -> Bounce | None:
    if not mail.has_dsn:
        return None
    recipients: list[str] = []
    chosen: dict[str, str] | None = None
    envelope_id: str | None = None
    reporting_mta: str | None = None
    for block in mail.dsn_blocks:
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
        (mail.returned_ids[0] if mail.returned_ids else None)
        or first_id(top.get("x-original-message-id"))
        or (first_id(envelope_id) or envelope_id)
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
        return from_address.split("@", 1)[0] in DAEMONS
    return bool(_DAEMON_NAME.search(top.get("from", "")))


def read_bounce(mail: Mail) -> None:
    """Filter: the bounce from the DSN parts the walk found, and whether the mail is a
    delivery report (a DSN, or mail from a mailer daemon: older bounces have no DSN)."""
    mail.bounce = _bounce(mail, mail.top)
    mail.delivery_report = mail.bounce is not None or _from_daemon(mail.top, mail.from_address)
