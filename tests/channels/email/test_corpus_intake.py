"""Every real-world sample under ../shared/corpora/email through the real path: appended
to dovecot, fetched by the poller, taken in. Each becomes a message or a quarantined item
with a reason, and the poller keeps going; the Cyrillic samples read as Russian.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from channels.email.service import EmailIntake, Mailbox, Taken
from storage.models import Attachment, Conversation, MailboxState, Message, QuarantinedEmail
from tests.channels.email.flow import IMAP_USER, MailHub
from tests.conftest import CORPORA, missing_part
from tests.mailservers import Dovecot, SmtpRecorder

pytestmark = pytest.mark.asyncio

EMAIL = CORPORA / "email"

# Sample (file name) -> words its subject, text or files must show.
RUSSIAN = {
    "message_with_koi8r_filename_attachments.eml": [
        "Предложения от НИУ ВШЭ на 2016 год",
        "Высшая школа экономики",
        "Ведомости.pdf",
    ],
    "message_with_single_byte_encoding.eml": ["Это сообщение имеет неправильную кодировка."],
    "message_with_invalid_content_for_declared_encoding.eml": [
        "Это сообщение имеет неправильную кодировка."
    ],
    "message_with_single_byte_extended_subject_encoding.eml": [
        "Узнай как зарабатывать от 1000$ в неделю!"
    ],
    "attachment_8bit.eml": ["отдел расписания"],
}


class RecordingIntake(EmailIntake):
    """The real intake, remembering what became of each UID."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.outcomes: dict[int, Taken] = {}

    async def take_batch(
        self, mailbox: Mailbox, fetched: Sequence[tuple[int, bytes]], uidvalidity: int | None
    ) -> list[Taken]:
        taken = await super().take_batch(mailbox, fetched, uidvalidity)
        self.outcomes.update(zip([uid for uid, _ in fetched], taken, strict=True))
        return taken


async def test_every_corpus_email_is_taken_in_or_quarantined(
    app: Any, client: httpx.AsyncClient, dovecot: Dovecot, smtp_server: SmtpRecorder
) -> None:
    if not EMAIL.is_dir():
        missing_part(f"email corpora not found at {EMAIL}")
    samples = sorted(p for p in EMAIL.rglob("*.eml") if p.is_file())
    assert len(samples) > 100
    hub = MailHub(app, client, dovecot, smtp_server)
    await hub.setup()
    recording = RecordingIntake(hub.context)
    hub.intake = recording
    uids = {dovecot.deliver(IMAP_USER, path.read_bytes()): path for path in samples}

    assert await hub.poll() == len(samples)

    assert set(recording.outcomes) == set(uids), "a message was skipped"
    by_message: dict[int, str] = {}
    for uid, taken in recording.outcomes.items():
        name = str(uids[uid].relative_to(EMAIL))
        assert taken.outcome in {"stored", "duplicate", "bounce", "quarantined"}, name
        if taken.outcome == "quarantined":
            assert taken.reason and taken.quarantine_id, name
        else:
            assert taken.message_id is not None, name
            by_message[taken.message_id] = name
    async with hub.context.db.read() as session:
        state = await session.get(MailboxState, hub.channel_id)
        assert state is not None and state.last_uid == max(uids)
        stored = (await session.scalars(select(Message))).all()
        quarantined = (await session.scalars(select(QuarantinedEmail))).all()
        assert {m.id for m in stored} == set(by_message)
        assert all(q.reason for q in quarantined)
        subjects = {
            c.id: c.subject or "" for c in (await session.scalars(select(Conversation))).all()
        }
        files: dict[int, list[str]] = {}
        for file in (await session.scalars(select(Attachment))).all():
            files.setdefault(file.message_id, []).append(file.filename)

    seen_russian = set()
    for message in stored:
        name = by_message[message.id]
        name = name.rsplit("/", 1)[-1]
        if name not in RUSSIAN:
            continue
        shown = " ".join(
            [
                subjects[message.conversation_id],
                message.meta["email"]["subject"],
                message.text,
                message.meta["email"].get("full_text") or "",
                *files.get(message.id, []),
            ]
        )
        for words in RUSSIAN[name]:
            assert words in shown, f"{name}: {words!r} not in {shown[:300]!r}"
        assert "\ufffd" not in shown
        seen_russian.add(name)
    assert seen_russian == set(RUSSIAN)
