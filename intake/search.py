"""Search: the conversations whose messages, subject, contact or numbers match what was typed.

A conversation matches when every word of the query is in one of its messages (notes
included), or in its subject, or in its contact's name or company; or when the query is one
of the contact's identities or a part of one (an email address, a phone number however it is
written, a Telegram name); or when it is a request number (the lead's number shown to the
client) or a claim number. Words match by their stem in Russian and English, so «заказы» finds
«заказ» and "invoices" finds "invoice"; names, companies and identities match any part of
three characters or more.

Results are conversations the viewer may see (`intake.visibility`), the latest match first,
a page at a time with a cursor and no cap on how many pages there are; each result carries
the fragment of its latest matching message with the matched words marked.
"""

from __future__ import annotations

import base64
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import snowballstemmer
from sqlalchemy.ext.asyncio import AsyncSession

from intake.journal import Page
from intake.journal_repository import ConversationRow, JournalRepository
from intake.search_repository import SearchRepository
from intake.visibility import Viewer
from storage.errors import InvalidInput

MAX_QUERY_LENGTH = 200
MAX_WORDS = 12
DEFAULT_LIMIT = 50
# The most matching messages read at once while filling a page.
MAX_CHUNK = 20_000
MAX_LIMIT = 200
# Up to this many conversations matched otherwise than by a message (a name, an identity)
# are listed by id and ranked at once; more are ranked by reading their newest messages.
MANY_OTHERS = 2000
# Past this many contacts matched by their name or company (a contact has a conversation or
# two) their conversations count as many without listing them: the list reads every
# matching contact, the count stops at this many.
MANY_CONTACTS = 1000


_WORD = re.compile(r"\w+", re.UNICODE)
_NUMBER = re.compile(r"[0-9]{1,18}")
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_PHONE = re.compile(r"\+?[\d\s().\-]{5,}")
_CLAIM_NUMBER = re.compile(r"[A-Za-zА-Яа-я]{2,5}-\d{4}-\d{1,9}")


@dataclass(frozen=True, slots=True)
class SearchTerms:
    """A query taken apart for the backends (built by `terms_of`)."""

    text: str
    words: tuple[str, ...]
    stems: tuple[str, ...]
    # Words long enough for trigram matching of names, companies and identities.
    parts: tuple[str, ...]
    # The whole query when it is one term: an identity may contain it.
    identity: str | None
    # The digits of a phone-like query (8 912 … also as 7 912 …).
    phone_digits: tuple[str, ...]
    numbers: tuple[int, ...]
    claim_number: str | None


@dataclass(frozen=True, slots=True)
class SnippetPart:
    text: str
    hit: bool


@dataclass(frozen=True, slots=True)
class SearchHit:
    row: ConversationRow
    # The latest matching message's fragment; empty when only the contact or a number matched.
    snippet: tuple[SnippetPart, ...]
    message_id: int | None


@cache
def _stemmer(language: str) -> snowballstemmer.Stemmer:
    return snowballstemmer.stemmer(language)


def stem(word: str) -> str:
    """The Snowball stem of a lower-case word, Russian for Cyrillic, English otherwise."""
    language = "russian" if _CYRILLIC.search(word) else "english"
    stemmed: str = _stemmer(language).stemWord(word.replace("ё", "е"))
    return stemmed if len(stemmed) >= 2 else word


def terms_of(query: str) -> SearchTerms:
    """Take a query apart; InvalidInput(invalid_query) when there is nothing to search for."""
    text = unicodedata.normalize("NFC", query).strip()
    if not text:
        raise InvalidInput("type something to search for", code="invalid_query")
    if len(text) > MAX_QUERY_LENGTH:
        raise InvalidInput(f"the query is over {MAX_QUERY_LENGTH} characters", code="invalid_query")
    words = tuple(dict.fromkeys(word.casefold() for word in _WORD.findall(text)))[:MAX_WORDS]
    if not words:
        raise InvalidInput("the query has no words or numbers", code="invalid_query")
    raw = text.split()
    identity = raw[0].strip("\"'«»") if len(raw) == 1 and len(raw[0]) >= 3 else None
    phone_digits: tuple[str, ...] = ()
    if _PHONE.fullmatch(text):
        digits = re.sub(r"\D", "", text)
        if len(digits) >= 5:
            spelled = [digits]
            if len(digits) == 11 and digits.startswith("8"):
                spelled.append("7" + digits[1:])
            phone_digits = tuple(spelled)
    numbers = tuple(int(word) for word in words if word.isdigit() and len(word) <= 18)
    claim = _CLAIM_NUMBER.fullmatch(text)
    return SearchTerms(
        text=text,
        words=words,
        stems=tuple(stem(word) for word in words),
        parts=tuple(word for word in words if len(word) >= 3),
        identity=identity,
        phone_digits=phone_digits,
        numbers=numbers,
        claim_number=claim.group(0).upper() if claim else None,
    )


def _folded(word: str) -> str:
    return word.casefold().replace("ё", "е")


def snippet_of(text: str, stems: Sequence[str], width: int = 24) -> tuple[SnippetPart, ...]:
    """About `width` words of `text` around its first word that starts with a stem, every such
    word marked as a hit (the backends' own highlighting reads the whole match set again)."""
    folded = [_folded(stem) for stem in stems]
    tokens = [(m.start(), m.end()) for m in _WORD.finditer(text)]
    hits = [
        index
        for index, (start, end) in enumerate(tokens)
        if any(_folded(text[start:end]).startswith(stem) for stem in folded)
    ]
    if not tokens:
        return (SnippetPart(text[:200], hit=False),) if text.strip() else ()
    first = hits[0] if hits else 0
    low = max(first - width // 3, 0)
    high = min(low + width, len(tokens))
    begin = 0 if low == 0 else tokens[low][0]
    finish = len(text) if high == len(tokens) else tokens[high - 1][1]
    parts: list[SnippetPart] = []
    if low > 0:
        parts.append(SnippetPart("…", hit=False))
    position = begin
    for index in hits:
        start, end = tokens[index]
        if start < begin or end > finish:
            continue
        if start > position:
            parts.append(SnippetPart(text[position:start], hit=False))
        parts.append(SnippetPart(text[start:end], hit=True))
        position = end
    if finish > position:
        parts.append(SnippetPart(text[position:finish], hit=False))
    if high < len(tokens):
        parts.append(SnippetPart("…", hit=False))
    return tuple(parts)


def encode_search_cursor(key: int, conversation_id: int) -> str:
    raw = f"search:{key}:{conversation_id}".encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_search_cursor(cursor: str) -> tuple[int, int]:
    """(key, conversation id) of the last result shown; InvalidInput(invalid_cursor) if the
    cursor is not one this search gave."""
    try:
        raw = base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode("ascii"))
        kind, key, conversation_id = raw.decode("ascii").split(":")
    except (ValueError, UnicodeError) as exc:
        raise InvalidInput("the cursor is not one this API gave", code="invalid_cursor") from exc
    if kind != "search" or not (_NUMBER.fullmatch(key) and _NUMBER.fullmatch(conversation_id)):
        raise InvalidInput("the cursor is not one this API gave", code="invalid_cursor")
    return int(key), int(conversation_id)


async def search(
    session: AsyncSession,
    viewer: Viewer,
    query: str,
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> Page[SearchHit]:
    """One page of the conversations matching `query` that `viewer` may see.

    Ordered by the latest match, newest first: a conversation matched by a message stands
    where its latest matching message stands; one matched by its subject, contact or number
    where its latest message stands. The newest matching messages are read first and only
    as many as the page needs, so a common word costs no more than a rare one.
    """
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be within 1..{MAX_LIMIT}", code="invalid_limit")
    terms = terms_of(query)
    before = decode_search_cursor(cursor) if cursor else None
    repo = SearchRepository(session)
    wanted = limit + 1
    # The conversations matched otherwise than by a message, computed once per page: as a
    # list of ids when they are few, else read from the database where they are used (a
    # name of many contacts is known for many without listing them).
    otherwise: set[int] | None = None
    if not await repo.many_contacts(terms, more_than=MANY_CONTACTS):
        few = await repo.other_ids(terms, limit=MANY_OTHERS + 1)
        otherwise = set(few) if len(few) <= MANY_OTHERS else None
    by_message = await _by_messages(repo, terms, viewer, before, wanted, otherwise)
    if otherwise is not None:
        others = await repo.keyed(sorted(otherwise), viewer, before=before, limit=wanted)
    else:
        others = await _many_others(repo, terms, viewer, before, wanted)
    ranked = sorted({*others, *by_message}, reverse=True)[:wanted]
    more = len(ranked) > limit
    ranked = ranked[:limit]
    ids = [conversation_id for _key, conversation_id in ranked]
    latest = {conversation_id: key for key, conversation_id in by_message if key}
    latest = {
        conversation_id: latest[conversation_id]
        for conversation_id in ids
        if conversation_id in latest
    }
    texts = await repo.message_texts(list(latest.values()))
    rows = await JournalRepository(session).conversation_rows(ids)
    hits = []
    for row in rows:
        message_id = latest.get(row.conversation.id)
        text = texts.get(message_id) if message_id is not None else None
        hits.append(
            SearchHit(
                row=row,
                snippet=snippet_of(text, terms.stems) if text else (),
                message_id=message_id,
            )
        )
    next_cursor = encode_search_cursor(*ranked[-1]) if more else None
    return Page(hits, next_cursor)


async def _many_others(
    repo: SearchRepository,
    terms: SearchTerms,
    viewer: Viewer,
    before: tuple[int, int] | None,
    wanted: int,
) -> list[tuple[int, int]]:
    """Up to `wanted` (latest message id, conversation id) below the cursor of the visible
    conversations matched otherwise than by a message, when there are many of them: one walk
    of the newest messages that keeps each conversation's latest, so the page costs what it
    shows; those without any message (key 0) follow once the walk runs out."""
    below = before[0] if before is not None else None
    found: list[tuple[int, int]] = []
    if below != 0:  # a cursor at key 0: every conversation with messages was shown
        found = await repo.others_latest(terms, viewer, below=below, limit=wanted)
    if len(found) < wanted:
        found += await repo.others_without_messages(
            terms, viewer, before=before, limit=wanted - len(found)
        )
    return found


async def _by_messages(
    repo: SearchRepository,
    terms: SearchTerms,
    viewer: Viewer,
    before: tuple[int, int] | None,
    wanted: int,
    otherwise: set[int] | None,
) -> list[tuple[int, int]]:
    """Up to `wanted` (latest matching message id, conversation id) below the cursor, for the
    conversations matched by a message only, read newest first in growing chunks.
    `otherwise`: the conversations matched otherwise, or None when there are too many to
    list (the database then tells which of the candidates are)."""
    found: list[tuple[int, int]] = []
    seen: set[int] = set()
    below = before[0] if before is not None else None
    chunk = max(wanted * 4, 64)
    while len(found) < wanted:
        matches = await repo.message_matches(terms, below=below, limit=chunk)
        if not matches:
            break
        fresh: dict[int, int] = {}
        for message_id, conversation_id in matches:
            if conversation_id not in seen and conversation_id not in fresh:
                fresh[conversation_id] = message_id
        seen.update(fresh)
        candidates = list(fresh)
        if otherwise is None:
            dropped = await repo.matched_otherwise(terms, candidates)
        else:
            dropped = otherwise.intersection(candidates)
        if before is not None:
            # Shown on an earlier page: a match at or after the cursor's message.
            dropped |= await repo.matched_since(terms, candidates, before[0])
        visible = await repo.visible(candidates, viewer)
        found += [
            (message_id, conversation_id)
            for conversation_id, message_id in fresh.items()
            if conversation_id in visible and conversation_id not in dropped
        ]
        if len(matches) < chunk:
            break
        below = matches[-1][0]
        chunk = min(chunk * 4, MAX_CHUNK)
    return found
