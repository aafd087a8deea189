"""The new part of a reply: quoted history and signatures stripped, in Russian and English styles.

Recognised quote starts: lines beginning with ``>``; attribution lines such as
"On <date>, <name> wrote:" (also wrapped over up to three lines), "<date>, <name> пишет:",
"... написал(а):", Yandex/Gmail/Mail.ru "<date>, <name> <address>:"; separators such as
"-----Original Message-----", "Исходное сообщение", "Пересылаемое сообщение",
"Forwarded message"; Outlook header blocks "From: / Sent: / To: / Subject:" and
"От: / Отправлено: / Кому: / Тема:". Signatures: the "-- " delimiter, "Sent from my
iPhone" / "Отправлено с iPhone" lines, and sign-offs such as "С уважением," or
"Best regards," near the end.

A reply that starts with the quote (bottom-posting) keeps the text written under it;
a reply interleaved with quotes is kept whole. When stripping would leave nothing,
the original text is returned.
"""

from __future__ import annotations

import re

__all__ = ["strip_quotes"]

_QUOTE_LINE = re.compile(r"^[ \t]*>")
_SEPARATOR = re.compile(
    r"^[\s\-_=*<>]*(?:"
    r"original message|исходное сообщение|оригинальное сообщение|"
    r"пересылаемое сообщение|пересланное сообщение|переадресованное сообщение|"
    r"перенаправленное сообщение|forwarded message|reply message|"
    r"message d'origine|message transféré|ursprüngliche nachricht|"
    r"weitergeleitete nachricht|mensaje original|mensaje reenviado"
    r")[\s\-_=*<>:]*$",
    re.IGNORECASE,
)
_FORWARD_START = re.compile(
    r"^\s*(?:begin forwarded message|начало переадресованного сообщения|"
    r"начало пересылаемого сообщения)\s*:?\s*$",
    re.IGNORECASE,
)
_ATTRIBUTION_VERB = re.compile(
    r"(?:\bwrote|\bwrites|\bнаписал(?:а|\(а\))?|\bнаписали|\bпишет|\bпишут|\bписал(?:а)?|"
    r"\bschrieb|a écrit|escribió|ha scritto|escreveu|napisał(?:a)?)\s*:\s*$",
    re.IGNORECASE,
)
# "26.06.2014, 14:41, "Alexander L" <abc@example.com>:" (Yandex), "Thu, 26 Jun 2014
# 14:00:51 +0400 от Alexander L <abc@example.com>:" (Mail.ru), "пн, 2 апр. 2012 г. в
# 14:20, Megan <x@gmail.com>:" (Gmail in Russian).
_ATTRIBUTION_ADDRESS = re.compile(r"(?:<\s*[^<>\s@]+@[^<>\s]+\s*>|\b[^\s<>@]+@[^\s<>@]+>?)\s*:\s*$")
_ATTRIBUTION_START = re.compile(
    r"^(?:on|le|am|el|il|em|op|w|в|пн|вт|ср|чт|пт|сб|вс|mon|tue|wed|thu|fri|sat|sun|"
    r"понедельник|вторник|среда|четверг|пятница|суббота|воскресенье)\b",
    re.IGNORECASE,
)
_DATE_OR_TIME = re.compile(r"\d{1,2}:\d{2}|\d{1,2}[./-]\d{1,2}[./-]\d{2,4}|\b(?:19|20)\d{2}\b")
_HEADER_LINE = re.compile(
    r"^[\s*>]*(from|von|de|от|от кого|sent|date|envoyé|gesendet|отправлено|дата|"
    r"to|an|à|кому|subject|betreff|objet|тема|cc|копия)\s*:",
    re.IGNORECASE,
)
_HEADER_KEYS = {
    "from": "from", "von": "from", "de": "from", "от": "from", "от кого": "from",
    "sent": "date", "date": "date", "envoyé": "date", "gesendet": "date",
    "отправлено": "date", "дата": "date",
    "to": "to", "an": "to", "à": "to", "кому": "to", "cc": "to", "копия": "to",
    "subject": "subject", "betreff": "subject", "objet": "subject", "тема": "subject",
}  # fmt: skip
_RULE = re.compile(r"^\s*(?:_{8,}|-{8,}|={8,}|\*{8,})\s*$")
_SIG_DELIMITER = re.compile(r"^--[ \t]?$")
_MOBILE_SIGNATURE = re.compile(
    r"^\s*(?:sent from (?:my |mail for |yahoo mail|outlook|samsung|the mail app)|"
    r"get outlook for |sent with (?:sparrow|airmail|spark)|"
    r"отправлено (?:с|со|из) (?:моего |мобильного |мобильной |приложения |"
    r"iphone|ipad|android|яндекс|почты|mail\.ru|планшета|телефона|устройства|"
    r"samsung|huawei|xiaomi|outlook))",
    re.IGNORECASE,
)
_SIGN_OFF = re.compile(
    r"^\s*(?:с уважением|с наилучшими пожеланиями|с наилучшими|всего доброго|"
    r"всего наилучшего|best regards|kind regards|warm regards|regards|"
    r"best wishes|yours sincerely|sincerely|yours truly|mit freundlichen grüßen)"
    r"\s*[,.!]?\s*(?:[^\s.!?,][^.!?]{0,60})?$",
    re.IGNORECASE,
)
_MAX_ATTRIBUTION = 300
_SIG_DELIMITER_TAIL = 20
_SIGN_OFF_TAIL = 8
_MOBILE_TAIL = 3


def _attribution(lines: list[str], start: int) -> int:
    """Number of lines (1-3) of an attribution line starting at ``start``; 0 if none."""
    first = lines[start].strip()
    if not first or len(first) > _MAX_ATTRIBUTION or _QUOTE_LINE.match(lines[start]):
        return 0
    # Every attribution ends with a colon: skip the regular expressions for other lines.
    if not any(line.rstrip().endswith(":") for line in lines[start : start + 3]):
        return 0
    joined = first
    for span in range(1, 4):
        if span > 1:
            index = start + span - 1
            nxt = lines[index].strip() if index < len(lines) else ""
            if not nxt or _QUOTE_LINE.match(lines[index]):
                return 0
            if span == 2:
                # A wrapped attribution begins like one, and not inside a sentence
                # that merely precedes it.
                if not _starts_attribution(first):
                    return 0
                if _starts_attribution(nxt) and _attribution(lines, index):
                    return 0
            joined = f"{joined} {nxt}"
            if len(joined) > _MAX_ATTRIBUTION:
                return 0
        if not joined.endswith(":"):
            continue
        if _ATTRIBUTION_VERB.search(joined):
            if "@" in joined or _DATE_OR_TIME.search(joined) or _next_is_quote(lines, start + span):
                return span
        elif _ATTRIBUTION_ADDRESS.search(joined) and _DATE_OR_TIME.search(joined):
            return span
    return 0


def _starts_attribution(line: str) -> bool:
    return bool(_ATTRIBUTION_START.match(line) or line[:1].isdigit())


def _next_is_quote(lines: list[str], index: int) -> bool:
    for line in lines[index : index + 3]:
        if line.strip():
            return bool(_QUOTE_LINE.match(line))
    return False


def _header_block(lines: list[str], start: int) -> bool:
    """Whether an Outlook-style header block ("From:", "Sent:", "To:", ...) starts here."""
    match = _HEADER_LINE.match(lines[start])
    if not match:
        return False
    keys = {_HEADER_KEYS[match.group(1).lower()]}
    loose = 0
    for line in lines[start + 1 : start + 10]:
        if not line.strip():
            break
        found = _HEADER_LINE.match(line)
        if found:
            keys.add(_HEADER_KEYS[found.group(1).lower()])
        else:
            loose += 1  # a wrapped address list
            if loose > 2:
                break
    return "from" in keys and "date" in keys and len(keys) >= 3


def _classify(lines: list[str]) -> tuple[list[str], dict[int, int]]:
    """A kind per line ('e' empty, 'm' quoted, 's' splitter, 't' text) and splitter spans."""
    kinds: list[str] = []
    spans: dict[int, int] = {}
    index = 0
    count = len(lines)
    while index < count:
        line = lines[index]
        if not line.strip():
            kinds.append("e")
        elif _QUOTE_LINE.match(line):
            kinds.append("m")
        elif _separator(lines, index):
            kinds.append("s")
            spans[index] = 1
        else:
            span = _attribution(lines, index)
            if span:
                kinds.extend("s" * span)
                spans[index] = span
                index += span
                continue
            kinds.append("t")
        index += 1
    return kinds, spans


def _separator(lines: list[str], index: int) -> bool:
    """A one-line start of the older message: a separator, a rule or a header block."""
    line = lines[index]
    if _SEPARATOR.match(line) or _FORWARD_START.match(line):
        return True
    if _RULE.match(line):
        return _rule_before_header(lines, index)
    return _header_block(lines, index)


def _rule_before_header(lines: list[str], index: int) -> bool:
    for offset in range(index + 1, min(index + 3, len(lines))):
        if lines[offset].strip():
            return _header_block(lines, offset)
    return False


def _quote_block_end(kinds: list[str], spans: dict[int, int], start: int) -> int:
    """Index after the quote block beginning at ``start`` (a splitter and/or quoted lines)."""
    index = start + spans.get(start, 0) if kinds[start] == "s" else start
    while index < len(kinds) and kinds[index] in "me":
        index += 1
    return index


def _is_signature_line(line: str) -> bool:
    return bool(
        _SIG_DELIMITER.match(line.rstrip("\r"))
        or _MOBILE_SIGNATURE.match(line)
        or _SIGN_OFF.match(line)
    )


def _has_new_text(lines: list[str], kinds: list[str], start: int) -> bool:
    """Whether lines from ``start`` hold text that is not only a signature."""
    for index in range(start, len(lines)):
        if kinds[index] == "t":
            return not _is_signature_line(lines[index])
    return False


def _cut_quotes(lines: list[str]) -> list[str] | None:
    """The lines of the new part, or None when nothing new remains outside the quotes."""
    kinds, spans = _classify(lines)
    first = next((i for i, kind in enumerate(kinds) if kind in "ms"), None)
    if first is None:
        return lines
    text_before = "t" in kinds[:first]
    if kinds[first] == "s" and not _followed_by_quote(kinds, spans, first):
        # A separator or header block: everything after it is the older message.
        return lines[:first] if text_before else None
    end = _quote_block_end(kinds, spans, first)
    if not _has_new_text(lines, kinds, end):
        return lines[:first] if text_before else None
    if text_before:
        # Answers between quotes (inline replying): keep the whole text.
        return lines
    rest = kinds[end:]
    later = next((i for i, kind in enumerate(rest) if kind in "ms"), None)
    if later is not None and "t" in rest[:later]:
        return lines  # interleaved answers under a leading quote
    # Bottom-posting: the new text is under the quote.
    return lines[end:]


def _followed_by_quote(kinds: list[str], spans: dict[int, int], start: int) -> bool:
    index = start + spans.get(start, 1)
    while index < len(kinds) and kinds[index] == "e":
        index += 1
    return index < len(kinds) and kinds[index] == "m"


def _cut_signature(lines: list[str]) -> list[str]:
    tails = [0] * (len(lines) + 1)  # non-empty lines after each index
    for index in range(len(lines) - 1, -1, -1):
        tails[index] = tails[index + 1] + (1 if lines[index].strip() else 0)
    for index, line in enumerate(lines):
        tail = tails[index + 1]
        if _SIG_DELIMITER.match(line.rstrip("\r")):
            if tail <= _SIG_DELIMITER_TAIL:
                return lines[:index]
        elif _MOBILE_SIGNATURE.match(line):
            if tail <= _MOBILE_TAIL:
                return lines[:index]
        elif index > 0 and tail <= _SIGN_OFF_TAIL and _SIGN_OFF.match(line):
            return lines[:index]
    return lines


def _trim(lines: list[str]) -> list[str]:
    end = len(lines)
    while end and (not lines[end - 1].strip() or _RULE.match(lines[end - 1])):
        end -= 1
    start = 0
    while start < end and not lines[start].strip():
        start += 1
    return lines[start:end]


def strip_quotes(text: str) -> str:
    """The new part of a reply: ``text`` without quoted history and signature.

    Returns ``text`` itself when there is nothing to strip, and the original text
    when stripping would leave nothing.
    """
    if not text.strip():
        return text
    lines = text.split("\n")
    new = _cut_quotes(lines)
    if new is None:
        return text
    signed = _cut_signature(new)
    if new is lines and signed is lines:
        return text  # nothing to strip
    quoted_cut = _trim(new)
    if not quoted_cut:
        return text
    result_lines = _trim(signed) or quoted_cut
    if result_lines == lines:
        return text
    result = "\n".join(line.rstrip() for line in result_lines)
    return result if result.strip() else text
