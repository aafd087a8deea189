"""What parsing gives: the parsed email and its parts, and the mail being parsed, the
state that the filters of :mod:`channels.email.parse` read and fill in turn."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from email.message import Message

DEFAULT_MAX_ATTACHMENT_BYTES = 25 * 1024 * 1024


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


@dataclass
class Mail:
    """One message being parsed: its structure and top-level headers, and what the
    filters found so far. Each filter reads what the ones before it wrote."""

    message: Message
    top: dict[str, str]  # the first value of each header, lowercased names, raw
    max_bytes: int
    own_domains: frozenset[str] = frozenset()
    hint: str | None = None  # the charset of the message's text, for raw 8-bit headers
    defects: list[str] = field(default_factory=list)
    # what the walk over the MIME parts collects
    texts: list[str] = field(default_factory=list)
    htmls: list[str] = field(default_factory=list)
    attachments: list[ParsedAttachment] = field(default_factory=list)
    skipped: list[SkippedPart] = field(default_factory=list)
    dsn_blocks: list[dict[str, str]] = field(default_factory=list)
    returned_ids: list[str] = field(default_factory=list)
    has_dsn: bool = False
    has_mdn: bool = False
    # what becomes the ParsedEmail
    message_id: str | None = None
    in_reply_to: list[str] = field(default_factory=list)
    references: list[str] = field(default_factory=list)
    subject: str = ""
    from_address: str | None = None
    from_name: str = ""
    reply_to: str | None = None
    to: list[str] = field(default_factory=list)
    cc: list[str] = field(default_factory=list)
    date: datetime | None = None
    text: str = ""
    html: str | None = None
    raw_html: str | None = None  # as it came, before sanitizing
    display_text: str = ""
    bounce: Bounce | None = None
    delivery_report: bool = False
    auto_reason: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def parsed(self) -> ParsedEmail:
        return ParsedEmail(
            message_id=self.message_id,
            in_reply_to=self.in_reply_to,
            references=self.references,
            subject=self.subject,
            from_address=self.from_address,
            from_name=self.from_name or None,
            reply_to=self.reply_to,
            to=self.to,
            cc=self.cc,
            date=self.date,
            text=self.text,
            html=self.html,
            display_text=self.display_text,
            attachments=self.attachments,
            auto_reason=self.auto_reason,
            bounce=self.bounce,
            defects=list(dict.fromkeys(self.defects)),
            headers=self.headers,
            read_receipt=self.has_mdn,
            skipped=self.skipped,
            delivery_report=self.delivery_report,
        )
