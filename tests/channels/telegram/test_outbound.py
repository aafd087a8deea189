"""Managers' replies out through the Bot API: split text, files, 403 and 429."""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import select

from channels.telegram.outbound import split_text
from intake.conversations import add_reply
from storage.models import Attachment, Identity, Message, MessageStatus
from storage.types import utcnow
from tests.channels.telegram.flow import BotHub, Chat
from tests.telegram_api import BLOCKED, too_many


async def _conversation(hub: BotHub, chat: Chat) -> int:
    await hub.send(chat.text("Здравствуйте"))
    [message] = await hub.messages()
    return message.conversation_id


async def _reply(hub: BotHub, conversation_id: int, text: str) -> int:
    body = await hub.api_post(
        f"/api/v1/conversations/{conversation_id}/messages", {"text": text}, status=201
    )
    return int(body["id"])


async def _message(hub: BotHub, message_id: int) -> Message:
    async with hub.context.db.read() as session:
        found = await session.get(Message, message_id)
        assert found is not None
        return found


async def test_a_long_reply_is_split_and_a_file_goes_as_a_photo(hub: BotHub) -> None:
    chat = Chat()
    conversation_id = await _conversation(hub, chat)
    long_text = ("Первый абзац ответа. " * 150).strip() + "\n\n" + "Второй абзац. " * 150
    message_id = await _reply(hub, conversation_id, long_text)
    assert await hub.delivery().drain() == 1
    picture = b"\x89PNG\r\n\x1a\n" + b"x" * 500
    ref = await hub.context.blobs.put(picture, "image/png")
    async with hub.context.db.transaction() as session:
        with_file = await add_reply(
            session, conversation_id, text="Фото упаковки", manager_id=None, now=utcnow()
        )
        session.add(
            Attachment(
                message_id=with_file.id,
                filename="box.png",
                content_type="image/png",
                size=ref.size,
                sha256=ref.sha256,
            )
        )

    assert await hub.delivery().drain() == 1

    parts = hub.api.texts(chat.user_id)
    assert len(parts) == 3 and all(len(p) <= 4096 for p in parts)
    assert "".join(parts[:2]).replace(" ", "").replace("\n", "") == long_text.replace(
        " ", ""
    ).replace("\n", "")
    assert parts[2] == "Фото упаковки"
    [photo] = hub.api.sent("sendPhoto", chat.user_id)
    assert photo.file("photo") == ("box.png", picture)
    sent = await _message(hub, message_id)
    assert sent.status == MessageStatus.SENT
    assert len(sent.meta["telegram"]["message_ids"]) == 2


async def test_a_user_who_blocked_the_bot_fails_the_message_and_is_unreachable(
    hub: BotHub,
) -> None:
    chat = Chat()
    conversation_id = await _conversation(hub, chat)
    message_id = await _reply(hub, conversation_id, "Вы здесь?")
    hub.api.fail_next(BLOCKED, {"sendMessage"})

    await hub.delivery().drain()

    failed = await _message(hub, message_id)
    assert failed.status == MessageStatus.FAILED and "blocked" in (failed.error or "")
    async with hub.context.db.read() as session:
        identity = (
            await session.scalars(select(Identity).where(Identity.value == str(chat.user_id)))
        ).one()
    assert identity.unreachable_at is not None
    assert len(await hub.events("message.failed")) == 1

    # Unblocked: the next reply goes through and the identity is reachable again.
    await _reply(hub, conversation_id, "Мы на связи")
    await hub.delivery().drain()
    async with hub.context.db.read() as session:
        identity = (
            await session.scalars(select(Identity).where(Identity.value == str(chat.user_id)))
        ).one()
    assert identity.unreachable_at is None


async def test_429_is_retried_after_retry_after(hub: BotHub) -> None:
    chat = Chat()
    conversation_id = await _conversation(hub, chat)
    first = await _reply(hub, conversation_id, "Часть ответа. " * 400)  # two parts
    hub.api.fail_next(too_many(1), {"sendMessage"})
    delivery = hub.delivery()

    assert await delivery.drain() == 1
    waiting = await _message(hub, first)
    assert waiting.status == MessageStatus.QUEUED
    assert waiting.deliver_after is not None
    assert 0.5 < (waiting.deliver_after - utcnow()).total_seconds() <= 1.0
    assert await delivery.drain() == 0  # not due yet
    started = time.monotonic()
    while await delivery.drain() == 0:
        assert time.monotonic() - started < 5
        await asyncio.sleep(0.1)

    calls = [c for c in hub.api.calls if c.method == "sendMessage"]
    assert [c.failed for c in calls] == [429, None, None]
    assert calls[1].at - calls[0].at >= 1.0
    assert (await _message(hub, first)).status == MessageStatus.SENT
    assert len(hub.api.texts(chat.user_id)) == 2


async def test_429_in_the_middle_of_a_long_message_sends_no_part_twice(hub: BotHub) -> None:
    chat = Chat()
    conversation_id = await _conversation(hub, chat)
    message_id = await _reply(hub, conversation_id, "Слово " * 2000)  # three parts
    delivery = hub.delivery()
    original = hub.api._do_sendMessage
    count = 0

    async def second_part_limited(call):  # type: ignore[no-untyped-def]
        nonlocal count
        count += 1
        if count == 2:
            hub.api.fail_next(too_many(1), {"sendMessage"})
        return await original(call)

    hub.api._do_sendMessage = second_part_limited  # type: ignore[method-assign]
    await delivery.drain()
    await asyncio.sleep(1.05)
    await delivery.drain()

    texts = hub.api.texts(chat.user_id)
    # Each part once: the retry sent only the third.
    assert [len(t) for t in texts] == [len(p) for p in split_text("Слово " * 2000)]
    assert (await _message(hub, message_id)).status == MessageStatus.SENT
