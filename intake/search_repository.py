"""The search queries, one shape per backend (see `intake.search` for what matches).

SQLite answers from the FTS5 tables of migration 0010 (`search_messages`, `search_subjects`
tokenised by unicode61; `search_contacts`, `search_identities` by trigrams); PostgreSQL from
its `russian` text-search configuration and pg_trgm indexes. Each source yields conversation
ids; their union is filtered by visibility and paged by id, so a page costs the same few
queries however many conversations match.

PostgreSQL's plans, checked with EXPLAIN (ANALYZE, BUFFERS) on the 1M-message inbox of
`bench/inbox.py`: a name, company or identity is one ILIKE (the trigram index serves it;
several spellings OR-ed made the planner read the whole table); matching messages come from
a backward walk of the newest ones first, the text index only for a rare word; the
conversations matched otherwise are listed once per page when few, and when many (a common
name) found by walking the newest messages and checking each one's conversation row by row.
Whether a name's conversations are many is told (on both backends) by counting its contacts
up to `MANY_CONTACTS`: that count stops early; listing the conversations reads every contact.

On both backends the walk for many such conversations keeps a message only when it is its
conversation's latest, so one read gives the page's conversations (not their messages) and
the cursor needs no second query; SQLite checks each message's conversation against the
matching contacts, which its trigram tables give at once (ranking all the conversations by
their latest message instead read every one).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    Select,
    and_,
    bindparam,
    column,
    exists,
    func,
    literal,
    literal_column,
    or_,
    select,
    table,
    text,
    tuple_,
    union,
    union_all,
)
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from intake.journal_repository import _escape_like
from intake.visibility import Viewer, visible_to
from storage.models import Claim, Contact, Conversation, Identity, Lead, Message

if TYPE_CHECKING:
    from intake.search import SearchTerms

# Up to this many matching messages a word counts as rare (see `message_matches`).
RARE_MATCHES = 2000
# PostgreSQL: how many of the newest messages are walked first for a page's matches.
NEWEST_WINDOW = 20_000

# PostgreSQL's configuration that stems Cyrillic words as Russian and Latin ones as English.
TS_CONFIG = "russian"

# PostgreSQL: how many words of a query are not among the most common elements that ANALYZE
# noted for the messages' stored tsvector (the statistics its planner estimates by).
_UNCOMMON_WORDS = text(
    "SELECT count(*) FROM unnest(tsvector_to_array(to_tsvector(CAST(:config AS regconfig), "
    ":query))) AS word WHERE word <> ALL (coalesce((SELECT most_common_elems::text::text[] "
    "FROM pg_stats WHERE schemaname = current_schema() AND tablename = 'messages' "
    "AND attname = 'search_vector'), '{}'))"
)

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


def _contains(column: ColumnElement[str] | Any, needle: str) -> ColumnElement[bool]:
    """PostgreSQL: `column` contains `needle`, case-insensitively. One ILIKE, which the
    column's pg_trgm GIN index serves; several spellings OR-ed (as SQLite's LIKE needs)
    make the planner read the whole table instead."""
    return column.ilike(f"%{_escape_like(needle)}%", escape="\\")


def _subject_matches(terms: SearchTerms) -> ColumnElement[bool]:
    """PostgreSQL: the conversation's subject has every word."""
    tsquery = func.plainto_tsquery(TS_CONFIG, terms.text)
    # Spelled with literals, as the index of migration 0010 is: a bound parameter in
    # their place would not match the index's expression.
    vector = func.to_tsvector(
        literal_column(f"'{TS_CONFIG}'"),
        func.coalesce(Conversation.subject, literal_column("''")),
    )
    return vector.op("@@")(tsquery)


def _identity_needles(terms: SearchTerms) -> list[str]:
    needles = [*terms.phone_digits]
    if terms.identity is not None:
        needles.append(terms.identity.casefold())
    return needles


class SearchRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self._uncommon: dict[str, bool] = {}

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
        return select(Conversation.id).where(_subject_matches(terms))

    @staticmethod
    def _contact_condition(terms: SearchTerms) -> ColumnElement[bool]:
        """PostgreSQL: the contact's name or company has every part."""
        return and_(
            *(
                or_(_contains(Contact.name, part), _contains(Contact.company, part))
                for part in terms.parts
            )
        )

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
                sources.append(select(Contact.id).where(self._contact_condition(terms)))
        for index, needle in enumerate(_identity_needles(terms)):
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
                sources.append(select(Identity.contact_id).where(_contains(Identity.value, needle)))
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

    def _other_hits_by_part(self, terms: SearchTerms) -> list[Select[int]]:
        """Conversations matched by their subject or numbers, and by their contact."""
        parts: list[Select[int] | CompoundSelect[int]] = [
            union(self._subject_hits(terms), *self._number_hits(terms))
        ]
        contacts = self._contact_ids(terms)
        if contacts:
            contact_ids = union(*contacts).subquery()
            parts.append(
                select(Conversation.id).where(Conversation.contact_id.in_(select(contact_ids.c[0])))
            )
        return [select(part.subquery().c[0]) for part in parts]

    def _other_hits(self, terms: SearchTerms) -> Select[int]:
        """Conversations matched by their subject, contact, identities or numbers."""
        hits = union(*self._other_hits_by_part(terms)).subquery()
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
            # primary key backwards through the whole table, and for a common one the text
            # index builds its whole list of matches before the first is returned. So: the
            # newest NEWEST_WINDOW messages first, walked backwards (a common word fills the
            # chunk there at once); failing that, the matches unordered (the index finds a
            # rare word's few at once); only a word with more than RARE_MATCHES of them is
            # then read newest first, where that walk stops early. A query with a word
            # outside the most common ones that ANALYZE noted for the text index is likely
            # rare: its matches are read unordered first, sparing the walk through the
            # newest messages that would find none of them.
            uncommon = await self._has_uncommon_word(terms)
            if uncommon:
                few = (await self.session.execute(query.limit(RARE_MATCHES + 1))).all()
                if len(few) <= RARE_MATCHES:
                    return sorted(((row[0], row[1]) for row in few), reverse=True)[:limit]
            top = (
                literal(below)
                if below is not None
                else select(func.coalesce(func.max(Message.id), 0) + 1).scalar_subquery()
            )
            newest = query.where(Message.id >= top - NEWEST_WINDOW)
            newest = newest.order_by(Message.id.desc()).limit(limit)
            rows = (await self.session.execute(newest)).all()
            if len(rows) == limit:
                return [(row[0], row[1]) for row in rows]
            if not uncommon:
                few = (await self.session.execute(query.limit(RARE_MATCHES + 1))).all()
                if len(few) <= RARE_MATCHES:
                    return sorted(((row[0], row[1]) for row in few), reverse=True)[:limit]
        query = query.order_by(order.desc()).limit(limit)
        return [(row[0], row[1]) for row in (await self.session.execute(query)).all()]

    async def _has_uncommon_word(self, terms: SearchTerms) -> bool:
        """PostgreSQL: whether a word of the query is not among the most common words of
        the messages, as the planner's statistics of their text index list them (all are
        uncommon before the first ANALYZE). Asked once per page."""
        if terms.text not in self._uncommon:
            found = await self.session.scalar(
                _UNCOMMON_WORDS, {"config": TS_CONFIG, "query": terms.text}
            )
            self._uncommon[terms.text] = bool(found)
        return self._uncommon[terms.text]

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

    def _matches_otherwise(self, terms: SearchTerms) -> ColumnElement[bool]:
        """PostgreSQL: the condition on a conversation's row that `_other_hits` selects by,
        checked row by row: cheap for a few candidates, whatever the number of contacts
        that match a common name."""
        conditions = [_subject_matches(terms)]
        if terms.parts and len(terms.parts) == len(terms.words):
            conditions.append(
                exists().where(
                    Contact.id == Conversation.contact_id, self._contact_condition(terms)
                )
            )
        needles = _identity_needles(terms)
        if needles:
            conditions.append(
                exists().where(
                    Identity.contact_id == Conversation.contact_id,
                    or_(*(_contains(Identity.value, needle) for needle in needles)),
                )
            )
        if terms.numbers:
            conditions.append(
                exists().where(Lead.conversation_id == Conversation.id, Lead.id.in_(terms.numbers))
            )
        if terms.claim_number is not None:
            conditions.append(
                exists().where(
                    Claim.conversation_id == Conversation.id,
                    Claim.number == terms.claim_number,
                )
            )
        return or_(*conditions)

    async def matched_otherwise(
        self, terms: SearchTerms, conversation_ids: Sequence[int]
    ) -> set[int]:
        """Which of these conversations match by subject, contact, identity or number."""
        if not conversation_ids:
            return set()
        condition: ColumnElement[bool]
        if self._sqlite:
            condition = Conversation.id.in_(self._other_hits(terms))
        else:
            condition = self._matches_otherwise(terms)
        query = select(Conversation.id).where(Conversation.id.in_(conversation_ids), condition)
        return set((await self.session.scalars(query)).all())

    async def visible(self, conversation_ids: Sequence[int], viewer: Viewer) -> set[int]:
        if not conversation_ids:
            return set()
        query = select(Conversation.id).where(
            Conversation.id.in_(conversation_ids), visible_to(viewer)
        )
        return set((await self.session.scalars(query)).all())

    async def many_contacts(self, terms: SearchTerms, *, more_than: int) -> bool:
        """Whether more than `more_than` contacts have every part of the query in their name
        or company: read up to that many, which costs less than listing their
        conversations."""
        if not terms.parts or len(terms.parts) != len(terms.words):
            return False
        query: Select[int]
        if self._sqlite:
            match = " ".join(_fts_phrase(part) for part in terms.parts)
            query = select(_search_contacts.c.rowid).where(_fts_match("search_contacts", match))
        else:
            query = select(Contact.id).where(self._contact_condition(terms))
        rows = (await self.session.scalars(query.limit(more_than + 1))).all()
        return len(rows) > more_than

    async def other_ids(self, terms: SearchTerms, *, limit: int) -> list[int]:
        """Up to `limit` conversations matched otherwise than by a message (in no order, some
        perhaps twice): without removing duplicates the database stops at `limit`."""
        hits = union_all(*self._other_hits_by_part(terms)).subquery()
        query = select(hits.c[0]).limit(limit)
        return [row[0] for row in (await self.session.execute(query)).all()]

    async def keyed(
        self,
        conversation_ids: Sequence[int] | Select[int],
        viewer: Viewer,
        *,
        before: tuple[int, int] | None,
        limit: int,
    ) -> list[tuple[int, int]]:
        """(key, conversation id) of these conversations that `viewer` may see, the key being
        their latest message id (0 with none), highest first, below the cursor `before`."""
        if isinstance(conversation_ids, Sequence) and not conversation_ids:
            return []
        latest = (
            select(func.coalesce(func.max(Message.id), 0))
            .where(Message.conversation_id == Conversation.id)
            .scalar_subquery()
        )
        keyed = (
            select(latest.label("key"), Conversation.id.label("conversation_id"))
            .where(Conversation.id.in_(conversation_ids), visible_to(viewer))
            .subquery()
        )
        query = select(keyed.c.key, keyed.c.conversation_id)
        if before is not None:
            query = query.where(tuple_(keyed.c.key, keyed.c.conversation_id) < before)
        query = query.order_by(keyed.c.key.desc(), keyed.c.conversation_id.desc()).limit(limit)
        return [(row[0], row[1]) for row in (await self.session.execute(query)).all()]

    async def others_latest(
        self, terms: SearchTerms, viewer: Viewer, *, below: int | None, limit: int
    ) -> list[tuple[int, int]]:
        """(latest message id, conversation id) of the visible conversations matched
        otherwise than by a message, highest first, latest message id below `below`: one
        read for the page however many conversations match. For many such conversations,
        where computing each one's latest message would read them all.

        The newest messages are walked backwards and a message kept when its conversation
        matches and it is that conversation's latest, so each conversation comes once and
        the walk stops at `limit` conversations (not messages)."""
        query = select(Message.id, Message.conversation_id)
        if self._sqlite:
            # The matching contacts (the trigram tables give them at once) and the
            # conversations matched by subject or number listed once, and each message
            # walked checked against them through its conversation: `+ 0` keeps SQLite from
            # reading the listed conversations' messages through their index and sorting
            # them all.
            sources = union(self._subject_hits(terms), *self._number_hits(terms)).subquery()
            matches = [(Conversation.id + 0).in_(select(sources.c[0]))]
            contacts = self._contact_ids(terms)
            if contacts:
                contact_ids = union(*contacts).subquery()
                matches.append((Conversation.contact_id + 0).in_(select(contact_ids.c[0])))
            query = query.join(Conversation, Conversation.id == Message.conversation_id).where(
                or_(*matches), visible_to(viewer)
            )
        else:
            # Each message's conversation checked row by row (the planner keeps the checks
            # of a conversation already seen) while the primary key is walked backwards:
            # listing the matching conversations first would read them all.
            query = query.join(Conversation, Conversation.id == Message.conversation_id).where(
                self._matches_otherwise(terms), visible_to(viewer)
            )
        if below is not None:
            query = query.where(Message.id < below)
        later = aliased(Message)
        if self._sqlite:
            # One walk with every check on its row (spelled against the message: against
            # the conversation, SQLite would read the conversations first and sort).
            latest = (
                select(func.max(later.id))
                .where(later.conversation_id == Message.conversation_id)
                .scalar_subquery()
            )
            page = query.where(Message.id == latest).order_by(Message.id.desc()).limit(limit)
        else:
            # OFFSET 0 keeps the walk a subquery of its own, so that whether a message is
            # its conversation's latest is asked of the matching conversations' messages
            # only, after the walk, instead of of every message walked.
            walk = query.order_by(Message.id.desc()).offset(0).subquery()
            latest = (
                select(func.max(later.id))
                .where(later.conversation_id == walk.c.conversation_id)
                .scalar_subquery()
            )
            # `>=` where `==` is meant (no message of a conversation is above its latest):
            # the planner takes an equality with a subquery for a rare one, an inequality
            # for a common one, which keeps the walk.
            page = (
                select(walk.c.id, walk.c.conversation_id)
                .where(walk.c.id >= latest)
                .order_by(walk.c.id.desc())
                .limit(limit)
            )
        return [(row[0], row[1]) for row in (await self.session.execute(page)).all()]

    async def others_without_messages(
        self, terms: SearchTerms, viewer: Viewer, *, before: tuple[int, int] | None, limit: int
    ) -> list[tuple[int, int]]:
        """(0, conversation id) of the visible conversations matched otherwise that have no
        message at all, highest id first, below the cursor `before`."""
        query = select(Conversation.id).where(
            Conversation.id.in_(self._other_hits(terms)),
            visible_to(viewer),
            ~exists().where(Message.conversation_id == Conversation.id),
        )
        if before is not None and before[0] == 0:  # else every key 0 is below the cursor
            query = query.where(Conversation.id < before[1])
        query = query.order_by(Conversation.id.desc()).limit(limit)
        return [(0, conversation_id) for conversation_id in (await self.session.scalars(query))]

    async def message_texts(self, message_ids: Sequence[int]) -> dict[int, str]:
        if not message_ids:
            return {}
        rows = await self.session.execute(
            select(Message.id, Message.text).where(Message.id.in_(message_ids))
        )
        return {row[0]: row[1] for row in rows.all()}
