"""How the timeline shows a message's body: quoted text folded, email HTML made inert.

Email HTML was sanitized when it came in; it is sanitized again here (what is stored may
come from an older version or another path) and shown only inside a sandboxed frame whose
own Content-Security-Policy allows no script and no remote images (hub.headers).
"""

from __future__ import annotations

from dataclasses import dataclass

import nh3

from channels.email.parse import sanitize_html
from channels.email.quotes import strip_quotes


@dataclass(frozen=True, slots=True)
class Body:
    """A message's text split in what it says and what it quotes (folded behind "…")."""

    text: str
    quoted: str


def split_quote(text: str) -> Body:
    """The message's own text and the quoted history and signature after it (the email
    channel's own quote detection, Russian and English styles)."""
    whole = text.strip()
    own = strip_quotes(whole).strip()
    if not own or own == whole:
        return Body(whole, "")
    if whole.startswith(own):
        return Body(own, whole[len(own) :].strip())
    # Written under or between the quotes: the fold holds the message as it came.
    return Body(own, whole)


def _local_images_only(tag: str, attribute: str, value: str) -> str | None:
    # A remote image tells the sender the email was opened (and from where): dropped.
    if tag == "img" and attribute == "src" and not value.lower().startswith(("cid:", "data:")):
        return None
    return value


def inert_html(html: str) -> str:
    """The email's HTML sanitized, without remote images."""
    return nh3.clean(sanitize_html(html), attribute_filter=_local_images_only)


def email_document(html: str) -> str:
    """A whole HTML document of the sanitized email, for its sandboxed frame."""
    return (
        '<!doctype html><html><head><meta charset="utf-8">'
        "<style>body{font:14px/1.5 system-ui,sans-serif;margin:8px;color:#1b1b1f;"
        "overflow-wrap:anywhere}img{max-width:100%;height:auto}"
        "blockquote{margin:0 0 0 8px;padding-left:8px;border-left:2px solid #ccc;color:#555}"
        "</style></head><body>" + inert_html(html) + "</body></html>"
    )
