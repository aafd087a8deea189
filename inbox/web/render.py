"""How the timeline shows a message's body: quoted text folded, email HTML made inert.

Email HTML was sanitized when it came in; it is sanitized again here (what is stored may
come from an older version or another path) and shown only inside a sandboxed frame whose
own Content-Security-Policy allows no script and no remote images (hub.headers).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from channels.email.parse import sanitize_html

# "On Mon, 7 Dec 2026, Anna wrote:" / "7 дек. 2026 г., в 10:00, Анна написал(а):"
_ATTRIBUTION = re.compile(r"^.{0,200}(wrote|написал[аи]?(\(а\))?|пишет)\s*:\s*$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Body:
    """A message's text split in what it says and what it quotes (folded behind "…")."""

    text: str
    quoted: str


def split_quote(text: str) -> Body:
    """The message's own text and the quoted tail (`>` lines and the line introducing them)."""
    lines = text.rstrip().splitlines()
    end = len(lines)
    start = end
    while start > 0 and (lines[start - 1].startswith(">") or not lines[start - 1].strip()):
        start -= 1
    if start == end or not any(line.startswith(">") for line in lines[start:end]):
        return Body(text.strip(), "")
    if start > 0 and _ATTRIBUTION.match(lines[start - 1].strip()):
        start -= 1
    own = "\n".join(lines[:start]).strip()
    quoted = "\n".join(lines[start:]).strip()
    if not own:
        return Body(quoted, "")
    return Body(own, quoted)


def email_document(html: str) -> str:
    """A whole HTML document of the sanitized email, for its sandboxed frame."""
    return (
        '<!doctype html><html><head><meta charset="utf-8">'
        "<style>body{font:14px/1.5 system-ui,sans-serif;margin:8px;color:#1b1b1f;"
        "overflow-wrap:anywhere}img{max-width:100%;height:auto}"
        "blockquote{margin:0 0 0 8px;padding-left:8px;border-left:2px solid #ccc;color:#555}"
        "</style></head><body>" + sanitize_html(html) + "</body></html>"
    )
