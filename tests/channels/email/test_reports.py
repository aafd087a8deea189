"""Delivery reports and what intake drops on purpose, through dovecot and the real poller:
bounces from the null sender, DSN bodies kept whole, repeats of a Message-ID counted,
attachments skipped on purpose listed on their message.
"""

from __future__ import annotations

import logging
import re

import pytest

from storage.models import MessageStatus, QuarantinedEmail
from tests.channels.email.flow import HUB_ADDRESS, MailHub, client_mail, dsn

pytestmark = pytest.mark.asyncio

CLIENT = "ivan.petrov@client.example"
QUOTA_REPORT = (
    "This is the mail system at host mx.example.net.\n"
    "\n"
    "Your message could not be delivered to one or more recipients.\n"
    "\n"
    f"Date: Mon, 7 Dec 2026 10:00:00 +0300\n"
    f"From: {HUB_ADDRESS}\n"
    f"To: {CLIENT}\n"
    "Subject: Re: Вопрос\n"
    "\n"
    f"<{CLIENT}>: host mx.client.example said: 552 5.2.2 recipient reached disk quota"
)


async def _sent_reply(hub: MailHub) -> tuple[int, str]:
    """A client's question answered through the API and sent; the reply's id and Message-ID."""
    hub.send(client_mail(CLIENT, "Вопрос", "Есть в наличии?")[0])
    await hub.poll()
    [conversation] = await hub.conversations()
    reply = await hub.reply(conversation.id, "Да, есть.")
    await hub.delivery.drain()
    [sent] = await hub.smtp.wait_for(1)
    [our_id] = re.findall(r"<([^>]+)>", sent.message["Message-ID"])
    return int(reply["id"]), our_id


class TestBounceFromTheNullSender:
    @pytest.mark.parametrize("sender", ["MAILER DAEMON <>", "<>"])
    async def test_it_fails_the_reply_and_joins_its_conversation(
        self, hub: MailHub, sender: str
    ) -> None:
        reply_id, our_id = await _sent_reply(hub)
        hub.send(dsn(our_id, CLIENT, sender=sender))
        assert await hub.poll() == 1
        assert await hub.count(QuarantinedEmail) == 0
        failed = await hub.message(reply_id)
        assert failed.status == MessageStatus.FAILED
        assert failed.error is not None and "5.1.1" in failed.error
        [conversation] = await hub.conversations()
        report = (await hub.messages(conversation.id))[-1]
        assert report.direction == "inbound" and report.meta["automatic"]
        assert len(await hub.leads()) == 1
        [event] = await hub.events("message.failed")
        assert event.payload["message_id"] == reply_id

    async def test_one_without_a_report_part_is_kept_as_machine_mail(self, hub: MailHub) -> None:
        raw = (
            f"From: MAILER DAEMON <>\r\nTo: {HUB_ADDRESS}\r\nSubject: failure notice\r\n"
            "Message-ID: <qmail-1@mx.example.net>\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\n\r\n{QUOTA_REPORT}\r\n"
        ).encode()
        hub.send(raw)
        assert await hub.poll() == 1
        assert await hub.count(QuarantinedEmail) == 0
        [report] = await hub.messages_all()
        assert report.meta["automatic"] and "recipient reached disk quota" in report.text
        assert len(await hub.leads()) == 0
        [conversation] = await hub.conversations()
        assert conversation.status == "closed"

    async def test_other_mail_without_a_sender_is_still_quarantined(self, hub: MailHub) -> None:
        raw = (
            f"From: <>\r\nTo: {HUB_ADDRESS}\r\nSubject: Без отправителя\r\n"
            "Message-ID: <no-sender-1@client.example>\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\nТекст\r\n"
        ).encode()
        hub.send(raw)
        assert await hub.poll() == 1
        assert await hub.count(QuarantinedEmail) == 1


class TestDeliveryReportText:
    async def test_the_recipient_and_the_reason_are_kept(self, hub: MailHub) -> None:
        reply_id, our_id = await _sent_reply(hub)
        hub.send(
            dsn(
                our_id,
                CLIENT,
                explanation=QUOTA_REPORT,
                status="5.2.2",
                diagnostic="smtp; 552 5.2.2 recipient reached disk quota",
            )
        )
        assert await hub.poll() == 1
        [conversation] = await hub.conversations()
        report = (await hub.messages(conversation.id))[-1]
        assert CLIENT in report.text
        assert "recipient reached disk quota" in report.text
        assert "recipient reached disk quota" in ((await hub.message(reply_id)).error or "")


class TestRepeatedMessageId:
    async def test_a_repeat_is_counted_on_the_mailbox_and_logged(
        self, hub: MailHub, caplog: pytest.LogCaptureFixture
    ) -> None:
        raw, message_id = client_mail(CLIENT, "Дубль", "Одно и то же письмо")
        hub.send(raw)
        assert await hub.poll() == 1
        hub.send(raw)
        hub.send(raw)
        with caplog.at_level(logging.INFO, logger="channels.email"):
            assert await hub.poll() == 2
        assert len(await hub.messages_all()) == 1
        response = await hub.client.get("/api/v1/channels/support", headers=hub.headers)
        assert response.status_code == 200, response.text
        assert response.json()["mailbox"]["duplicates"] == 2
        assert any(message_id in record.getMessage() for record in caplog.records)


class TestSkippedAttachments:
    async def test_a_pgp_signature_is_listed_as_skipped(self, hub: MailHub) -> None:
        raw = (
            f"From: Иван <{CLIENT}>\r\n"
            f"To: {HUB_ADDRESS}\r\n"
            "Subject: Signed\r\n"
            "Message-ID: <signed-1@client.example>\r\n"
            "MIME-Version: 1.0\r\n"
            'Content-Type: multipart/signed; protocol="application/pgp-signature"; '
            'micalg=pgp-sha256; boundary="S"\r\n'
            "\r\n--S\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n"
            "Подписанное письмо.\r\n"
            "\r\n--S\r\n"
            'Content-Type: application/pgp-signature; name="signature.asc"\r\n'
            'Content-Disposition: attachment; filename="signature.asc"\r\n\r\n'
            "-----BEGIN PGP SIGNATURE-----\r\n\r\niQEzBAEBCAAdFiEE\r\n"
            "-----END PGP SIGNATURE-----\r\n"
            "\r\n--S--\r\n"
        ).encode()
        hub.send(raw)
        assert await hub.poll() == 1
        [message] = await hub.messages_all()
        assert message.text.strip() == "Подписанное письмо."
        [skipped] = message.meta["email"]["skipped_attachments"]
        assert skipped["filename"] == "signature.asc"
        assert "signature" in skipped["reason"]
        page = await hub.client.get(
            f"/api/v1/conversations/{message.conversation_id}/messages", headers=hub.headers
        )
        assert page.status_code == 200, page.text
        [view] = page.json()["items"]
        assert view["attachments"] == []
        assert view["skipped_attachments"] == [skipped]
