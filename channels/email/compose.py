"""Outbound mail: our Message-IDs with a conversation token, reply subjects, the MIME."""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate

# "Re:", "RE:", "Fwd:", "Ответ:", "Отв:", "AW:", "Re[2]:" ... before the subject proper.
_REPLY_PREFIX = re.compile(r"^\s*(?:(?:re|aw|sv|ответ|отв|fwd?|пересл)(?:\[\d+\])?\s*:\s*)+", re.I)
_TAG = re.compile(r"\[#(\d{1,18})\]")
_TOKEN = re.compile(r"^omnihub\.(\d{1,18})\.(\d{1,18})\.([0-9a-f]{16})@(.+)$")
MAX_REFERENCES = 20


def _signature(secret: str, conversation_id: int, message_id: int) -> str:
    mac = hmac.new(secret.encode(), f"{conversation_id}.{message_id}".encode(), hashlib.sha256)
    return mac.hexdigest()[:16]


def outbound_message_id(conversation_id: int, message_id: int, domain: str, secret: str) -> str:
    """Our Message-ID (without <>): it carries the conversation, signed so it can't be forged."""
    signature = _signature(secret, conversation_id, message_id)
    return f"omnihub.{conversation_id}.{message_id}.{signature}@{domain}"


def conversation_of_token(header: str, secret: str) -> int | None:
    """The conversation one of our Message-IDs names, if the signature holds."""
    match = _TOKEN.match(header)
    if match is None:
        return None
    conversation_id, message_id = int(match[1]), int(match[2])
    if not hmac.compare_digest(match[3], _signature(secret, conversation_id, message_id)):
        return None
    return conversation_id


def subject_tag(subject: str) -> int | None:
    """The request number of a "[#123]" tag in a subject."""
    match = _TAG.search(subject)
    return int(match[1]) if match else None


def reply_subject(subject: str | None, number: int | None) -> str:
    """ "Re: " once before the original subject, and the request tag once after it."""
    base = _REPLY_PREFIX.sub("", subject or "").strip()
    if number is not None and subject_tag(base) != number:
        base = f"{base} [#{number}]".strip()
    return f"Re: {base}" if base else f"[#{number}]" if number is not None else "Re:"


@dataclass(slots=True)
class OutgoingFile:
    filename: str
    content_type: str
    data: bytes


@dataclass(slots=True)
class Outgoing:
    from_address: str
    from_name: str
    to: str
    subject: str
    text: str
    message_id: str
    html: str | None = None
    in_reply_to: str | None = None
    references: list[str] = field(default_factory=list)
    files: list[OutgoingFile] = field(default_factory=list)
    # RFC 3834: mark our own automatic mail (acknowledgements) so other robots stay quiet.
    automatic: bool = False


def build(outgoing: Outgoing) -> EmailMessage:
    message = EmailMessage(policy=SMTP)
    message["From"] = Address(outgoing.from_name, addr_spec=outgoing.from_address)
    message["To"] = outgoing.to
    message["Reply-To"] = outgoing.from_address
    message["Subject"] = outgoing.subject
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = f"<{outgoing.message_id}>"
    if outgoing.in_reply_to:
        message["In-Reply-To"] = f"<{outgoing.in_reply_to}>"
    references = list(dict.fromkeys(outgoing.references))[-MAX_REFERENCES:]
    if references:
        # One header; the SMTP policy folds it at 78 characters between the ids.
        message["References"] = " ".join(f"<{ref}>" for ref in references)
    if outgoing.automatic:
        message["Auto-Submitted"] = "auto-replied"
        message["X-Auto-Response-Suppress"] = "All"
    message.set_content(outgoing.text, charset="utf-8")
    if outgoing.html:
        message.add_alternative(outgoing.html, subtype="html", charset="utf-8")
    for file in outgoing.files:
        maintype, _, subtype = file.content_type.partition("/")
        message.add_attachment(
            file.data,
            maintype=maintype or "application",
            subtype=subtype or "octet-stream",
            filename=file.filename,
        )
    return message
