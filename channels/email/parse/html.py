"""HTML bodies: sanitized for showing, and turned into readable text."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import nh3

from channels.email.parse.decoding import WHITESPACE
from channels.email.parse.model import Mail


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_ALLOWED_TAGS = _words(
    "a abbr b blockquote br caption center cite code col colgroup dd del div dl dt em h1 h2 h3"
    " h4 h5 h6 hr i img ins kbd li ol p pre q s small span strike strong sub sup table tbody td"
    " tfoot th thead tr tt u ul"
)
_SANITIZER = nh3.Cleaner(
    tags=set(_ALLOWED_TAGS),
    clean_content_tags={"script", "style", "title", "noscript", "template"},
    attributes={
        "*": {"dir", "lang", "title"},
        "a": {"href"},
        "img": {"src", "alt", "width", "height"},
        "td": {"colspan", "rowspan", "align", "valign"},
        "th": {"colspan", "rowspan", "align", "valign"},
        "ol": {"start"},
    },
    url_schemes={"http", "https", "mailto", "tel", "cid"},
    attribute_filter=lambda tag, attribute, value: _filter_attribute(tag, attribute, value),
    link_rel="noopener noreferrer nofollow",
    strip_comments=True,
)


def _filter_attribute(tag: str, attribute: str, value: str) -> str | None:
    if attribute == "src" and tag == "img":
        return value if value.lower().startswith(("cid:", "https:")) else None
    if attribute == "href" and value[:4].lower() == "cid:":
        return None
    return value


def sanitize_html(html: str) -> str:
    """Safe HTML: basic formatting, links, images from cid: and https: only."""
    return _SANITIZER.clean(html)


_BLOCK_TAGS = _words(
    "address article aside center dd details dialog div dl dt fieldset figcaption figure footer"
    " form header li main nav section summary tr caption ul ol table tbody thead tfoot"
)
_PARAGRAPH_TAGS = frozenset({"p", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "hr"})
_SKIPPED_TAGS = frozenset(
    {"script", "style", "head", "title", "noscript", "template", "svg", "object", "xml"}
)
_VOID_TAGS = frozenset(
    {"br", "img", "hr", "meta", "link", "input", "wbr", "col", "area", "base", "source"}
)
_TAGS = re.compile(r"<[^>]*>")


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[tuple[int, str]] = []
        self.current: list[str] = []
        self.current_depth = 0
        self.depth = 0
        self.pending = 0
        self.pre = 0
        self.skipping: list[str] = []
        self.links: list[tuple[str, list[str]]] = []

    def _end_line(self) -> None:
        self.lines.append((self.current_depth, "".join(self.current).rstrip()))
        self.current = []
        self.current_depth = self.depth

    def _break(self, count: int) -> None:
        self.pending = max(self.pending, count)

    def _flush_breaks(self) -> None:
        if self.current:
            self._end_line()
            for _ in range(self.pending - 1):
                self.lines.append((self.depth, ""))
        elif self.lines:
            for _ in range(self.pending - 1):
                self.lines.append((self.depth, ""))
        self.pending = 0

    def _write(self, text: str) -> None:
        if not text:
            return
        if self.pending:
            self._flush_breaks()
        if not self.current:
            self.current_depth = self.depth
            if not self.pre:
                text = text.lstrip(" ")
                if not text:
                    return
        elif not self.pre and text.startswith(" ") and self.current[-1].endswith(" "):
            text = text[1:]
        self.current.append(text)
        for _, buffer in self.links:
            buffer.append(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body":
            self.skipping = [t for t in self.skipping if t != "head"]
            return
        if self.skipping:
            if tag in _SKIPPED_TAGS and tag not in _VOID_TAGS:
                self.skipping.append(tag)
            return
        if tag in _SKIPPED_TAGS:
            self.skipping.append(tag)
        elif tag == "br":
            if self.pending:
                self._flush_breaks()
            self._end_line()
        elif tag == "blockquote":
            self._break(1)
            self.depth += 1
        elif tag in _PARAGRAPH_TAGS:
            self._break(2)
            if tag == "pre":
                self.pre += 1
        elif tag in _BLOCK_TAGS:
            self._break(1)
            if tag == "li":
                self._write("- ")
        elif tag in ("td", "th"):
            if self.current and not self.current[-1].endswith(" "):
                self.current.append(" ")
        elif tag == "a":
            href = next((value for name, value in attrs if name == "href" and value), "")
            self.links.append((href.strip(), []))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if self.skipping:
            if tag == self.skipping[-1]:
                self.skipping.pop()
            elif tag in self.skipping:
                while self.skipping and self.skipping.pop() != tag:
                    pass
            return
        if tag == "blockquote":
            self._break(1)
            if self.pending:
                self._flush_breaks()
            self.depth = max(0, self.depth - 1)
            self.current_depth = self.depth
        elif tag in _PARAGRAPH_TAGS:
            self._break(2)
            if tag == "pre":
                self.pre = max(0, self.pre - 1)
        elif tag in _BLOCK_TAGS:
            self._break(1)
        elif tag == "a" and self.links:
            href, buffer = self.links.pop()
            shown = _link_suffix(href, "".join(buffer))
            if shown:
                self._write(shown)

    def handle_data(self, data: str) -> None:
        if self.skipping:
            return
        if self.pre:
            for index, piece in enumerate(data.replace("\r\n", "\n").split("\n")):
                if index:
                    self._end_line()
                self._write(piece.replace("\xa0", " "))
            return
        self._write(WHITESPACE.sub(" ", data))

    def text(self) -> str:
        if self.current:
            self._end_line()
        out: list[str] = []
        for depth, line in self.lines:
            if depth:
                out.append(f"{'>' * depth} {line}" if line else ">" * depth)
            else:
                out.append(line)
        return "\n".join(out)


def _link_suffix(href: str, text: str) -> str:
    text = text.strip()
    if not href or not text or href.startswith("#"):
        return ""
    lowered = href.lower()
    if lowered.startswith(("javascript:", "cid:", "data:")):
        return ""
    if lowered.startswith("mailto:"):
        address = href[7:].split("?", 1)[0]
        return "" if address.lower() in text.lower() else f" ({address})"
    if href in text or href.rstrip("/") == text.rstrip("/"):
        return ""
    return f" ({href})"


_BLANK_RUNS = re.compile(r"\n(?:[ \t]*\n){2,}")


def html_to_text(html: str) -> str:
    """Readable text from HTML: blocks on their own lines, links as "text (url)",
    quoted blocks prefixed with ">", entities decoded, scripts and styles dropped."""
    extractor = _TextExtractor()
    try:
        extractor.feed(html)
        extractor.close()
        text = extractor.text()
    except Exception:  # HTMLParser is lenient; this is the last resort for odd input
        text = WHITESPACE.sub(" ", _TAGS.sub(" ", html))
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return _BLANK_RUNS.sub("\n\n", text).strip("\n")


def sanitize(mail: Mail) -> None:
    """Filter: the HTML body made safe to show."""
    mail.html = sanitize_html(mail.raw_html) if mail.raw_html is not None else None
