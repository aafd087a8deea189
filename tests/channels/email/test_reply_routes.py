"""A reply that leaves by another channel than the conversation's: a web-form client answered
through the mailbox (the SMTP recorder), with a PDF whose name is not ASCII."""

from __future__ import annotations

import base64
import re

from storage.models import Message, MessageStatus
from tests.channels.email.flow import HUB_ADDRESS, MailHub
from tests.factories import post_form

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


async def test_a_web_form_client_gets_the_reply_with_its_pdf_by_email(hub: MailHub) -> None:
    conversation_id = await post_form(hub.client, "Пришлите счёт, пожалуйста")
    offered = await hub.client.get(
        f"/api/v1/conversations/{conversation_id}/reply-channels", headers=hub.headers
    )
    assert offered.status_code == 200, offered.text
    [route] = offered.json()
    assert route["channel_id"] == hub.channel_id and route["kind"] == "email"
    assert route["own"] is False and route["address"].endswith("@example.ru")

    response = await hub.client.post(
        f"/api/v1/conversations/{conversation_id}/messages",
        json={
            "text": "Счёт во вложении.",
            "channel_id": hub.channel_id,
            "attachments": [
                {
                    "filename": "Счёт № 17 «Ромашка».pdf",
                    "content_type": "application/pdf",
                    "content_base64": base64.b64encode(PDF).decode(),
                }
            ],
        },
        headers=hub.headers,
    )
    assert response.status_code == 201, response.text
    assert await hub.drain() == 1
    [sent] = await hub.smtp.wait_for(1)
    mail = sent.message
    assert mail["To"] == route["address"] and HUB_ADDRESS in mail["From"]
    assert "Счёт во вложении." in mail.get_body(("plain",)).get_content()
    [pdf] = list(mail.iter_attachments())
    assert pdf.get_content_type() == "application/pdf"
    assert pdf.get_filename() == "Счёт № 17 «Ромашка».pdf"
    assert pdf.get_content() == PDF
    # The name travels as RFC 2231 UTF-8, not as raw bytes in the header.
    # (split in RFC 2231 continuations when long: filename*0*=utf-8''..., filename*1*=...).
    assert re.search(rb"filename\*(0\*)?=utf-8''%D0%A1%D1%87", sent.content, re.IGNORECASE)
    stored = await hub.message(int(response.json()["id"]))
    assert isinstance(stored, Message) and stored.status == MessageStatus.SENT
    assert stored.conversation_id == conversation_id and stored.channel_id == hub.channel_id


async def test_a_bot_that_cannot_reach_the_client_is_refused(hub: MailHub) -> None:
    conversation_id = await post_form(hub.client)
    response = await hub.client.post(
        f"/api/v1/conversations/{conversation_id}/messages",
        json={"text": "Ответ", "channel_id": 999_999},
        headers=hub.headers,
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "unreachable_channel"
