"""A hub with one mailbox on the test's dovecot and SMTP recorder, driven step by step."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

import httpx
from sqlalchemy import func, select

from channels.base import HubContext
from channels.delivery import DeliveryWorker
from channels.email.imap import MailboxSettings, open_imap
from channels.email.poller import MailboxPoller, PollerOptions
from channels.email.service import EmailIntake
from hub.settings import Settings
from hub.worker import build_delivery, build_worker
from storage.models import Channel, Conversation, Lead, Message, OutboxEvent
from tests.factories import create_token
from tests.mailservers import Dovecot, SmtpRecorder

IMAP_USER = "hub@example.test"
IMAP_PASSWORD = "imap-secret"
HUB_ADDRESS = "support@shop.example"


def client_mail(
    sender: str,
    subject: str,
    text: str,
    *,
    to: str = HUB_ADDRESS,
    message_id: str | None = None,
    in_reply_to: str | None = None,
    references: list[str] | None = None,
    headers: dict[str, str] | None = None,
    name: str = "Иван Петров",
) -> tuple[bytes, str]:
    """An email as a client's program writes it; returns the bytes and its Message-ID."""
    message = EmailMessage()
    message["From"] = f"{name} <{sender}>"
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=True)
    mid = message_id or make_msgid(domain="client.example")[1:-1]
    message["Message-ID"] = f"<{mid}>"
    if in_reply_to:
        message["In-Reply-To"] = f"<{in_reply_to}>"
    if references:
        message["References"] = " ".join(f"<{r}>" for r in references)
    for header, value in (headers or {}).items():
        message[header] = value
    message.set_content(text)
    return message.as_bytes(), mid


def dsn(
    original_id: str,
    recipient: str,
    *,
    sender: str = "Mail Delivery System <MAILER-DAEMON@mx.client.example>",
    explanation: str = "I'm sorry to have to inform you that your message could not be delivered.",
    status: str = "5.1.1",
    diagnostic: str = "smtp; 550 5.1.1 user unknown",
    message_id: str = "bounce-1@mx.client.example",
) -> bytes:
    """A delivery status notification (RFC 3464) returning our message `original_id`."""
    return (
        f"From: {sender}\r\n"
        f"To: {HUB_ADDRESS}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        f"Message-ID: <{message_id}>\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n'
        "\r\n--B\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
        f"{explanation}\r\n"
        "\r\n--B\r\n"
        "Content-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.client.example\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\n"
        "Action: failed\r\n"
        f"Status: {status}\r\n"
        f"Diagnostic-Code: {diagnostic}\r\n"
        "\r\n--B\r\n"
        "Content-Type: text/rfc822-headers\r\n\r\n"
        f"From: {HUB_ADDRESS}\r\n"
        f"To: {recipient}\r\n"
        "Subject: Re: Вопрос\r\n"
        f"Message-ID: <{original_id}>\r\n"
        "\r\n--B--\r\n"
    ).encode()


class MailHub:
    """The app's context, a mailbox channel made through the API, a poller and delivery."""

    def __init__(
        self,
        app: Any,
        client: httpx.AsyncClient,
        dovecot: Dovecot,
        smtp: SmtpRecorder,
    ) -> None:
        self.context: HubContext = app.state.context
        self.client = client
        self.dovecot = dovecot
        self.smtp = smtp
        self.headers: dict[str, str] = {}
        self.channel_id = 0
        self.intake = EmailIntake(self.context)
        self.delivery: DeliveryWorker = build_delivery(self.context)

    async def setup(self, **config: Any) -> dict[str, Any]:
        token, _ = await create_token(self.context.db, name="admin")
        self.headers = {"Authorization": f"Bearer {token}"}
        body = {
            "key": "support",
            "title": "Поддержка",
            "imap_password": IMAP_PASSWORD,
            "config": {
                "imap": {
                    "host": self.dovecot.host,
                    "port": self.dovecot.imap_port,
                    "security": "plain",
                    "user": IMAP_USER,
                    "timeout_seconds": 5,
                    **config.pop("imap", {}),
                },
                "smtp": {
                    "host": self.smtp.host,
                    "port": self.smtp.port,
                    "security": "plain",
                    "timeout_seconds": 5,
                    **config.pop("smtp", {}),
                },
                "from_address": HUB_ADDRESS,
                "from_name": "Магазин",
                **config,
            },
        }
        response = await self.client.post("/api/v1/channels/email", json=body, headers=self.headers)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        self.channel_id = int(created["id"])
        return created

    def poller(self, **options: Any) -> MailboxPoller:
        return MailboxPoller(
            self.context, self.intake, self.channel_id, PollerOptions(**options), name="test"
        )

    def mailbox_settings(self) -> MailboxSettings:
        return MailboxSettings(
            host=self.dovecot.host,
            port=self.dovecot.imap_port,
            security="plain",
            user=IMAP_USER,
            password=IMAP_PASSWORD,
            timeout=5.0,
        )

    async def drain(self) -> int:
        """Handle the outbox (greetings are queued there), then deliver; how many were sent."""
        await build_worker(self.context, Settings(), self.delivery).drain()
        return await self.delivery.drain()

    async def poll(self) -> int:
        """One sync of the mailbox, as the running poller does it."""
        poller = self.poller()
        loaded = await poller._load()
        assert loaded is not None
        mailbox, settings = loaded
        session = await open_imap(settings)
        try:
            return await poller.sync(session, mailbox)
        finally:
            await session.close()

    def send(self, raw: bytes) -> int:
        return self.dovecot.deliver(IMAP_USER, raw)

    async def reply(self, conversation_id: int, text: str) -> dict[str, Any]:
        response = await self.client.post(
            f"/api/v1/conversations/{conversation_id}/messages",
            json={"text": text},
            headers=self.headers,
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    async def count(self, model: Any, *where: Any) -> int:
        async with self.context.db.read() as session:
            return int(await session.scalar(select(func.count()).select_from(model).where(*where)))

    async def messages(self, conversation_id: int) -> list[Message]:
        async with self.context.db.read() as session:
            return list(
                (
                    await session.scalars(
                        select(Message)
                        .where(Message.conversation_id == conversation_id)
                        .order_by(Message.id)
                    )
                ).all()
            )

    async def messages_all(self) -> list[Message]:
        async with self.context.db.read() as session:
            return list((await session.scalars(select(Message).order_by(Message.id))).all())

    async def message(self, message_id: int) -> Message:
        async with self.context.db.read() as session:
            found = await session.get(Message, message_id)
            assert found is not None
            return found

    async def conversations(self) -> list[Conversation]:
        async with self.context.db.read() as session:
            return list(
                (await session.scalars(select(Conversation).order_by(Conversation.id))).all()
            )

    async def leads(self) -> list[Lead]:
        async with self.context.db.read() as session:
            return list((await session.scalars(select(Lead).order_by(Lead.id))).all())

    async def channel(self) -> Channel:
        async with self.context.db.read() as session:
            found = await session.get(Channel, self.channel_id)
            assert found is not None
            return found

    async def events(self, topic: str) -> list[OutboxEvent]:
        async with self.context.db.read() as session:
            return list(
                (
                    await session.scalars(
                        select(OutboxEvent)
                        .where(OutboxEvent.topic == topic)
                        .order_by(OutboxEvent.id)
                    )
                ).all()
            )
