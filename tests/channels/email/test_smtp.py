"""Sending over SMTP against a real aiosmtpd server on loopback."""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
import tempfile
import time
from email.message import EmailMessage, MIMEPart
from email.utils import make_msgid
from pathlib import Path

import pytest

from channels.email.smtp import (
    PermanentDeliveryError,
    SmtpAuthFailed,
    SmtpMisconfigured,
    SmtpSettings,
    TemporaryDeliveryError,
    send_message,
)
from tests.mailservers import SmtpRecorder, free_port, make_self_signed_cert

SENDER = "support@example.test"
CLIENT = "client@example.org"

PDF = b"%PDF-1.4\n" + bytes(range(256)) * 64 + b"\n%%EOF\n"


def text(part: MIMEPart) -> str:
    """A text part's content; 8bit parts keep the CRLF line ends of the wire."""
    content = part.get_content()
    assert isinstance(content, str)
    return content.replace("\r\n", "\n")


def reply_message() -> EmailMessage:
    message = EmailMessage()
    message["From"] = f"Поддержка <{SENDER}>"
    message["To"] = f"Клиент <{CLIENT}>"
    message["Cc"] = "boss@example.org"
    message["Bcc"] = "archive@example.test"
    message["Subject"] = "Re: Счёт №42 — ответ"
    message["Message-ID"] = make_msgid(domain="example.test")
    message["In-Reply-To"] = "<client-1@example.org>"
    message["References"] = "<client-0@example.org> <client-1@example.org>"
    message.set_content("Здравствуйте!\n\nСчёт во вложении.\n")
    message.add_alternative("<p>Здравствуйте!</p><p>Счёт во вложении.</p>", subtype="html")
    message.add_attachment(PDF, maintype="application", subtype="pdf", filename="счёт-42.pdf")
    message.add_attachment("строка 1\nстрока 2\n", filename="notes.txt")
    return message


async def test_send_with_attachments(smtp_server: SmtpRecorder, smtp_settings: SmtpSettings):
    message = reply_message()
    recipients = [CLIENT, "boss@example.org", "archive@example.test"]
    reply = await send_message(smtp_settings, message, sender=SENDER, recipients=recipients)
    assert "queued as test1" in reply

    [got] = await smtp_server.wait_for(1)
    assert got.mail_from == SENDER
    assert got.rcpt_tos == recipients
    assert got.login is None
    received = got.message
    for header in ("From", "To", "Cc", "Subject", "Message-ID", "In-Reply-To", "References"):
        assert received[header] == message[header], header
    assert received["Subject"] == "Re: Счёт №42 — ответ"
    assert "Bcc" not in received  # the envelope carries Bcc recipients, not the headers
    body = received.get_body(preferencelist=("plain",))
    assert body is not None and text(body) == "Здравствуйте!\n\nСчёт во вложении.\n"
    html = received.get_body(preferencelist=("html",))
    assert html is not None and "<p>Здравствуйте!</p>" in text(html)
    attachments = {part.get_filename(): part for part in received.iter_attachments()}
    assert set(attachments) == {"счёт-42.pdf", "notes.txt"}
    assert attachments["счёт-42.pdf"].get_content_type() == "application/pdf"
    assert attachments["счёт-42.pdf"].get_content() == PDF
    assert text(attachments["notes.txt"]) == "строка 1\nстрока 2\n"
    assert got.content.count(b"\r\n") > 10 and b"\r\n\r\n" in got.content


async def test_temporary_failure(smtp_server: SmtpRecorder, smtp_settings: SmtpSettings):
    smtp_server.fail_temporarily()
    with pytest.raises(TemporaryDeliveryError) as caught:
        await send_message(smtp_settings, reply_message(), sender=SENDER, recipients=[CLIENT])
    assert caught.value.code == 451
    assert "451" in str(caught.value)
    assert smtp_server.messages == []
    # Only the next message failed; a retry goes through.
    await send_message(smtp_settings, reply_message(), sender=SENDER, recipients=[CLIENT])
    assert len(smtp_server.messages) == 1


async def test_permanent_failure(smtp_server: SmtpRecorder, smtp_settings: SmtpSettings):
    smtp_server.fail_permanently()
    with pytest.raises(PermanentDeliveryError) as caught:
        await send_message(smtp_settings, reply_message(), sender=SENDER, recipients=[CLIENT])
    assert caught.value.code == 550
    assert "rejected" in caught.value.message
    assert not isinstance(caught.value, TemporaryDeliveryError)


async def test_refused_recipients(smtp_server: SmtpRecorder, smtp_settings: SmtpSettings):
    smtp_server.refuse_recipient("gone@example.org")
    smtp_server.refuse_recipient("full@example.org", "452 4.2.2 mailbox full")
    # All refused with 5xx: permanent.
    with pytest.raises(PermanentDeliveryError) as permanent:
        await send_message(
            smtp_settings, reply_message(), sender=SENDER, recipients=["gone@example.org"]
        )
    assert permanent.value.code == 550
    # A 4xx among the refusals: temporary.
    with pytest.raises(TemporaryDeliveryError) as temporary:
        await send_message(
            smtp_settings,
            reply_message(),
            sender=SENDER,
            recipients=["gone@example.org", "full@example.org"],
        )
    assert temporary.value.code == 452
    # Some accepted: sent to those (a retry would duplicate it for them).
    await send_message(
        smtp_settings, reply_message(), sender=SENDER, recipients=["gone@example.org", CLIENT]
    )
    [got] = smtp_server.messages
    assert got.rcpt_tos == [CLIENT]


async def test_nothing_listening_is_temporary():
    settings = SmtpSettings("127.0.0.1", free_port(), "plain", None, None, timeout=2)
    with pytest.raises(TemporaryDeliveryError):
        await send_message(settings, reply_message(), sender=SENDER, recipients=[CLIENT])


async def test_dropped_connection_is_temporary(
    smtp_server: SmtpRecorder, smtp_settings: SmtpSettings
):
    smtp_server.drop_next()
    with pytest.raises(TemporaryDeliveryError):
        await send_message(smtp_settings, reply_message(), sender=SENDER, recipients=[CLIENT])
    assert smtp_server.messages == []


async def test_silent_server_is_temporary():
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        settings = SmtpSettings("127.0.0.1", port, "plain", None, None, timeout=0.3)
        started = time.monotonic()
        with pytest.raises(TemporaryDeliveryError):
            await send_message(settings, reply_message(), sender=SENDER, recipients=[CLIENT])
        assert time.monotonic() - started < 2
    finally:
        server.close()


async def test_auth():
    with SmtpRecorder(auth=("hub", "smtp-secret"), auth_required=True) as server:
        settings = SmtpSettings(server.host, server.port, "plain", "hub", "smtp-secret", timeout=5)
        await send_message(settings, reply_message(), sender=SENDER, recipients=[CLIENT])
        [got] = await server.wait_for(1)
        assert got.login == "hub"

        wrong = dataclasses.replace(settings, password="nope")
        with pytest.raises(SmtpAuthFailed) as caught:
            await send_message(wrong, reply_message(), sender=SENDER, recipients=[CLIENT])
        assert caught.value.code == 535
        assert isinstance(caught.value, PermanentDeliveryError)

        anonymous = dataclasses.replace(settings, user=None, password=None)
        with pytest.raises(PermanentDeliveryError) as refused:
            await send_message(anonymous, reply_message(), sender=SENDER, recipients=[CLIENT])
        assert refused.value.code == 530
        assert len(server.messages) == 1


@pytest.mark.parametrize(
    ("security", "user", "missing"), [("plain", "hub", "AUTH"), ("starttls", None, "STARTTLS")]
)
async def test_settings_the_server_does_not_offer_are_permanent(
    smtp_server: SmtpRecorder, security: str, user: str | None, missing: str
):
    settings = SmtpSettings(smtp_server.host, smtp_server.port, security, user, "pw", timeout=5)
    with pytest.raises(SmtpMisconfigured) as caught:
        await send_message(settings, reply_message(), sender=SENDER, recipients=[CLIENT])
    assert missing in str(caught.value)
    assert smtp_server.messages == []


@pytest.fixture(scope="module")
def tls_contexts() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    with tempfile.TemporaryDirectory() as directory:
        cert, key = make_self_signed_cert(Path(directory))
        server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server.load_cert_chain(cert, key)
        client = ssl.create_default_context(cafile=str(cert))
    return server, client


async def test_starttls_and_implicit_tls(tls_contexts: tuple[ssl.SSLContext, ssl.SSLContext]):
    server_context, client_context = tls_contexts
    with SmtpRecorder(tls_context=server_context, auth=("hub", "pw")) as server:
        settings = SmtpSettings(
            server.host, server.port, "starttls", "hub", "pw",
            timeout=5, ssl_context=client_context,
        )  # fmt: skip
        await send_message(settings, reply_message(), sender=SENDER, recipients=[CLIENT])
        # "plain" never upgrades, even when the server offers STARTTLS.
        plain = dataclasses.replace(settings, security="plain")
        await send_message(plain, reply_message(), sender=SENDER, recipients=[CLIENT])
        first, second = await server.wait_for(2)
        assert first.tls and first.login == "hub"
        assert not second.tls
    with SmtpRecorder(implicit_tls_context=server_context) as server:
        settings = SmtpSettings(
            server.host, server.port, "tls", None, None, timeout=5, ssl_context=client_context
        )
        await send_message(settings, reply_message(), sender=SENDER, recipients=[CLIENT])
        [got] = await server.wait_for(1)
        assert got.tls
        # Without trusting the self-signed certificate: a (retryable) TLS failure.
        untrusted = dataclasses.replace(settings, ssl_context=None)
        with pytest.raises(TemporaryDeliveryError, match="CERTIFICATE_VERIFY_FAILED"):
            await send_message(untrusted, reply_message(), sender=SENDER, recipients=[CLIENT])
