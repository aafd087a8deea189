"""A reply that leaves by the client's Telegram although the conversation came by another
channel (a web form): sent to the chat the client has with the bot, a PDF by sendDocument."""

from __future__ import annotations

from sqlalchemy import select

from intake.conversations import add_reply
from intake.schemas import AttachmentIn
from storage.models import ChannelKind, Message, MessageStatus
from storage.types import utcnow
from tests.channels.telegram.flow import BotHub, Chat
from tests.factories import create_channel, ingest_message

PDF = b"%PDF-1.4\n%%EOF\n"


async def test_a_web_form_client_known_in_telegram_is_answered_there(hub: BotHub) -> None:
    chat = Chat()
    await hub.send(chat.text("Здравствуйте"))
    form = await create_channel(hub.context.db, kind=ChannelKind.WEBFORM)
    taken = await ingest_message(
        hub.context.db, form, email="ivan@example.ru", telegram=chat.user_id, text="Заявка"
    )
    response = await hub.client.get(
        f"/api/v1/conversations/{taken.conversation_id}/reply-channels", headers=hub.headers
    )
    routes = response.json()
    assert [(r["channel_id"], r["kind"], r["address"]) for r in routes] == [
        (hub.channel_id, "telegram", str(chat.user_id))
    ]

    ref = await hub.context.blobs.put(PDF, "application/pdf")
    async with hub.context.db.transaction() as session:
        reply = await add_reply(
            session,
            taken.conversation_id,
            text="Ответ в Telegram",
            manager_id=None,
            now=utcnow(),
            channel_id=hub.channel_id,
            attachments=[AttachmentIn("Договор.pdf", ref.content_type, ref.size, ref.sha256)],
        )
    assert await hub.delivery().drain() == 1
    assert hub.api.texts(chat.user_id)[-1] == "Ответ в Telegram"
    [document] = hub.api.sent("sendDocument", chat.user_id)
    assert document.file("document") == ("Договор.pdf", PDF)
    async with hub.context.db.read() as session:
        sent = await session.scalar(select(Message).where(Message.id == reply.id))
    assert sent is not None and sent.status == MessageStatus.SENT
    assert sent.conversation_id == taken.conversation_id
