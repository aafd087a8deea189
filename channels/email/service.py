"""Taking one raw email in: parse, keep the original, thread, ingest, remember its ids.

A message that cannot be taken in goes to the quarantine with its reason and
its raw bytes; nothing here raises for bad mail, so one message never blocks
the mailbox behind it.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from channels.base import HubContext
from channels.email.compose import conversation_of_token, subject_tag
from channels.email.config import EmailChannelConfig
from channels.email.parse import ParsedEmail, UnparseableEmail, parse_email
from intake.batch import ingest_batch
from intake.claims.service import ClaimIn, file_claim
from intake.rows import fit_key
from intake.schemas import AttachmentIn, IdentityIn, InboundMessage, IngestResult
from storage.blobs import BlobRef
from storage.email_repository import EmailRepository, ThreadMatch
from storage.errors import HubError
from storage.events import EmailQuarantined, MessageDelayed, MessageFailed
from storage.models import ChannelKind, IdentityKind, MessageStatus
from storage.outbox import emit
from storage.ratelimit import MemoryRateLimiter, Rate, RateLimiter
from storage.retry import in_transaction

log = logging.getLogger(__name__)

# Parsing a big message would hold the event loop; past this size it runs in a thread.
THREAD_PARSE_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class Mailbox:
    channel_id: int
    key: str
    config: EmailChannelConfig


@dataclass(frozen=True, slots=True)
class Taken:
    outcome: Literal["stored", "duplicate", "quarantined", "bounce"]
    message_id: int | None = None
    conversation_id: int | None = None
    quarantine_id: int | None = None
    reason: str | None = None


def _compressed(raw: bytes) -> bytes:
    """The original kept gzip-compressed; no timestamp, so the same mail is one blob."""
    return gzip.compress(raw, 6, mtime=0)


def _files(parsed: ParsedEmail) -> list[tuple[bytes, str]]:
    """The attachments to store: all but those dropped for their size."""
    return [(f.data, f.content_type) for f in parsed.attachments if not f.truncated_reason]


def sender_of(parsed: ParsedEmail, config: EmailChannelConfig) -> str | None:
    """Who a mail is from: its From address, or None if it has none.

    A delivery report needs no sender: a bounce's return path is the null sender
    (RFC 5321, `From: MAILER-DAEMON <>`), so it is filed as from the mailer daemon of
    the host that wrote it (or of the mailbox's own domain when it names none).
    """
    if parsed.from_address:
        return parsed.from_address
    if not parsed.delivery_report:
        return None
    host = parsed.bounce.reporting_mta if parsed.bounce else None
    return f"mailer-daemon@{host or config.message_id_domain}"


def header_key(message_id: str) -> str:
    """A Message-ID as stored: without <>, and hashed when longer than the column."""
    return fit_key(message_id.strip().strip("<>").strip())


@dataclass(slots=True)
class _Prepared:
    """A parsed message with its files stored, ready for one transaction."""

    parsed: ParsedEmail
    message: InboundMessage
    own_id: str | None
    hints: list[str]


class EmailIntake:
    def __init__(self, context: HubContext) -> None:
        self.context = context
        self._limiters: dict[int, RateLimiter] = {}

    async def take(
        self,
        mailbox: Mailbox,
        raw: bytes,
        *,
        uid: int | None = None,
        uidvalidity: int | None = None,
    ) -> Taken:
        """Store one message, or quarantine it with the reason; never raises for bad mail."""
        config = mailbox.config
        raw_ref = await self.context.blobs.put(_compressed(raw), "application/gzip")
        if len(raw) > config.max_message_bytes:
            return await self._quarantine(
                mailbox,
                raw,
                raw_ref.sha256,
                f"message of {len(raw)} bytes is over the mailbox limit of "
                f"{config.max_message_bytes}",
                uid=uid,
                uidvalidity=uidvalidity,
            )
        try:
            parsed = await self._parse(raw, config)
        except UnparseableEmail as exc:
            return await self._quarantine(
                mailbox, raw, raw_ref.sha256, f"unparseable: {exc.reason}", uid, uidvalidity
            )
        if not sender_of(parsed, config):
            return await self._quarantine(
                mailbox,
                raw,
                raw_ref.sha256,
                "no sender address (From) in the message",
                uid,
                uidvalidity,
                parsed,
            )
        try:
            return await self._store(mailbox, raw, raw_ref.sha256, parsed)
        except HubError as exc:  # intake refused it (an address it cannot accept, ...)
            reason = f"refused: {exc.detail if isinstance(exc.detail, str) else exc.code}"
        except Exception as exc:  # never let one message stop the mailbox
            log.exception("email %s in mailbox %s could not be stored", uid, mailbox.key)
            reason = f"error: {type(exc).__name__}: {exc}"
        return await self._quarantine(
            mailbox, raw, raw_ref.sha256, reason, uid, uidvalidity, parsed
        )

    async def _parse(self, raw: bytes, config: EmailChannelConfig) -> ParsedEmail:
        domains = frozenset({config.message_id_domain})
        if len(raw) > THREAD_PARSE_BYTES:
            return await asyncio.to_thread(
                parse_email,
                raw,
                max_attachment_bytes=config.max_attachment_bytes,
                own_domains=domains,
            )
        return parse_email(
            raw, max_attachment_bytes=config.max_attachment_bytes, own_domains=domains
        )

    async def take_batch(
        self, mailbox: Mailbox, fetched: Sequence[tuple[int, bytes]], uidvalidity: int | None
    ) -> list[Taken]:
        """Take a fetched batch in: one transaction, intake's set-at-a-time path.

        What fails in the batch (a race on a new contact, a refusal, a bug) is taken
        again on its own, where it is retried or quarantined; nothing is lost.
        """
        parsed = [(uid, raw, await self._parse_storable(mailbox, raw)) for uid, raw in fetched]
        storable = [(raw, p) for _, raw, p in parsed if p is not None]
        # Every original and file of the batch stored (and synced) in one go.
        refs = iter(
            await self.context.blobs.put_many(
                [
                    blob
                    for raw, p in storable
                    for blob in [(_compressed(raw), "application/gzip"), *_files(p)]
                ]
            )
        )
        prepared: list[tuple[int, bytes, _Prepared | None]] = []
        for uid, raw, p in parsed:
            item = None
            if p is not None:
                raw_ref = next(refs)
                files = [next(refs) for _ in _files(p)]
                item = await self._message(mailbox, raw, raw_ref.sha256, p, files)
            prepared.append((uid, raw, item))
        outcomes: dict[int, Taken] = {}
        ready = [(uid, raw, p) for uid, raw, p in prepared if p is not None]
        if ready:
            try:
                async with self.context.db.transaction() as session:
                    results = await self._store_all(session, mailbox, [p for _, _, p in ready])
                    for (uid, _raw, _item), result in zip(ready, results, strict=True):
                        if not isinstance(result, BaseException):
                            outcomes[uid] = result  # a refused one is taken again alone
            except Exception:
                log.exception("email batch in mailbox %s failed; taking one by one", mailbox.key)
                outcomes.clear()
        return [
            outcomes[uid]
            if uid in outcomes
            else await self.take(mailbox, raw, uid=uid, uidvalidity=uidvalidity)
            for uid, raw, _ in prepared
        ]

    async def _parse_storable(self, mailbox: Mailbox, raw: bytes) -> ParsedEmail | None:
        """The parsed message if it can be stored as it is; else None (taken alone later)."""
        config = mailbox.config
        if len(raw) > config.max_message_bytes:
            return None
        try:
            parsed = await self._parse(raw, config)
        except UnparseableEmail:
            return None
        return parsed if sender_of(parsed, config) else None

    async def _store(
        self, mailbox: Mailbox, raw: bytes, raw_sha256: str, parsed: ParsedEmail
    ) -> Taken:
        files = await self.context.blobs.put_many(_files(parsed))
        prepared = await self._message(mailbox, raw, raw_sha256, parsed, files)
        return await in_transaction(
            self.context.db, lambda session: self._store_in(session, mailbox, prepared)
        )

    async def _message(
        self,
        mailbox: Mailbox,
        raw: bytes,
        raw_sha256: str,
        parsed: ParsedEmail,
        files: Sequence[BlobRef],
    ) -> _Prepared:
        """The InboundMessage of a parsed mail whose files (`_files(parsed)`) are stored."""
        sender = sender_of(parsed, mailbox.config)
        assert sender is not None
        kept = [file for file in parsed.attachments if not file.truncated_reason]
        attachments = [
            AttachmentIn(
                filename=file.filename,
                content_type=ref.content_type,
                size=ref.size,
                sha256=ref.sha256,
                content_id=file.content_id,
                inline=file.inline,
            )
            for file, ref in zip(kept, files, strict=True)
        ]
        skipped = [
            {"filename": file.filename, "reason": file.truncated_reason}
            for file in parsed.attachments
            if file.truncated_reason
        ] + [{"filename": part.filename, "reason": part.reason} for part in parsed.skipped]
        automatic = parsed.auto_reason is not None or parsed.delivery_report
        auto_reason = parsed.auto_reason or ("delivery report" if parsed.delivery_report else None)
        if not automatic:
            limiter = self._limiter(mailbox)
            decision = await limiter.hit(f"{mailbox.channel_id}:{sender}")
            if not decision.allowed:
                automatic, auto_reason = True, "sender over the hourly limit"
        own_id = header_key(parsed.message_id) if parsed.message_id else None
        external_id = f"email:{own_id}" if own_id else f"email-sha256:{raw_sha256}"
        meta: dict[str, Any] = {
            "email": {
                "message_id": own_id,
                "in_reply_to": [header_key(h) for h in parsed.in_reply_to],
                "references": [header_key(h) for h in parsed.references],
                "from": parsed.from_address,
                "from_name": parsed.from_name,
                "reply_to": parsed.reply_to,
                "to": parsed.to,
                "cc": parsed.cc,
                "subject": parsed.subject,
                "date": parsed.date.isoformat() if parsed.date else None,
                "raw_sha256": raw_sha256,
                "raw_size": len(raw),
                "full_text": parsed.text if parsed.display_text != parsed.text else None,
                "defects": parsed.defects[:20],
                "skipped_attachments": skipped,
            }
        }
        if auto_reason:
            meta["automatic"] = auto_reason
        # Where to look for the thread, nearest first; a bounce names the message it returns.
        bounced = [parsed.bounce.original_message_id] if parsed.bounce else []
        hints = [
            header_key(h)
            for h in [*bounced, *parsed.in_reply_to, *reversed(parsed.references)]
            if h
        ]
        message = InboundMessage(
            channel_id=mailbox.channel_id,
            channel_kind=ChannelKind.EMAIL,
            external_id=external_id,
            identities=[IdentityIn(IdentityKind.EMAIL, sender)],
            text=parsed.display_text,
            html=parsed.html,
            subject=parsed.subject or None,
            contact_name=parsed.from_name,
            attachments=attachments,
            meta=meta,
            received_at=None,
            automatic=automatic,
        )
        return _Prepared(parsed, message, own_id, hints)

    async def _store_in(self, session: AsyncSession, mailbox: Mailbox, item: _Prepared) -> Taken:
        outcome = (await self._store_all(session, mailbox, [item]))[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def _store_all(
        self, session: AsyncSession, mailbox: Mailbox, items: Sequence[_Prepared]
    ) -> list[Taken | BaseException]:
        """Store messages set-at-a-time (intake's batch path) in the caller's transaction.

        A message replying to another of the same batch must see that one stored
        first, so such messages are stored after the rest, one by one.
        """
        repo = EmailRepository(session)
        threads = await self._threads(repo, mailbox, items)
        batch_ids = {item.own_id for item in items if item.own_id}
        outcomes: list[Taken | BaseException | None] = [None] * len(items)
        if mailbox.config.claims_mailbox:
            # New, human mail to a claims mailbox files a claim; replies join their thread
            # (one to a mail of this batch is looked up again once that one is stored).
            for index, item in enumerate(items):
                new = threads[index] is None and not batch_ids.intersection(item.hints)
                if new and not item.message.automatic:
                    outcomes[index] = await self._file_claim(session, repo, mailbox, item)
        first = [
            i
            for i, item in enumerate(items)
            if outcomes[i] is None and not batch_ids.intersection(item.hints)
        ]
        later = [i for i in range(len(items)) if outcomes[i] is None and i not in set(first)]
        for group in ([first] if first else []) + [[i] for i in later]:
            for index in group:
                item = items[index]
                if item.parsed.bounce is not None:
                    await self._mark_bounced(session, repo, mailbox, item.parsed)
                thread = threads[index]
                if thread is None and index in later:
                    thread = (await self._threads(repo, mailbox, [item]))[0]
                item.message.thread_key = thread.thread_key if thread else None
            results = await ingest_batch(
                session, [items[i].message for i in group], self.context.intake
            )
            stored: list[tuple[int, IngestResult]] = []
            for index, result in zip(group, results, strict=True):
                if isinstance(result, BaseException):
                    outcomes[index] = result
                elif result.duplicate:
                    outcomes[index] = self._repeat(
                        mailbox, items[index], result.message_id, result.conversation_id
                    )
                else:
                    stored.append((index, result))
            await repo.record_message_ids_many(
                mailbox.channel_id,
                [
                    (result.conversation_id, result.message_id, own_id)
                    for index, result in stored
                    if (own_id := items[index].own_id)
                ],
            )
            # The acknowledgement of a new conversation is channels.greeting's, on its event.
            for index, result in stored:
                item = items[index]
                kind: Literal["stored", "bounce"] = "bounce" if item.parsed.bounce else "stored"
                outcomes[index] = Taken(kind, result.message_id, result.conversation_id)
        return [outcome for outcome in outcomes if outcome is not None]

    async def _file_claim(
        self, session: AsyncSession, repo: EmailRepository, mailbox: Mailbox, item: _Prepared
    ) -> Taken | BaseException:
        message, parsed = item.message, item.parsed
        try:
            async with session.begin_nested():
                filed = await file_claim(
                    session,
                    ClaimIn(
                        channel_id=mailbox.channel_id,
                        channel_kind=ChannelKind.EMAIL,
                        external_id=message.external_id,
                        reason="other",
                        description="\n\n".join(
                            part for part in (parsed.subject, message.text.strip()) if part
                        )
                        or "-",
                        email=parsed.from_address,
                        contact_name=parsed.from_name,
                        language=mailbox.config.language,
                        attachments=message.attachments,
                        meta={"email": message.meta["email"]},
                    ),
                    self.context.intake,
                )
        except HubError as exc:
            return exc
        if filed.ingest is None:  # filed before: a duplicate
            claim = filed.claim
            return self._repeat(mailbox, item, claim.message_id, claim.conversation_id)
        result = filed.ingest
        if item.own_id:
            await repo.record_message_ids(
                mailbox.channel_id, result.conversation_id, result.message_id, [item.own_id]
            )
        return Taken("stored", result.message_id, result.conversation_id)

    def _repeat(
        self,
        mailbox: Mailbox,
        item: _Prepared,
        first_id: int | None,
        conversation_id: int | None,
    ) -> Taken:
        """A mail taken in before (same Message-ID): dropped, with a trace in the log."""
        log.info(
            "email in mailbox %s dropped: Message-ID <%s> repeats message %s",
            mailbox.key,
            item.own_id or item.message.external_id,
            first_id,
        )
        return Taken("duplicate", first_id, conversation_id)

    async def _threads(
        self, repo: EmailRepository, mailbox: Mailbox, items: Sequence[_Prepared]
    ) -> list[ThreadMatch | None]:
        """The conversation each mail continues: by its headers, our token, or the subject tag.

        Only a conversation of the same person is continued, so replies of many people
        to one mailing never merge into one conversation; machine mail (auto-replies,
        bounces) files under the thread it answers, whoever sent it.
        """
        channel_id = mailbox.channel_id
        by_header = await repo.threads_of_headers(
            channel_id, {h for item in items for h in item.hints}
        )
        tokens: list[int | None] = []
        for item in items:
            tokens.append(
                next(
                    (
                        found
                        for h in item.hints
                        if (found := conversation_of_token(h, self.context.secret)) is not None
                    ),
                    None,
                )
            )
        by_conversation = await repo.threads_of_conversations({t for t in tokens if t})
        tags = [subject_tag(item.parsed.subject) for item in items]
        by_lead = await repo.threads_of_leads(channel_id, {t for t in tags if t is not None})
        senders = await repo.contacts_of_addresses(
            {item.parsed.from_address for item in items if item.parsed.from_address}
        )
        chosen: list[ThreadMatch | None] = []
        for item, token, tag in zip(items, tokens, tags, strict=True):
            candidates = [
                next((by_header[h] for h in item.hints if h in by_header), None),
                by_conversation.get(token) if token else None,
                by_lead.get(tag) if tag is not None else None,
            ]
            machine = item.parsed.delivery_report or item.parsed.auto_reason is not None
            sender = senders.get(item.parsed.from_address or "")
            chosen.append(
                next(
                    (
                        c
                        for c in candidates
                        if c is not None and (machine or c.contact_id == sender)
                    ),
                    None,
                )
            )
        return chosen

    async def _mark_bounced(
        self, session: AsyncSession, repo: EmailRepository, mailbox: Mailbox, parsed: ParsedEmail
    ) -> None:
        bounce = parsed.bounce
        if bounce is None or not bounce.original_message_id:
            return
        original = await repo.outbound_message_of_header(
            mailbox.channel_id, header_key(bounce.original_message_id)
        )
        if original is None:
            return
        if bounce.permanent:
            original.status = MessageStatus.FAILED
        detail = bounce.diagnostic or bounce.status or bounce.action or "bounced"
        original.error = f"bounced: {detail}"[:2000]
        original.meta = {
            **original.meta,
            "bounce": {
                "status": bounce.status,
                "action": bounce.action,
                "recipients": bounce.recipients,
                "permanent": bounce.permanent,
            },
        }
        emit(
            session,
            (MessageFailed if bounce.permanent else MessageDelayed)(
                conversation_id=original.conversation_id,
                message_id=original.id,
                channel_id=mailbox.channel_id,
                reason=original.error,
            ),
        )

    async def _quarantine(
        self,
        mailbox: Mailbox,
        raw: bytes,
        raw_sha256: str,
        reason: str,
        uid: int | None,
        uidvalidity: int | None,
        parsed: ParsedEmail | None = None,
    ) -> Taken:
        log.warning("email quarantined in mailbox %s: %s", mailbox.key, reason)
        async with self.context.db.transaction() as session:
            item_id = await EmailRepository(session).quarantine(
                channel_id=mailbox.channel_id,
                raw_sha256=raw_sha256,
                size=len(raw),
                reason=reason[:2000],
                uid=uid,
                uidvalidity=uidvalidity,
                subject=parsed.subject if parsed else None,
                sender=parsed.from_address if parsed else None,
            )
            emit(
                session,
                EmailQuarantined(
                    channel_id=mailbox.channel_id, quarantine_id=item_id, reason=reason
                ),
            )
        return Taken("quarantined", quarantine_id=item_id, reason=reason)

    def _limiter(self, mailbox: Mailbox) -> RateLimiter:
        limiter = self._limiters.get(mailbox.channel_id)
        if limiter is None:
            rate = Rate(mailbox.config.sender_hourly_limit, 3600)
            limiter = self._limiters[mailbox.channel_id] = MemoryRateLimiter(rate)
        return limiter
