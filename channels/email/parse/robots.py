"""Mail that no person wrote: auto-replies, lists, bulk, no-reply senders, loops of
the hub's own messages; answering them would start a mail loop."""

from __future__ import annotations

import re

from channels.email.parse.bounces import DAEMONS
from channels.email.parse.model import Bounce, Mail

_NOREPLY = re.compile(
    r"(?:^|[-_.+])(?:no[-_.]?reply|do[-_.]?not[-_.]?reply|dont[-_.]?reply|no[-_.]?answer|"
    r"ne[-_.]?pas[-_.]?repondre|nicht[-_.]?antworten)"
    r"(?:$|[-_.+\d])",
    re.IGNORECASE,
)
_BULK_PRECEDENCE = frozenset({"bulk", "list", "junk", "auto_reply", "auto-reply"})
_SUPPRESS_AUTO = frozenset({"all", "oof", "autoreply"})


def _auto_reason(
    top: dict[str, str],
    from_address: str | None,
    message_id: str | None,
    own_domains: frozenset[str],
    bounce: Bounce | None,
    read_receipt: bool,
) -> str | None:
    """Why no person wrote this mail, in the order the reasons are checked; None when one did."""
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
        if local in DAEMONS:
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


def mark_automatic(mail: Mail) -> None:
    """Filter: why the mail is automatic (the first reason found), or None for a person's."""
    mail.auto_reason = _auto_reason(
        mail.top, mail.from_address, mail.message_id, mail.own_domains, mail.bounce, mail.has_mdn
    )
