"""The webhook: authentication, idempotency, what each kind of message becomes."""

from __future__ import annotations

import asyncio

from storage.models import Contact, Conversation, Lead, Message
from tests.channels.telegram.flow import BotHub, Chat

JPEG = b"\xff\xd8\xff\xe0" + b"photo-bytes" * 100


async def test_text_becomes_a_conversation_with_the_telegram_contact(hub: BotHub) -> None:
    chat = Chat(language="ru")
    await hub.send(chat.text("Здравствуйте, где мой заказ?"))

    [message] = await hub.messages()
    assert message.text == "Здравствуйте, где мой заказ?"
    assert message.external_id == f"tg:{chat.user_id}:{message.meta['telegram']['message_id']}"
    assert message.meta["telegram"]["username"] == f"client{chat.user_id}"
    async with hub.context.db.read() as session:
        conversation = await session.get(Conversation, message.conversation_id)
        assert conversation is not None and conversation.thread_key == f"tg:{chat.user_id}"
        contact = await session.get(Contact, conversation.contact_id)
        assert contact is not None
        assert contact.name == "Иван Петров" and contact.language == "ru"
    assert await hub.identities(contact.id) == {("telegram", str(chat.user_id))}
    assert await hub.count(Lead) == 1
    assert hub.api.texts() == []  # the bot does not answer messages outside a dialogue

    await hub.send(chat.text("Номер 1542"))
    assert await hub.count(Conversation) == 1
    assert len(await hub.messages()) == 2


async def test_the_same_update_five_times_stores_one_message(hub: BotHub) -> None:
    update = Chat().text("Один раз")
    for _ in range(3):
        await hub.send(update)
    await asyncio.gather(*(hub.send(update) for _ in range(2)))

    assert len(await hub.messages()) == 1


async def test_the_same_button_press_five_times_answers_once(hub: BotHub) -> None:
    chat = Chat()
    press = chat.press("menu:claim")
    for _ in range(5):
        await hub.send(press)

    assert len(hub.api.texts(chat.user_id)) == 1


async def test_wrong_secret_token_is_refused_and_stores_nothing(hub: BotHub) -> None:
    update = Chat().text("Подделка")
    for secret in ("wrong", ""):
        response = await hub.post(update, secret=secret)
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_secret_token"
    assert await hub.messages() == []


async def test_malformed_bodies_get_a_4xx(hub: BotHub) -> None:
    for body in (b"{not json", b"[]", b'{"message": {}}', b""):
        response = await hub.post(body)
        assert 400 <= response.status_code < 500, (body, response.text)
    response = await hub.client.post(
        "/webhooks/telegram/nobot",
        json={"update_id": 1},
        headers={"X-Telegram-Bot-Api-Secret-Token": "x"},
    )
    assert response.status_code == 404
    assert await hub.messages() == []


async def test_photo_with_caption_is_downloaded_into_blobs(hub: BotHub) -> None:
    chat = Chat()
    hub.api.add_file("ph-1", JPEG)
    await hub.send(chat.photo("ph-1", len(JPEG), caption="Разбитая коробка"))

    [message] = await hub.messages()
    assert message.text == "Разбитая коробка"
    async with hub.context.db.read() as session:
        from sqlalchemy import select

        from storage.models import Attachment

        [attachment] = (await session.scalars(select(Attachment))).all()
    assert attachment.content_type == "image/jpeg" and attachment.size == len(JPEG)
    assert await hub.context.blobs.get(attachment.sha256) == JPEG
    assert [c.params["file_id"] for c in hub.api.sent("getFile")] == ["ph-1"]


async def test_a_file_over_the_limit_is_not_downloaded(hub: BotHub) -> None:
    chat = Chat()
    big = 21 * 1024 * 1024
    await hub.send(chat.document("doc-big", "scan.pdf", "application/pdf", big))

    [message] = await hub.messages()
    assert message.meta["telegram"]["files_not_stored"][0]["reason"] == "too_large"
    assert hub.api.sent("getFile") == []


async def test_shared_own_contact_adds_a_phone_identity(hub: BotHub) -> None:
    chat = Chat()
    await hub.send(chat.contact("+7 912 345-67-89"))
    await hub.send(chat.contact("+7 912 000-00-01", own=False))

    first, second = await hub.messages()
    async with hub.context.db.read() as session:
        conversation = await session.get(Conversation, first.conversation_id)
        assert conversation is not None
    assert await hub.identities(conversation.contact_id) == {
        ("telegram", str(chat.user_id)),
        ("phone", "+79123456789"),
    }
    assert first.meta["telegram"]["contact"]["own"] is True
    assert second.meta["telegram"]["contact"]["own"] is False


async def test_sticker_and_location_are_kept_as_text(hub: BotHub) -> None:
    chat = Chat()
    await hub.send(
        chat.message(
            sticker={
                "file_id": "st",
                "file_unique_id": "st",
                "type": "regular",
                "width": 512,
                "height": 512,
                "is_animated": False,
                "is_video": False,
                "emoji": "👍",
            }
        )
    )
    await hub.send(chat.message(location={"latitude": 55.75, "longitude": 37.62}))

    sticker, location = await hub.messages()
    assert sticker.text == "👍" and sticker.meta["telegram"]["placeholder"] == "sticker"
    assert location.text == "geo:55.75,37.62"
    assert hub.api.sent("getFile") == []  # stickers are not downloaded


async def test_an_edit_updates_the_stored_message_and_keeps_the_old_text(hub: BotHub) -> None:
    chat = Chat()
    update = chat.text("Заказ 1542 не пришёл")
    await hub.send(update)
    edited = {
        "update_id": update["update_id"] + 100_000,
        "edited_message": {
            **update["message"],
            "text": "Заказ 1543 не пришёл",
            "edit_date": update["message"]["date"] + 60,
        },
    }
    await hub.send(edited)
    await hub.send(edited)  # a redelivery changes nothing

    [message] = await hub.messages()
    assert message.text == "Заказ 1543 не пришёл"
    assert [e["text"] for e in message.meta["edits"]] == ["Заказ 1542 не пришёл"]
    assert len(await hub.events("message.edited")) == 1


async def test_group_messages_are_ignored(hub: BotHub) -> None:
    chat = Chat()
    update = chat.text("в группе")
    update["message"]["chat"] = {"id": -100123, "type": "supergroup", "title": "Группа"}
    response = await hub.post(update)

    assert response.status_code == 200
    assert await hub.count(Message) == 0


async def test_a_body_larger_than_any_update_is_a_413_and_stores_nothing(hub: BotHub) -> None:
    update = Chat().text("x" * (2 * 1024 * 1024))

    response = await hub.post(update)

    assert response.status_code == 413, response.text
    assert response.json()["error"] == "payload_too_large"
    assert await hub.messages() == []
    assert (await hub.post(Chat().text("Обычное сообщение"))).status_code == 200
