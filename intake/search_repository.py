"""The search queries, one shape per backend (see `intake.search` for what matches).

SQLite answers from the FTS5 tables of migration 0010 (`search_messages`, `search_subjects`
tokenised by unicode61; `search_contacts`, `search_identities` by trigrams); PostgreSQL from
its `russian` text-search configuration and pg_trgm indexes. Each source yields conversation
ids; their union is filtered by visibility and paged by id, so a page costs the same few
queries however many conversations match.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    bindparam,
    column,
    func,
    literal_column,
    or_,
    select,
    table,
    tuple_,
    union,
)
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.ext.asyncio import AsyncSession

from intake.journal_repository import contains_any
from intake.visibility import Viewer, visible_to
from storage.models import Claim, Contact, Conversation, Identity, Lead, Message

if TYPE_CHECKING:
    from intake.search import SearchTerms

# Up to this many matching messages a word counts as rare (see `message_matches`).
RARE_MATCHES = 2000

# PostgreSQL's configuration that stems Cyrillic words as Russian and Latin ones as English.
TS_CONFIG = "russian"

_search_messages = table("search_messages", column("rowid"))
# PostgreSQL: the stored tsvector of each message's text (migration 0010).
_SEARCH_VECTOR = literal_column("messages.search_vector", type_=TSVECTOR())
_search_subjects = table("search_subjects", column("rowid"))
_search_contacts = table("search_contacts", column("rowid"))
_search_identities = table("search_identities", column("rowid"))


def _fts_phrase(value: str) -> str:
    """An FTS5 string literal (a phrase) for `value`."""
    return '"' + value.replace('"', '""') + '"'


def _yo_spellings(stem: str, limit: int = 3) -> list[str]:
    """`stem` with each of its first `limit` «е» also spelled «ё»: unicode61 does not fold «ё»,
    and people write «счет» for «счёт» and back."""
    spelled = [""]
    seen = 0
    for letter in stem:
        if letter == "е" and seen < limit:
            seen += 1
            spelled = [prefix + variant for prefix in spelled for variant in ("е", "ё")]
        else:
            spelled = [prefix + letter for prefix in spelled]
    return spelled


def _fts_words(stems: Sequence[str]) -> str:
    """An FTS5 query: every stem as a prefix, in any of its «е»/«ё» spellings."""
    groups = []
    for stem in stems:
        variants = [_fts_phrase(spelling) + "*" for spelling in _yo_spellings(stem)]
        groups.append(variants[0] if len(variants) == 1 else "(" + " OR ".join(variants) + ")")
    return " AND ".join(groups)


def _fts_match(fts: str, query: str) -> ColumnElement[bool]:
    return literal_column(fts).op("MATCH")(bindparam(f"{fts}_query", query))


class SearchRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @property
    def _sqlite(self) -> bool:
        return self.session.get_bind().dialect.name == "sqlite"

    # Sources of matching conversations

    def _message_hits(self, terms: SearchTerms) -> Select[int, int]:
        """(message id, conversation id) of the messages with every word."""
        if self._sqlite:
            return (
                select(Message.id, Message.conversation_id)
                .select_from(_search_messages)
                .join(Message, Message.id == _search_messages.c.rowid)
                .where(_fts_match("search_messages", _fts_words(terms.stems)))
            )
        return select(Message.id, Message.conversation_id).where(
            _SEARCH_VECTOR.op("@@")(func.plainto_tsquery(TS_CONFIG, terms.text))
        )

    def _subject_hits(self, terms: SearchTerms) -> Select[int]:
        if self._sqlite:
            query = _fts_words(terms.stems)
            return (
                select(Conversation.id)
                .join(_search_subjects, _search_subjects.c.rowid == Conversation.id)
                .where(_fts_match("search_subjects", query))
            )
        tsquery = func.plainto_tsquery(TS_CONFIG, terms.text)
        # Spelled with literals, as the index of migration 0010 is: a bound parameter in
        # their place would not match the index's expression.
        vector = func.to_tsvector(
            literal_column(f"'{TS_CONFIG}'"),
            func.coalesce(Conversation.subject, literal_column("''")),
        )
        return select(Conversation.id).where(vector.op("@@")(tsquery))

    def _contact_ids(self, terms: SearchTerms) -> list[Select[int]]:
        """Contacts whose name or company has every word, or with a matching identity."""
        sources: list[Select[int]] = []
        if terms.parts and len(terms.parts) == len(terms.words):
            if self._sqlite:
                query = " ".join(_fts_phrase(part) for part in terms.parts)
                sources.append(
                    select(_search_contacts.c.rowid).where(_fts_match("search_contacts", query))
                )
            else:
                sources.append(
                    select(Contact.id).where(
                        and_(
                            *(
                                or_(
                                    contains_any(Contact.name, part),
                                    Contact.company.ilike(f"%{part}%"),
                                )
                                for part in terms.parts
                            )
                        )
                    )
                )
        needles = [*terms.phone_digits]
        if terms.identity is not None:
            needles.append(terms.identity.casefold())
        for index, needle in enumerate(needles):
            if self._sqlite:
                sources.append(
                    select(Identity.contact_id)
                    .join(_search_identities, _search_identities.c.rowid == Identity.id)
                    .where(
                        literal_column("search_identities").op("MATCH")(
                            bindparam(f"identity_{index}", _fts_phrase(needle))
                        )
                    )
                )
            else:
                sources.append(
                    select(Identity.contact_id).where(contains_any(Identity.value, needle))
                )
        return sources

    def _number_hits(self, terms: SearchTerms) -> list[Select[int]]:
        sources: list[Select[int]] = []
        if terms.numbers:
            sources.append(select(Lead.conversation_id).where(Lead.id.in_(terms.numbers)))
        if terms.claim_number is not None:
            sources.append(
                select(Conversation.id)
                .join(Claim, Claim.conversation_id == Conversation.id)
                .where(Claim.number == terms.claim_number)
            )
        return sources

    def _other_hits(self, terms: SearchTerms) -> Select[int]:
        """Conversations matched by their subject, contact, identities or numbers."""
        sources: list[Select[int]] = [self._subject_hits(terms), *self._number_hits(terms)]
        contacts = self._contact_ids(terms)
        if contacts:
            contact_ids = union(*contacts).subquery()
            sources.append(
                select(Conversation.id).where(Conversation.contact_id.in_(select(contact_ids.c[0])))
            )
        hits = union(*sources).subquery()
        return select(hits.c[0])

    async def message_matches(
        self, terms: SearchTerms, *, below: int | None, limit: int
    ) -> list[tuple[int, int]]:
        """(message id, conversation id) of matching messages, newest first, ids below `below`."""
        query = self._message_hits(terms)
        # SQLite: in the FTS table's own rowid order, so that it reads its newest matches
        # and stops, instead of sorting them all.
        order = _search_messages.c.rowid if self._sqlite else Message.id
        if below is not None:
            query = query.where(order < below)
        if not self._sqlite:
            # PostgreSQL guesses a word's frequency poorly: for a rare word it would walk the
            # primary key backwards through the whole table. Read the matches unordered
            # first (the index finds a rare word's few at once); only a word with more than
            # RARE_MATCHES of them is read newest first, where that walk stops early.
            few = (await self.session.execute(query.limit(RARE_MATCHES + 1))).all()
            if len(few) <= RARE_MATCHES:
                return sorted(((row[0], row[1]) for row in few), reverse=True)[:limit]
        query = query.order_by(order.desc()).limit(limit)
        return [(row[0], row[1]) for row in (await self.session.execute(query)).all()]

    async def matched_since(
        self, terms: SearchTerms, conversation_ids: Sequence[int], since: int
    ) -> set[int]:
        """Which of these conversations have a matching message with id `since` or later."""
        if not conversation_ids:
            return set()
        query = self._message_hits(terms).where(
            Message.conversation_id.in_(conversation_ids), Message.id >= since
        )
        return {row[1] for row in (await self.session.execute(query)).all()}

    async def matched_otherwise(
        self, terms: SearchTerms, conversation_ids: Sequence[int]
    ) -> set[int]:
        """Which of these conversations match by subject, contact, identity or number."""
        others = self._other_hits(terms)
        if not conversation_ids:
            return set()
        query = select(Conversation.id).where(
            Conversation.id.in_(conversation_ids), Conversation.id.in_(others)
        )
        return set((await self.session.scalars(query)).all())

    async def visible(self, conversation_ids: Sequence[int], viewer: Viewer) -> set[int]:
        if not conversation_ids:
            return set()
        query = select(Conversation.id).where(
            Conversation.id.in_(conversation_ids), visible_to(viewer)
        )
        return set((await self.session.scalars(query)).all())

    async def other_matches(
        self, terms: SearchTerms, viewer: Viewer, *, before: tuple[int, int] | None, limit: int
    ) -> list[tuple[int, int]]:
        """(key, conversation id) of the conversations matched otherwise than by a message,
        the key being their latest message id, highest first, below the cursor `before`."""
        others = self._other_hits(terms)
        latest = (
            select(func.coalesce(func.max(Message.id), 0))
            .where(Message.conversation_id == Conversation.id)
            .scalar_subquery()
        )
        keyed = (
            select(latest.label("key"), Conversation.id.label("conversation_id"))
            .where(Conversation.id.in_(others), visible_to(viewer))
            .subquery()
        )
        query = select(keyed.c.key, keyed.c.conversation_id)
        if before is not None:
            query = query.where(tuple_(keyed.c.key, keyed.c.conversation_id) < before)
        query = query.order_by(keyed.c.key.desc(), keyed.c.conversation_id.desc()).limit(limit)
        return [(row[0], row[1]) for row in (await self.session.execute(query)).all()]

    async def message_texts(self, message_ids: Sequence[int]) -> dict[int, str]:
        if not message_ids:
            return {}
        rows = await self.session.execute(
            select(Message.id, Message.text).where(Message.id.in_(message_ids))
        )
        return {row[0]: row[1] for row in rows.all()}
