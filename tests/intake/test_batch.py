"""intake.batch.ingest_batch() and channels.base.IngestBatcher on SQLite and PostgreSQL.

The reference is `ingest()`, one message per transaction: a batch must leave the
same contacts, conversations, leads, suggestions and events behind, and answer
each message as `ingest()` would have, in input order.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, func, select, text

from channels.base import IngestBatcher
from intake.batch import Outcome, ingest_batch
from intake.identities import normalize
from intake.ingest import IntakeConfig, ingest
from intake.schemas import AttachmentIn, IdentityIn, InboundMessage, IngestResult, UpdateHandled
from storage.db import Database
from storage.errors import HubError, InvalidInput
from storage.group_commit import ShuttingDown
from storage.models import (
    Attachment,
    Channel,
    Contact,
    Conversation,
    Identity,
    IdentityKind,
    Lead,
    MergeSuggestion,
    Message,
    OutboxEvent,
)
from storage.telegram_repository import TelegramRepository
from tests.factories import create_channel

SHA = "ab" * 32
CONFIG = IntakeConfig()
_namespaces = itertools.count(1)


@pytest.fixture
async def channel(db: Database) -> Channel:
    return await create_channel(db, key="shop", kind="webform")


def inbound(
    channel: Channel, external_id: str, *identities: tuple[str, str], **fields: Any
) -> InboundMessage:
    return InboundMessage(
        channel_id=channel.id,
        channel_kind=channel.kind,
        external_id=external_id,
        identities=[IdentityIn(IdentityKind(kind), value) for kind, value in identities],
        **fields,
    )


async def batch(db: Database, messages: Sequence[InboundMessage]) -> list[Outcome]:
    async with db.transaction() as session:
        return await ingest_batch(session, messages, CONFIG)


async def count(db: Database, model: type[Any], *where: Any) -> int:
    async with db.read() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def rows(db: Database, model: type[Any], *where: Any) -> list[Any]:
    async with db.read() as session:
        return list((await session.scalars(select(model).where(*where).order_by(model.id))).all())


def results(outcomes: Sequence[Outcome]) -> list[IngestResult]:
    assert all(isinstance(o, IngestResult) for o in outcomes), outcomes
    return [o for o in outcomes if isinstance(o, IngestResult)]


async def assert_results_match_rows(
    db: Database,
    messages: Sequence[InboundMessage],
    outcomes: Sequence[IngestResult | BaseException],
) -> None:
    """Every id in every result names the row it should: message, conversation, contact, lead."""
    async with db.read() as session:
        for message, outcome in zip(messages, outcomes, strict=True):
            if not isinstance(outcome, IngestResult):
                continue
            stored = await session.get(Message, outcome.message_id)
            assert stored is not None
            assert (stored.channel_id, stored.external_id) == (
                message.channel_id,
                message.external_id,
            )
            assert stored.conversation_id == outcome.conversation_id
            conversation = await session.get(Conversation, outcome.conversation_id)
            assert conversation is not None
            if outcome.conversation_opened:
                assert conversation.contact_id == outcome.contact_id
                assert conversation.subject == message.subject
            if not outcome.duplicate and message.identities:
                values = [normalize(i.kind, i.value).value for i in message.identities]
                owners = await session.scalars(
                    select(Identity.contact_id).where(Identity.value.in_(values))
                )
                assert outcome.contact_id in set(owners.all())
            if outcome.lead_id is not None:
                lead = await session.get(Lead, outcome.lead_id)
                assert lead is not None
                assert lead.conversation_id == outcome.conversation_id
                assert lead.contact_id == conversation.contact_id
                assert lead.channel_id == message.channel_id
            if not outcome.duplicate:
                attached = (
                    await session.scalars(
                        select(Attachment.filename)
                        .where(Attachment.message_id == outcome.message_id)
                        .order_by(Attachment.id)
                    )
                ).all()
                assert list(attached) == [a.filename for a in message.attachments]


# -- equivalence with ingest(), property-based ------------------------------------------


@dataclass(frozen=True)
class Spec:
    """A message in the abstract: identities are (kind, index) into a per-namespace pool."""

    ext: int
    identities: tuple[tuple[str, int], ...] = ()
    thread: int | None = None
    opens_lead: bool = True
    attachments: int = 0
    name: str | None = None
    language: str | None = None


# A small pool, so that messages share identities; now and then one that is refused.
_identity = st.sampled_from(
    [("email", n) for n in range(4)]
    + [(kind, n) for kind in ("phone", "telegram") for n in range(3)]
    + [("bad", 0)]
)
_spec = st.builds(
    Spec,
    ext=st.integers(0, 11),
    identities=st.lists(_identity, max_size=3).map(tuple),
    thread=st.sampled_from([None, None, None, 0, 1]),
    opens_lead=st.sampled_from([True, True, False]),
    attachments=st.integers(0, 2),
    name=st.sampled_from([None, None, "", "Иван", "Мария"]),
    language=st.sampled_from([None, None, "ru", "en"]),
)


class Namespace:
    """One channel and one set of identities no other namespace in the database uses."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.number = next(_namespaces)
        self.token = uuid.uuid4().hex[:8]

    def identity(self, kind: str, index: int, position: int) -> tuple[str, str]:
        if kind == "email":
            # Spelled differently from message to message: normalisation makes them one.
            local = f"e{index}.{self.token}"
            return "email", (local.upper() if position % 2 else local) + "@Example.RU"
        if kind == "phone":
            digits = f"{self.number % 100000:05d}{index:02d}"
            return "phone", (f"+7912{digits}" if position % 2 else f"8 (912) {digits}")
        if kind == "telegram":
            return "telegram", str(10**9 + self.number * 10 + index)
        return "phone", "12345"  # cannot be normalised

    def values(self) -> list[str]:
        """The normalised values of every identity of the pool."""
        pool = [("email", n) for n in range(4)] + [
            (kind, n) for kind in ("phone", "telegram") for n in range(3)
        ]
        return [normalize(*self.identity(kind, n, 0)).value for kind, n in pool]

    def message(self, spec: Spec, position: int) -> InboundMessage:
        return inbound(
            self.channel,
            f"m-{spec.ext}",
            *(self.identity(kind, index, position) for kind, index in spec.identities),
            text=f"message {position}",
            subject=f"subject {spec.ext}" if spec.ext % 3 == 0 else None,
            contact_name=spec.name,
            contact_language=spec.language,
            thread_key=None if spec.thread is None else f"thread-{spec.thread}",
            opens_lead=spec.opens_lead,
            attachments=[
                AttachmentIn(f"file{n}.pdf", "application/pdf", 10 + n, SHA)
                for n in range(spec.attachments)
            ],
        )


async def ingest_each(db: Database, messages: Sequence[InboundMessage]) -> list[Outcome]:
    """The reference: ingest() with a transaction per message."""
    outcomes: list[Outcome] = []
    for message in messages:
        try:
            async with db.transaction() as session:
                outcomes.append(await ingest(session, message, CONFIG))
        except HubError as exc:
            outcomes.append(exc)
    return outcomes


async def picture(
    db: Database, namespace: Namespace, outcomes: Sequence[Outcome]
) -> dict[str, Any]:
    """What a namespace holds and what its messages were told, with ids replaced by labels."""
    channel = namespace.channel
    async with db.read() as session:
        # A continuation from someone else goes into another contact's conversation.
        contact_ids = {o.contact_id for o in outcomes if isinstance(o, IngestResult)}
        contact_ids |= set(
            (
                await session.scalars(
                    select(Conversation.contact_id).where(Conversation.channel_id == channel.id)
                )
            ).all()
        )
        contact_ids |= set(
            (
                await session.scalars(
                    select(Identity.contact_id).where(Identity.value.in_(namespace.values()))
                )
            ).all()
        )
        contacts = {
            c.id: c
            for c in (await session.scalars(select(Contact).where(Contact.id.in_(contact_ids))))
        }
        identity_counts = dict(
            (
                await session.execute(
                    select(Identity.contact_id, func.count())
                    .where(Identity.contact_id.in_(contact_ids))
                    .group_by(Identity.contact_id)
                )
            ).all()
        )
        suggestions = (
            await session.scalars(
                select(MergeSuggestion)
                .where(MergeSuggestion.contact_id.in_(contact_ids))
                .order_by(MergeSuggestion.id)
            )
        ).all()
        events = (await session.scalars(select(OutboxEvent).order_by(OutboxEvent.id))).all()
        counts = {
            "messages": await session.scalar(
                select(func.count()).where(Message.channel_id == channel.id)
            ),
            "conversations": await session.scalar(
                select(func.count()).where(Conversation.channel_id == channel.id)
            ),
            "leads": await session.scalar(
                select(func.count()).where(Lead.channel_id == channel.id)
            ),
            "attachments": await session.scalar(
                select(func.count())
                .select_from(Attachment)
                .join(Message, Message.id == Attachment.message_id)
                .where(Message.channel_id == channel.id)
            ),
            "contacts": len(contact_ids),
            "identities": sum(identity_counts.values()),
        }
    labels: dict[str, dict[int, int]] = {"contact": {}, "conversation": {}}

    def label(kind: str, value: int) -> int:
        return labels[kind].setdefault(value, len(labels[kind]))

    answers: list[Any] = []
    for outcome in outcomes:
        if isinstance(outcome, HubError):
            answers.append(("refused", type(outcome).__name__, outcome.code))
            continue
        contact = contacts.get(outcome.contact_id)
        assert contact is not None, "a result names a contact of this namespace"
        answers.append(
            {
                "duplicate": outcome.duplicate,
                "lead": outcome.lead_id is not None,
                "conversation_opened": outcome.conversation_opened,
                "contact": label("contact", outcome.contact_id),
                "conversation": label("conversation", outcome.conversation_id),
                "contact_identities": identity_counts.get(outcome.contact_id, 0),
                "contact_name": contact.name,
                "contact_language": contact.language,
            }
        )
    mine = [
        e.topic
        for e in events
        if e.payload.get("channel_id") == channel.id
        or (e.topic == "contact.merge_suggested" and e.payload["contact_id"] in contact_ids)
    ]
    pairs = sorted(
        (label("contact", s.contact_id), label("contact", s.other_contact_id)) for s in suggestions
    )
    return {
        "answers": answers,
        "counts": counts,
        "merge_suggestions": pairs,
        "events": dict(Counter(mine)),
    }


# Cases found while writing this: each names what it caught in intake/batch.py.
_EQUIVALENCE_EXAMPLES = [
    # A continuation (careful path) creates e0's contact first; a later form only joins it.
    ([], [Spec(0, (("email", 0),), thread=0, name="Иван"), Spec(1, (("email", 0),), name="Мария")]),
    # A linking message goes to the careful path; a later form with its new phone must follow it.
    (
        [],
        [
            Spec(0, (("email", 0),)),
            Spec(1, (("email", 1),)),
            Spec(2, (("email", 0), ("email", 1), ("phone", 0))),
            Spec(3, (("phone", 0),)),
        ],
    ),
    # The careful path runs after the bulk one: the contact it creates must still be the older.
    (
        [],
        [
            Spec(0, (("email", 0),), thread=0),
            Spec(1, (("email", 1),)),
            Spec(2, (("email", 0), ("email", 1))),
        ],
    ),
    # A later message of the batch names a contact created earlier in it: its name fills in.
    ([], [Spec(0, (("email", 0),)), Spec(1, (("email", 0),), name="Иван", language="ru")]),
    # A known contact whose name is empty gets one, as ingest() gives it.
    ([Spec(0, (("email", 0),), name="")], [Spec(1, (("email", 0),), name="Иван")]),
    # Two messages for one known contact, the first continuing a thread: first name wins.
    (
        [Spec(0, (("email", 0), ("phone", 0)))],
        [Spec(1, (("email", 0),), thread=0, name="Иван"), Spec(2, (("phone", 0),), name="Мария")],
    ),
    # A repeat whose first went through the careful path answers as ingest() does.
    (
        [Spec(0, (("email", 0),), thread=0)],
        [Spec(1, (("email", 1),), thread=0), Spec(1, (("email", 1),))],
    ),
    # The same external id: stored once; the repeat with an unusable identity is a duplicate.
    ([Spec(0, (("email", 0),))], [Spec(0, (("bad", 0),)), Spec(1, ()), Spec(1, (("bad", 0),))]),
]


def _with_examples(test: Any) -> Any:
    for before, messages in _EQUIVALENCE_EXAMPLES:
        test = example(before=before, messages=messages)(test)
    return test


class TestEquivalentToIngest:
    @settings(
        max_examples=25,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(
        before=st.lists(_spec, max_size=4),
        messages=st.lists(_spec, min_size=1, max_size=20),
    )
    @_with_examples
    async def test_batch_leaves_what_ingest_one_by_one_leaves(
        self, db: Database, before: list[Spec], messages: list[Spec]
    ) -> None:
        batched = Namespace(await create_channel(db))
        single = Namespace(await create_channel(db))
        for namespace in (batched, single):
            await ingest_each(
                db, [namespace.message(spec, -1 - n) for n, spec in enumerate(before)]
            )
        batch_messages = [batched.message(spec, n) for n, spec in enumerate(messages)]
        single_messages = [single.message(spec, n) for n, spec in enumerate(messages)]

        got = await batch(db, batch_messages)
        expected = await ingest_each(db, single_messages)

        assert len(got) == len(messages)
        assert await picture(db, batched, got) == await picture(db, single, expected)
        await assert_results_match_rows(db, batch_messages, got)


# -- specific cases -----------------------------------------------------------------------


class TestBatch:
    async def test_same_external_id_twice_is_stored_once(
        self, db: Database, channel: Channel
    ) -> None:
        message = inbound(channel, "m-1", ("email", "a@example.ru"))

        first, again = results(await batch(db, [message, message]))

        assert (first.duplicate, again.duplicate) == (False, True)
        assert (again.message_id, again.conversation_id, again.contact_id, again.lead_id) == (
            first.message_id,
            first.conversation_id,
            first.contact_id,
            first.lead_id,
        )
        assert again.conversation_opened is False
        for model in (Contact, Identity, Conversation, Message, Lead):
            assert await count(db, model) == 1, model.__name__
        assert await count(db, OutboxEvent) == 3

    async def test_message_stored_before_the_batch_is_a_duplicate(
        self, db: Database, channel: Channel
    ) -> None:
        (stored,) = results(await batch(db, [inbound(channel, "m-1", ("email", "a@example.ru"))]))

        (again,) = results(await batch(db, [inbound(channel, "m-1", ("email", "a@example.ru"))]))

        assert again.duplicate is True
        assert (again.message_id, again.conversation_id, again.contact_id, again.lead_id) == (
            stored.message_id,
            stored.conversation_id,
            stored.contact_id,
            stored.lead_id,
        )
        assert await count(db, Message) == 1
        assert await count(db, OutboxEvent) == 3

    async def test_new_messages_sharing_a_new_email_make_one_contact(
        self, db: Database, channel: Channel
    ) -> None:
        first, second = results(
            await batch(
                db,
                [
                    inbound(channel, "m-1", ("email", "New@Example.ru"), ("phone", "89123456789")),
                    inbound(channel, "m-2", ("telegram", "777"), ("email", "new@example.ru")),
                ],
            )
        )

        assert first.contact_id == second.contact_id
        assert first.conversation_id != second.conversation_id
        assert {(i.kind, i.value, i.contact_id) for i in await rows(db, Identity)} == {
            ("email", "new@example.ru", first.contact_id),
            ("phone", "+79123456789", first.contact_id),
            ("telegram", "777", first.contact_id),
        }
        assert await count(db, Contact) == 1
        assert await count(db, Lead) == 2

    async def test_identities_of_two_known_contacts_go_to_the_oldest_with_a_suggestion(
        self, db: Database, channel: Channel
    ) -> None:
        older, newer = results(
            await batch(
                db,
                [
                    inbound(channel, "m-1", ("email", "ivan@example.ru")),
                    inbound(channel, "m-2", ("phone", "+79123456789")),
                ],
            )
        )
        assert older.contact_id != newer.contact_id

        (result,) = results(
            await batch(
                db,
                [
                    inbound(
                        channel,
                        "m-3",
                        ("phone", "89123456789"),
                        ("email", "ivan@example.ru"),
                        ("telegram", "555"),
                    )
                ],
            )
        )

        assert result.contact_id == older.contact_id
        assert result.conversation_opened is True and result.lead_id is not None
        (suggestion,) = await rows(db, MergeSuggestion)
        assert (suggestion.contact_id, suggestion.other_contact_id) == (
            older.contact_id,
            newer.contact_id,
        )
        assert {(i.value, i.contact_id) for i in await rows(db, Identity)} == {
            ("ivan@example.ru", older.contact_id),
            ("+79123456789", newer.contact_id),
            ("555", older.contact_id),
        }
        topics = [e.topic for e in await rows(db, OutboxEvent)]
        assert topics.count("contact.merge_suggested") == 1

    async def test_identity_that_cannot_be_normalised_refuses_only_its_message(
        self, db: Database, channel: Channel
    ) -> None:
        messages = [
            inbound(channel, "m-1", ("email", "a@example.ru")),
            inbound(channel, "m-2", ("email", "b@example.ru"), ("phone", "12345")),
            inbound(channel, "m-3", ("email", "c@example.ru")),
        ]

        first, refused, third = await batch(db, messages)

        assert isinstance(refused, InvalidInput)
        assert refused.code == "invalid_phone"
        assert isinstance(first, IngestResult) and isinstance(third, IngestResult)
        assert [m.external_id for m in await rows(db, Message)] == ["m-1", "m-3"]
        assert {i.value for i in await rows(db, Identity)} == {"a@example.ru", "c@example.ru"}
        await assert_results_match_rows(db, messages, [first, refused, third])

    async def test_known_message_with_an_unusable_identity_is_a_duplicate(
        self, db: Database, channel: Channel
    ) -> None:
        # ingest() looks the message up before it reads the identities; so does a batch.
        (stored,) = results(await batch(db, [inbound(channel, "m-1", ("email", "a@example.ru"))]))

        again, repeat = await batch(
            db,
            [
                inbound(channel, "m-1", ("phone", "12345")),
                inbound(channel, "m-1", ("phone", "12345")),
            ],
        )

        assert isinstance(again, IngestResult) and again.duplicate is True
        assert again.message_id == stored.message_id
        assert isinstance(repeat, IngestResult) and repeat.duplicate is True

    async def test_results_are_in_input_order(self, db: Database, channel: Channel) -> None:
        await batch(db, [inbound(channel, "old", ("email", "known@example.ru"))])
        messages = [
            inbound(channel, "t-1", ("email", "a@example.ru"), thread_key="chat"),  # careful
            inbound(channel, "f-1", ("email", "b@example.ru")),  # bulk
            inbound(channel, "old", ("email", "known@example.ru")),  # seen before
            inbound(channel, "t-2", ("email", "a@example.ru"), thread_key="chat"),  # careful
            inbound(channel, "f-2", ("email", "known@example.ru")),  # bulk, known contact
            inbound(channel, "f-1", ("email", "b@example.ru")),  # repeat
            inbound(channel, "f-3", ("phone", "12345")),  # refused
            inbound(channel, "f-4", ("email", "c@example.ru")),  # bulk
        ]

        outcomes = await batch(db, messages)

        assert isinstance(outcomes[6], InvalidInput)
        stored = {m.id: m.external_id for m in await rows(db, Message)}
        assert [
            stored[o.message_id] if isinstance(o, IngestResult) else None for o in outcomes
        ] == ["t-1", "f-1", "old", "t-2", "f-2", "f-1", None, "f-4"]
        assert [getattr(o, "duplicate", None) for o in outcomes] == [
            False,
            False,
            True,
            False,
            False,
            True,
            None,
            False,
        ]
        await assert_results_match_rows(db, messages, outcomes)

    async def test_ids_name_their_rows_in_a_large_batch(
        self, db: Database, channel: Channel
    ) -> None:
        # On SQLite the ids come back sorted, not in row order (insert_returning_ids):
        # this holds only if a multi-row INSERT numbers its rows in VALUES order.
        other = await create_channel(db, key="other", kind="telegram")
        await batch(
            db, [inbound(channel, f"k-{n}", ("email", f"k{n}@example.ru")) for n in range(5)]
        )
        messages = []
        for n in range(120):
            identities = [("email", f"c{n % 40}@example.ru")]
            if n % 7 == 0:
                identities.append(("email", f"k{n % 5}@example.ru"))
            if n % 11 == 0:
                identities.append(("phone", f"+7912555{n:04d}"))
            messages.append(
                inbound(
                    other if n % 3 == 0 else channel,
                    f"big-{n}",
                    *identities,
                    text=f"#{n}",
                    subject=f"subject {n}" if n % 2 else None,
                    contact_name=f"name {n}" if n % 4 == 0 else None,
                    thread_key="chat" if n % 17 == 0 else None,
                    opens_lead=n % 5 != 0,
                    attachments=[
                        AttachmentIn(f"m{n}-{k}.pdf", "application/pdf", k + 1, SHA)
                        for k in range(n % 3)
                    ],
                )
            )

        outcomes = results(await batch(db, messages))

        assert len({o.message_id for o in outcomes}) == len(messages)
        assert not any(o.duplicate for o in outcomes)
        await assert_results_match_rows(db, messages, outcomes)
        assert await count(db, Attachment) == sum(len(m.attachments) for m in messages)
        received = {
            e.payload["message_id"]: e.payload
            for e in await rows(db, OutboxEvent)
            if e.topic == "message.received"
        }
        leads = {
            e.payload["lead_id"]: e.payload
            for e in await rows(db, OutboxEvent)
            if e.topic == "lead.created"
        }
        for message, outcome in zip(messages, outcomes, strict=True):
            assert received[outcome.message_id] == {
                "conversation_id": outcome.conversation_id,
                "contact_id": outcome.contact_id,
                "channel_id": message.channel_id,
                "message_id": outcome.message_id,
                "continues": not outcome.conversation_opened,
            }
            if outcome.lead_id is not None:
                assert leads[outcome.lead_id]["conversation_id"] == outcome.conversation_id

    async def test_continued_conversations_are_stored_set_at_a_time(
        self, db: Database, channel: Channel
    ) -> None:
        chats = 30
        await batch(db, [chat_message(channel, n, 0) for n in range(chats)])
        messages = [chat_message(channel, n, 1) for n in range(chats)]

        with Statements(db) as statements:
            outcomes = results(await batch(db, messages))

        # A statement or two per kind of row for the whole batch, not a dozen per message.
        assert statements.count < 20, statements.count
        assert not any(o.conversation_opened or o.duplicate for o in outcomes)
        await assert_results_match_rows(db, messages, outcomes)
        assert await count(db, Conversation) == chats
        conversations = {c.id: c for c in await rows(db, Conversation)}
        for message, outcome in zip(messages, outcomes, strict=True):
            assert conversations[outcome.conversation_id].last_inbound_at == message.received_at
        received = [
            e.payload
            for e in await rows(db, OutboxEvent)
            if e.topic == "message.received" and e.payload["continues"]
        ]
        assert len(received) == chats

    async def test_message_of_an_update_a_dialogue_handled_is_not_stored(
        self, db: Database
    ) -> None:
        bot = await create_channel(db, key="bot", kind="telegram")
        async with db.transaction() as session:
            await TelegramRepository(session).record_update(bot.id, 2)
        messages = [
            chat_message(bot, n, 0, unless_update_handled=update)
            for n, update in enumerate((1, 2, 3))
        ]

        outcomes = await batch(db, messages)

        assert isinstance(outcomes[1], UpdateHandled)
        assert [type(o) for o in outcomes[::2]] == [IngestResult, IngestResult]
        assert await count(db, Message) == 2
        async with db.transaction() as session:
            with pytest.raises(UpdateHandled):
                await ingest(session, messages[1], CONFIG)
            stored = await ingest(session, chat_message(bot, 1, 1, unless_update_handled=4))
        assert not stored.duplicate and await count(db, Message) == 3


def chat_message(channel: Channel, chat: int, n: int, **fields: Any) -> InboundMessage:
    """The n-th message of a Telegram-like chat: its thread is the chat."""
    return inbound(
        channel,
        f"tg:{chat}:{n}",
        ("telegram", str(700_000 + chat)),
        thread_key=f"tg:{chat}",
        text=f"message {n} of chat {chat}",
        received_at=datetime(2026, 11, 2, 10, n, chat % 60, tzinfo=UTC),
        **fields,
    )


class Statements:
    """Counts the statements the write engine runs (executemany counts once)."""

    def __init__(self, db: Database) -> None:
        self.engine = db.engine.sync_engine
        self.count = 0

    def _statement(self, *_args: Any) -> None:
        self.count += 1

    def __enter__(self) -> Statements:
        event.listen(self.engine, "before_cursor_execute", self._statement)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._statement)


# -- the group committer -------------------------------------------------------------------


@pytest.fixture
async def batcher(db: Database) -> AsyncIterator[IngestBatcher]:
    """Set up as build_context does it."""
    batcher = IngestBatcher(db, CONFIG, committers=1 if db.is_sqlite else 4)
    yield batcher
    await batcher.close()


@pytest.fixture
async def one_committer(db: Database) -> AsyncIterator[IngestBatcher]:
    """Messages submitted together form exactly one batch."""
    batcher = IngestBatcher(db, CONFIG, committers=1)
    yield batcher
    await batcher.close()


class Transactions:
    """Counts the write engine's commits and rollbacks."""

    def __init__(self, db: Database) -> None:
        self.engine = db.engine.sync_engine
        self.commits = 0
        self.rollbacks = 0

    def _commit(self, _conn: Any) -> None:
        self.commits += 1

    def _rollback(self, _conn: Any) -> None:
        self.rollbacks += 1

    def __enter__(self) -> Transactions:
        event.listen(self.engine, "commit", self._commit)
        event.listen(self.engine, "rollback", self._rollback)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(self.engine, "commit", self._commit)
        event.remove(self.engine, "rollback", self._rollback)


class TestIngestBatcher:
    async def test_concurrent_messages_share_transactions(
        self, db: Database, channel: Channel, batcher: IngestBatcher
    ) -> None:
        messages = [
            inbound(channel, f"m-{n}", ("email", f"client{n}@example.ru"), text=f"#{n}")
            for n in range(200)
        ]

        with Transactions(db) as transactions:
            outcomes = await asyncio.gather(*(batcher.submit(m) for m in messages))

        assert len({o.message_id for o in outcomes}) == 200
        assert not any(o.duplicate for o in outcomes)
        for model in (Contact, Identity, Conversation, Message, Lead):
            assert await count(db, model) == 200, model.__name__
        assert await count(db, OutboxEvent) == 600
        await assert_results_match_rows(db, messages, outcomes)
        assert 1 <= transactions.commits <= 200 // 2, "batches of more than one message"
        assert transactions.rollbacks == 0

    async def test_same_message_twenty_times_is_stored_once(
        self, db: Database, channel: Channel, batcher: IngestBatcher
    ) -> None:
        message = inbound(channel, "race-1", ("email", "new@example.ru"), ("phone", "89123456789"))

        outcomes = await asyncio.gather(*(batcher.submit(message) for _ in range(20)))

        assert sum(not o.duplicate for o in outcomes) == 1
        assert (
            len({(o.message_id, o.conversation_id, o.contact_id, o.lead_id) for o in outcomes}) == 1
        )
        for model in (Contact, Conversation, Message, Lead):
            assert await count(db, model) == 1, model.__name__
        assert await count(db, Identity) == 2

    async def test_refused_message_gets_its_error_and_the_others_are_stored(
        self, db: Database, channel: Channel, one_committer: IngestBatcher
    ) -> None:
        messages = [
            inbound(channel, "m-1", ("email", "a@example.ru")),
            inbound(channel, "m-2", ("phone", "12345")),
            inbound(channel, "m-3", ("email", "b@example.ru")),
        ]

        with Transactions(db) as transactions:
            first, refused, third = await asyncio.gather(
                *(one_committer.submit(m) for m in messages), return_exceptions=True
            )

        assert isinstance(refused, InvalidInput)
        assert isinstance(first, IngestResult) and isinstance(third, IngestResult)
        assert await count(db, Message) == 2
        assert transactions.commits == 1

    async def test_batch_that_fails_falls_back_to_a_transaction_per_message(
        self, db: Database, channel: Channel, one_committer: IngestBatcher
    ) -> None:
        # A naive received_at fails at flush (UTCDateTime), taking the whole batch with it.
        messages = [
            inbound(channel, f"m-{n}", ("email", f"c{n}@example.ru"), text=f"#{n}")
            for n in range(6)
        ]
        messages[3].received_at = datetime(2026, 1, 1, 12, 0)

        with Transactions(db) as transactions:
            outcomes = await asyncio.gather(
                *(one_committer.submit(m) for m in messages), return_exceptions=True
            )

        assert "naive datetime" in str(outcomes[3])
        stored = [o for o in outcomes if isinstance(o, IngestResult)]
        assert len(stored) == 5 and not any(o.duplicate for o in stored)
        assert sorted(m.external_id for m in await rows(db, Message)) == [
            "m-0",
            "m-1",
            "m-2",
            "m-4",
            "m-5",
        ]
        await assert_results_match_rows(db, messages, outcomes)
        # The batch rolled back, then each message had its own transaction.
        assert transactions.commits == 5
        assert transactions.rollbacks == 2

    # PostgreSQL only: SQLite has one writer, so no other process inserts mid-batch.
    @pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
    async def test_race_on_a_new_identity_falls_back_and_finds_it(
        self, db: Database, db_url: str, channel: Channel, one_committer: IngestBatcher
    ) -> None:
        messages = [
            inbound(channel, f"m-{n}", ("email", f"c{n}@example.ru"), text=f"#{n}")
            for n in range(4)
        ] + [inbound(channel, "m-race", ("email", "race@example.ru"), ("telegram", "42"))]
        other = Database(db_url, pool_size=2)
        try:
            with Transactions(db) as transactions:
                async with other.transaction() as session:
                    # Another hub process stores the same new address, not yet committed.
                    racer = Contact(name="racer", attributes={})
                    session.add(racer)
                    await session.flush()
                    session.add(
                        Identity(contact_id=racer.id, kind="email", value="race@example.ru")
                    )
                    await session.flush()
                    pending = asyncio.ensure_future(
                        asyncio.gather(*(one_committer.submit(m) for m in messages))
                    )
                    await _until_a_writer_waits_for_a_lock(other)
                outcomes = await pending
        finally:
            await other.dispose()

        assert not any(o.duplicate for o in outcomes)
        assert outcomes[-1].contact_id == racer.id
        assert await count(db, Message) == 5
        assert {
            (i.value, i.contact_id) for i in await rows(db, Identity, Identity.kind != "email")
        } == {("42", racer.id)}
        await assert_results_match_rows(db, messages, outcomes)
        # The batch rolled back on the unique address, then each message went alone.
        assert transactions.rollbacks == 1
        assert transactions.commits == len(messages)

    async def test_close_waits_for_queued_messages(self, db: Database, channel: Channel) -> None:
        batcher = IngestBatcher(db, CONFIG, committers=1 if db.is_sqlite else 4)
        messages = [inbound(channel, f"m-{n}", ("email", f"c{n}@example.ru")) for n in range(30)]
        submits = [asyncio.ensure_future(batcher.submit(m)) for m in messages]
        await asyncio.sleep(0)  # the requests reach the queue

        await batcher.close()

        assert await count(db, Message) == 30
        outcomes = await asyncio.gather(*submits)
        assert len({o.message_id for o in outcomes}) == 30
        # A closed batcher refuses new work with a clear 503 rather than queueing it.
        with pytest.raises(ShuttingDown) as refused:
            await batcher.submit(inbound(channel, "late", ("email", "late@example.ru")))
        assert refused.value.status_code == 503
        assert await count(db, Message) == 30


async def _until_a_writer_waits_for_a_lock(db: Database) -> None:
    for _ in range(500):
        async with db.read() as session:
            waiting = await session.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            )
        if waiting:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the batch never waited for the other transaction")
