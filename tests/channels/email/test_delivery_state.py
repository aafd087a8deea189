"""Why a reply has not left, as the API shows it: each outbound message's delivery state
and last error, a server that does not fit the mailbox's settings failing at once."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from storage.models import MessageStatus
from tests.channels.email.flow import MailHub, client_mail
from tests.mailservers import Dovecot, SmtpRecorder

pytestmark = pytest.mark.asyncio

CLIENT = "ivan.petrov@client.example"


async def _question(hub: MailHub) -> int:
    hub.send(client_mail(CLIENT, "Вопрос", "Есть в наличии?")[0])
    await hub.poll()
    [conversation] = await hub.conversations()
    return conversation.id


async def _views(hub: MailHub, conversation_id: int) -> dict[int, dict[str, Any]]:
    response = await hub.client.get(
        f"/api/v1/conversations/{conversation_id}/messages", headers=hub.headers
    )
    assert response.status_code == 200, response.text
    return {item["id"]: item for item in response.json()["items"]}


async def test_login_to_a_server_without_auth_fails_at_once_and_shows_why(
    app: Any, client: httpx.AsyncClient, dovecot: Dovecot, smtp_server: SmtpRecorder
) -> None:
    hub = MailHub(app, client, dovecot, smtp_server)
    # The mailbox logs in to SMTP, but the server offers no AUTH (a local relay).
    await hub.setup(smtp={"user": "hub@example.test"})
    conversation_id = await _question(hub)
    reply = await hub.reply(conversation_id, "Да, есть.")
    assert await hub.delivery.run_once() == 1
    message = await hub.message(int(reply["id"]))
    assert message.status == MessageStatus.FAILED
    assert message.delivery_attempts == 1
    view = (await _views(hub, conversation_id))[message.id]
    assert view["status"] == "failed"
    assert "AUTH" in view["error"]
    assert hub.smtp.messages == []
    [event] = await hub.events("message.failed")
    assert event.payload["message_id"] == message.id


async def test_a_queued_reply_shows_its_last_error_and_a_sent_one_none(
    app: Any, client: httpx.AsyncClient, dovecot: Dovecot, smtp_server: SmtpRecorder
) -> None:
    hub = MailHub(app, client, dovecot, smtp_server)
    await hub.setup()
    conversation_id = await _question(hub)
    hub.smtp.fail_temporarily(1)
    reply = await hub.reply(conversation_id, "Да, есть.")
    await hub.delivery.run_once()
    views = await _views(hub, conversation_id)
    queued = views[int(reply["id"])]
    assert queued["direction"] == "outbound" and queued["status"] == "queued"
    assert "451" in queued["error"]
    inbound = next(v for v in views.values() if v["direction"] == "inbound")
    assert inbound["status"] == "received" and inbound["error"] is None

    hub.delivery.options.base_backoff_seconds = 0
    async with hub.context.db.transaction() as session:
        from storage.models import Message

        stored = await session.get(Message, int(reply["id"]))
        assert stored is not None
        stored.deliver_after = None
    await hub.delivery.drain()
    sent = (await _views(hub, conversation_id))[int(reply["id"])]
    assert sent["status"] == "sent" and sent["error"] is None
