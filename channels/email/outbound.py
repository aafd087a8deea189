"""Managers' replies (and greetings) out through the mailbox's SMTP server."""

from __future__ import annotations

import html

from sqlalchemy.ext.asyncio import AsyncSession

from channels.delivery import Delivered, PermanentFailure, TemporaryFailure
from channels.email.compose import Outgoing, OutgoingFile, build, outbound_message_id, reply_subject
from channels.email.config import config_of, secrets_of
from channels.email.smtp import (
    PermanentDeliveryError,
    SmtpSettings,
    TemporaryDeliveryError,
    send_message,
)
from storage.blobs import BlobStore
from storage.crypto import SecretBox, SecretsUnreadable
from storage.db import Database
from storage.email_repository import EmailRepository, reply_context
from storage.models import Channel, Message
from storage.repositories import attachments_of


def text_to_html(text: str) -> str:
    paragraphs = (html.escape(p).replace("\n", "<br>\n") for p in text.split("\n\n"))
    return "".join(f"<p>{p}</p>\n" for p in paragraphs if p.strip())


class EmailSender:
    def __init__(self, blobs: BlobStore, secret: str) -> None:
        self.blobs = blobs
        self.secret = secret
        self.box = SecretBox(secret)

    async def send(self, db: Database, message_id: int) -> Delivered:
        async with db.read() as session:
            message = await session.get(Message, message_id)
            if message is None:
                raise PermanentFailure(f"message {message_id} is gone")
            channel = await session.get(Channel, message.channel_id)
            assert channel is not None
            context = await reply_context(session, message)
            files = list(await attachments_of(session, message_id))
            text, meta = message.text, dict(message.meta)
        config = config_of(channel)
        try:
            secrets = secrets_of(channel, self.box)
        except SecretsUnreadable as exc:
            raise PermanentFailure(str(exc)) from exc
        last = context.last_inbound or {}
        to = last.get("reply_to") or last.get("from") or context.contact_email
        if not to:
            raise PermanentFailure("the client has no email address to answer to")
        header = outbound_message_id(
            context.conversation_id, message_id, config.message_id_domain, self.secret
        )
        references = (
            [*last.get("references", []), last["message_id"]] if last.get("message_id") else []
        )
        outgoing = Outgoing(
            from_address=config.from_address,
            from_name=config.from_name,
            to=to,
            subject=reply_subject(last.get("subject") or context.subject, context.lead_id),
            text=text,
            html=text_to_html(text),
            message_id=header,
            in_reply_to=last.get("message_id"),
            references=references,
            files=[
                OutgoingFile(f.filename, f.content_type, await self.blobs.get(f.sha256))
                for f in files
            ],
            automatic=meta.get("automatic") is True,
        )
        smtp = SmtpSettings(
            host=config.smtp.host,
            port=config.smtp.port,
            security=config.smtp.security,
            user=config.smtp.user,
            password=secrets.smtp_password,
            timeout=config.smtp.timeout_seconds,
        )
        try:
            reply = await send_message(
                smtp, build(outgoing), sender=config.from_address, recipients=[to]
            )
        except PermanentDeliveryError as exc:
            raise PermanentFailure(str(exc)) from exc
        except TemporaryDeliveryError as exc:
            raise TemporaryFailure(str(exc)) from exc
        return Delivered(
            detail=reply,
            meta={"message_id": header, "to": to, "subject": outgoing.subject},
        )

    async def record(self, session: AsyncSession, message: Message, delivered: Delivered) -> None:
        header = str(delivered.meta["message_id"])
        message.meta = {**message.meta, "email": {**delivered.meta, "smtp": delivered.detail}}
        await EmailRepository(session).record_message_ids(
            message.channel_id, message.conversation_id, message.id, [header], outbound=True
        )
