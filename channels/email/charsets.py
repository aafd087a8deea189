"""Turning the bytes of real mail into text: declared charsets checked against the bytes.

Russian mail still arrives in windows-1251 and KOI8-R, often mislabelled (us-ascii,
iso-8859-1 or no label at all) or with raw 8-bit bytes where only ASCII is allowed.
:func:`decode_bytes` decodes with the declared charset when that fits and otherwise
repairs: strict UTF-8 first, then a choice between windows-1251 and KOI8-R by
Russian letter frequencies, then windows-1252 for Western text. It never produces
replacement characters when a Cyrillic single-byte decoding fits.
"""

from __future__ import annotations

import codecs
import re
from collections import Counter
from typing import NamedTuple

__all__ = [
    "Decoded",
    "cyrillic_codec",
    "decode_bytes",
    "looks_cyrillic",
    "normalize_charset",
]

# Labels seen in real mail that Python's codec registry does not know, or knows badly.
_ALIASES = {
    "cp-1251": "cp1251",
    "win-1251": "cp1251",
    "win1251": "cp1251",
    "windows1251": "cp1251",
    "x-cp1251": "cp1251",
    "x-win1251": "cp1251",
    "cp-1252": "cp1252",
    "win-1252": "cp1252",
    "x-cp1252": "cp1252",
    "koi8r": "koi8_r",
    "koi8": "koi8_r",
    "x-koi8-r": "koi8_r",
    "koi8u": "koi8_u",
    "koi8-ru": "koi8_u",
    "x-mac-cyrillic": "mac_cyrillic",
    "x-mac-ukrainian": "mac_cyrillic",
    "iso-8859-8-i": "iso8859_8",
    "iso-8859-6-i": "iso8859_6",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "ks_c_5601-1987": "cp949",
    "euc-kr": "cp949",
    "shift_jis": "cp932",
    "x-sjis": "cp932",
    "x-user-defined": "cp1252",
    "unicode-1-1-utf-8": "utf-8",
    "utf8": "utf-8",
}
# Labels that say nothing about the bytes: decode as if no charset were declared.
_MEANINGLESS = frozenset(
    {"", "none", "unknown", "unknown-8bit", "x-unknown", "default", "charset", "8bit", "binary"}
)
# Declared charsets that real senders put on anything: 8-bit bytes under them are checked.
_SEVEN_BIT = ("iso2022", "utf-7", "utf_7", "hz")
_WIDE = ("utf-16", "utf_16", "utf-32", "utf_32")
_WEAK = frozenset({"ascii", "latin_1", "iso8859-1", "cp1252", "iso8859-15"})
_CP1251 = codecs.lookup("windows-1251").name
_KOI8R = codecs.lookup("koi8-r").name
_SINGLE_BYTE_CYRILLIC = (_CP1251, _KOI8R)
_MIME_NAMES = {_CP1251: "windows-1251", _KOI8R: "koi8-r"}
_CHARSET_CLEAN = re.compile(r"[\"'\s]+")


class Decoded(NamedTuple):
    text: str
    codec: str  # the codec actually used
    repair: str | None  # what was repaired, for the defects list; None when the label was right


def normalize_charset(label: str | None) -> str | None:
    """The Python codec name for a MIME charset label; None if absent, meaningless or unknown."""
    if not label:
        return None
    cleaned = _CHARSET_CLEAN.sub("", label).lower()
    # RFC 2231 language suffix (utf-8*ru) and stray parameters ("utf-8;format=flowed").
    cleaned = cleaned.split("*", 1)[0].split(";", 1)[0]
    if cleaned in _MEANINGLESS:
        return None
    cleaned = _ALIASES.get(cleaned, cleaned)
    if not cleaned.isascii() or len(cleaned) > 40:
        return None
    try:
        return codecs.lookup(cleaned).name
    except (LookupError, ValueError):
        return None


# Russian letter frequencies in percent (lowercase); other Cyrillic lowercase letters get 1.
_FREQ = {
    "о": 10.97, "е": 8.45, "а": 8.01, "и": 7.35, "н": 6.70, "т": 6.26, "с": 5.47,
    "р": 4.73, "в": 4.54, "л": 4.40, "к": 3.49, "м": 3.21, "д": 2.98, "п": 2.81,
    "у": 2.62, "я": 2.01, "ы": 1.90, "ь": 1.74, "г": 1.70, "з": 1.65, "б": 1.59,
    "ч": 1.44, "й": 1.21, "х": 0.97, "ж": 0.94, "ш": 0.73, "ю": 0.64, "ц": 0.48,
    "щ": 0.36, "э": 0.32, "ф": 0.26, "ъ": 0.04, "ё": 0.04,
}  # fmt: skip
_HARMLESS_PUNCTUATION = frozenset("«»–—“”„‘’…№\xa0•·")


def _weights(codec: str) -> list[float]:
    """Score of each byte value when the bytes are decoded with ``codec``."""
    table = [0.0] * 256
    for byte in range(0x80, 0x100):
        char = bytes([byte]).decode(codec, errors="replace")
        if "\u0400" <= char <= "\u04ff":
            if char.islower():
                table[byte] = _FREQ.get(char, 1.0)
            else:
                table[byte] = 0.5  # capitals are rare in running text
        elif char in _HARMLESS_PUNCTUATION:
            table[byte] = 0.0
        else:
            table[byte] = -2.0  # box drawing, control codes, undefined bytes
    return table


_WEIGHTS = {codec: _weights(codec) for codec in _SINGLE_BYTE_CYRILLIC}
_SAMPLE = 8192
_HIGH_RUN = re.compile(rb"[\xc0-\xff\xa3\xa8\xb3\xb8]{3,}")
_SURROGATES = re.compile("[\udc80-\udcff]+")
_ASCII_LETTERS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def _score(counts: Counter[int], codec: str) -> float:
    weights = _WEIGHTS[codec]
    return sum(weights[byte] * n for byte, n in counts.items() if byte >= 0x80)


def looks_cyrillic(data: bytes) -> bool:
    """Whether 8-bit bytes look like single-byte Cyrillic rather than Latin-1 accents.

    Russian words are runs of high bytes; Western European text has an accented
    letter here and there inside ASCII words. Short strings without long words
    ("Re: Да") are judged by how Russian their letters would be.
    """
    sample = data[:_SAMPLE]
    counts = Counter(sample)
    high = sum(n for byte, n in counts.items() if byte >= 0xC0 or byte in (0xA8, 0xB8, 0xA3, 0xB3))
    if high < 2:
        return False
    in_words = sum(len(match.group()) for match in _HIGH_RUN.finditer(sample))
    if in_words >= 0.5 * high:
        return True
    ascii_letters = sum(n for byte, n in counts.items() if byte in _ASCII_LETTERS)
    if high / (high + ascii_letters) < 0.3:
        return False
    best = max(_score(counts, codec) for codec in _SINGLE_BYTE_CYRILLIC)
    return best / high >= 2.0


def cyrillic_codec(data: bytes) -> str | None:
    """windows-1251 or KOI8-R, whichever decodes ``data`` strictly into likelier Russian."""
    counts = Counter(data[:_SAMPLE])
    best: tuple[float, str] | None = None
    for codec in _SINGLE_BYTE_CYRILLIC:
        try:
            data.decode(codec)
        except UnicodeDecodeError:
            continue
        score = _score(counts, codec)
        if best is None or score > best[0]:
            best = (score, codec)
    return best[1] if best else None


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _utf8_share(text: str) -> tuple[int, int]:
    """Characters decoded from valid UTF-8 sequences and bytes that were not UTF-8."""
    bad = sum(len(match.group()) for match in _SURROGATES.finditer(text))
    good = sum(1 for char in text if char > "\x7f") - bad
    return good, bad


def _mixed(data: bytes) -> tuple[str, str]:
    """UTF-8 where the bytes are UTF-8; the rest in the single-byte charset it looks like."""
    text = data.decode("utf-8", "surrogateescape")
    # Separate the pieces so that joining them does not invent Cyrillic-looking words.
    bad = b" ".join(_escaped_bytes(match.group()) for match in _SURROGATES.finditer(text))
    fallback = cyrillic_codec(bad) if looks_cyrillic(bad) else None

    def repair(match: re.Match[str]) -> str:
        raw = _escaped_bytes(match.group())
        return raw.decode(fallback) if fallback is not None else _western(raw)

    return _SURROGATES.sub(repair, text), _MIME_NAMES.get(fallback or "", "windows-1252")


def _escaped_bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _western(data: bytes) -> str:
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _label(declared: str | None) -> str:
    return declared.strip().strip("\"'").lower() if declared and declared.strip() else "none"


def _repair_8bit(data: bytes, declared: str | None, codec: str | None) -> Decoded:
    """Decode 8-bit bytes whose declared charset is absent, weak or wrong."""
    label = _label(declared)
    if _is_utf8(data):
        return Decoded(data.decode("utf-8"), "utf-8", f"declared {label}, decoded as utf-8")
    good, bad = _utf8_share(data.decode("utf-8", "surrogateescape"))
    if good >= 2 and good * 4 >= bad:
        text, other = _mixed(data)
        return Decoded(text, "utf-8", f"declared {label}, bytes not in utf-8 decoded as {other}")
    if looks_cyrillic(data):
        cyrillic = cyrillic_codec(data)
        if cyrillic is not None:
            name = _MIME_NAMES[cyrillic]
            return Decoded(data.decode(cyrillic), cyrillic, f"declared {label}, decoded as {name}")
    if codec == "utf-8" and good:
        text, other = _mixed(data)
        return Decoded(text, "utf-8", f"declared {label}, bytes not in utf-8 decoded as {other}")
    if codec is not None and codec not in _WEAK:
        return Decoded(
            data.decode(codec, errors="replace"),
            codec,
            f"declared {label}, undecodable bytes replaced",
        )
    if codec in ("cp1252", "iso8859-15"):
        try:
            return Decoded(data.decode(codec), codec, None)
        except UnicodeDecodeError:
            pass
    repair = None if codec == "iso8859-1" else f"declared {label}, decoded as windows-1252"
    return Decoded(_western(data), "cp1252", repair)


def decode_bytes(data: bytes, declared: str | None) -> Decoded:
    """Decode ``data`` labelled ``declared``, repairing the label when the bytes disagree."""
    if not data:
        return Decoded("", normalize_charset(declared) or "ascii", None)
    codec = normalize_charset(declared)
    if data.isascii():
        if (
            codec is not None
            and codec not in ("ascii", "utf-8")
            and codec.startswith(
                ("iso2022", "utf_7", "utf-7", "hz", "utf_16", "utf-16", "utf_32", "utf-32")
            )
        ):
            try:
                return Decoded(data.decode(codec), codec, None)
            except UnicodeDecodeError:
                pass
        return Decoded(data.decode("ascii"), "ascii", None)
    if codec is not None and codec.startswith(_SEVEN_BIT):
        # 8-bit bytes cannot be in a 7-bit charset: the label is wrong.
        return _repair_8bit(data, declared, None)
    if codec is None or codec in _WEAK:
        return _repair_8bit(data, declared, codec)
    if codec == "utf-8":
        if _is_utf8(data):
            return Decoded(data.decode("utf-8"), "utf-8", None)
        return _repair_8bit(data, declared, codec)
    try:
        text = data.decode(codec)
    except UnicodeDecodeError:
        return _repair_8bit(data, declared, codec)
    except LookupError:  # pragma: no cover - normalize_charset checked the codec
        return _repair_8bit(data, declared, None)
    if codec in _SINGLE_BYTE_CYRILLIC:
        label = _label(declared)
        # A single-byte label on valid multi-byte UTF-8 is a mislabel: random Cyrillic
        # single-byte text is practically never valid UTF-8.
        if _is_utf8(data):
            return Decoded(data.decode("utf-8"), "utf-8", f"declared {label}, decoded as utf-8")
        counts = Counter(data[:_SAMPLE])
        declared_score = _score(counts, codec)
        other = cyrillic_codec(data)
        if other is not None and other != codec:
            other_score = _score(counts, other)
            if other_score > 0 and other_score > 2 * max(declared_score, 0.0):
                name = _MIME_NAMES[other]
                return Decoded(data.decode(other), other, f"declared {label}, decoded as {name}")
    elif _is_utf8(data) and len(data) > 8 and codec.startswith(("cp125", "iso8859", "mac")):
        return Decoded(
            data.decode("utf-8"), "utf-8", f"declared {_label(declared)}, decoded as utf-8"
        )
    return Decoded(text, codec, None)
