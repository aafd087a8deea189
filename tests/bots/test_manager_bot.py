"""The managers' bot: a manager links their Telegram with a one-time code from the API,
then routing's notifications come there in the manager's language.

A bot channel with `audience: managers` on the Bot API stand-in; updates are raw JSON
through the real webhook, notifications come from the hub's own outbox handlers.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from bots.texts import t
from channels.telegram.polling import PollingOptions, TelegramPollers
from storage.db import Database
from storage.events import NotificationRetry
from storage.models import Contact, Conversation, Manager, ManagerTelegramCode
from storage.types import utcnow
from tests.channels.telegram.flow import BotHub, Chat, new_token
from tests.factories import (
    default_queue,
    drain,
    go_online,
    manager_with_headers,
    post_form,
    set_language,
)
from tests.telegram_api import BLOCKED, BotApiStandIn, too_many

LINK = "/api/v1/managers/me/telegram-link"


@pytest.fixture
async def staff(app: Any, client: httpx.AsyncClient, api: BotApiStandIn) -> BotHub:
    """A managers' bot, added through the API."""
    bot_hub = BotHub(app, client, api)
    bot_hub.key = "staffbot"
    created = await bot_hub.setup(audience="managers")
    assert created["config"]["audience"] == "managers"
    return bot_hub


async def new_manager(
    staff: BotHub, name: str, language: str = "ru"
) -> tuple[Manager, dict[str, str]]:
    db: Database = staff.context.db
    manager, headers = await manager_with_headers(db, name=name)
    await set_language(db, manager.id, language)
    return manager, headers


async def link_code(staff: BotHub, headers: dict[str, str]) -> dict[str, Any]:
    response = await staff.client.post(LINK, headers=headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def linked(staff: BotHub, headers: dict[str, str], chat: Chat) -> str:
    """Link the manager to the chat; returns the code used."""
    code = str((await link_code(staff, headers))["code"])
    await staff.send(chat.text(f"/link {code}"))
    return code


async def manager_row(staff: BotHub, manager_id: int) -> Manager:
    async with staff.context.db.read() as session:
        manager = await session.get(Manager, manager_id)
        assert manager is not None
        return manager


async def me(staff: BotHub, headers: dict[str, str]) -> dict[str, Any]:
    response = await staff.client.get("/api/v1/me", headers=headers)
    assert response.status_code == 200, response.text
    manager: dict[str, Any] = response.json()["manager"]
    return manager


class TestLinking:
    async def test_the_deep_link_code_links_the_chat(self, staff: BotHub) -> None:
        anna, headers = await new_manager(staff, "Анна", "ru")
        before = utcnow()
        body = await link_code(staff, headers)
        code = body["code"]
        assert len(code) == 10 and code.isalnum()
        assert body["bot"] == "staffbot"
        assert body["deep_link"] == f"https://t.me/shop_test_bot?start={code}"
        expires_at = datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
        assert before + timedelta(minutes=15) <= expires_at <= utcnow() + timedelta(minutes=15)
        async with staff.context.db.read() as session:
            [stored] = (await session.scalars(select(ManagerTelegramCode))).all()
        assert stored.manager_id == anna.id
        assert stored.code_hash == hashlib.sha256(code.encode()).hexdigest()

        # Her Telegram speaks English; the bot answers in her language, Russian.
        chat = Chat(language="en")
        await staff.send(chat.text(f"/start {code}"))
        assert staff.api.texts(chat.user_id) == [t("ru", "manager_linked", name="Анна")]
        [reply] = staff.api.sent("sendMessage", chat.user_id)
        assert reply.token == staff.token

        row = await manager_row(staff, anna.id)
        assert row.telegram_chat_id == str(chat.user_id)
        assert row.telegram_channel_id == staff.channel_id
        assert row.telegram_linked_at is not None
        assert (await me(staff, headers))["telegram_linked"] is True
        managers = await staff.api_get("/api/v1/managers")
        assert {m["name"]: m["telegram_linked"] for m in managers} == {"Анна": True}
        profile = await staff.api_get(f"/api/v1/managers/{anna.id}/routing")
        assert profile["telegram_linked"] is True
        # The code is used up, and nothing of it became a client's conversation.
        assert await staff.count(ManagerTelegramCode) == 0
        assert await staff.count(Conversation) == 0
        assert await staff.count(Contact) == 0

        # /start again (no code): the bot says whose notifications come here.
        await staff.send(chat.text("/start"))
        assert staff.api.texts(chat.user_id)[-1] == t("ru", "manager_already_linked", name="Анна")

    async def test_wrong_used_and_expired_codes_link_nobody(self, staff: BotHub) -> None:
        boris, boris_headers = await new_manager(staff, "Boris", "en")
        vera, vera_headers = await new_manager(staff, "Вера", "ru")
        stranger = Chat(language="ru")

        await staff.send(stranger.text("/start"))
        await staff.send(stranger.text("/link"))
        await staff.send(stranger.text("/link ABCDEFGH23"))
        assert staff.api.texts(stranger.user_id) == [
            t("ru", "manager_welcome"),
            t("ru", "manager_code_missing"),
            t("ru", "manager_code_wrong"),
        ]

        # Used once: the second chat trying it gets nothing.
        boris_chat = Chat(language="en")
        code = await linked(staff, boris_headers, boris_chat)
        assert staff.api.texts(boris_chat.user_id) == [t("en", "manager_linked", name="Boris")]
        await staff.send(stranger.text(f"/start {code}"))
        assert staff.api.texts(stranger.user_id)[-1] == t("ru", "manager_code_wrong")
        assert (await manager_row(staff, boris.id)).telegram_chat_id == str(boris_chat.user_id)

        # A new code replaces the one before; typed in lower case with a space, it works.
        first = (await link_code(staff, vera_headers))["code"]
        second = (await link_code(staff, vera_headers))["code"]
        vera_chat = Chat(language="en")
        await staff.send(vera_chat.text(f"/link {first}"))
        assert staff.api.texts(vera_chat.user_id) == [t("en", "manager_code_wrong")]
        assert not (await manager_row(staff, vera.id)).telegram_linked

        # Expired: refused as such, and gone.
        async with staff.context.db.transaction() as session:
            await session.execute(
                update(ManagerTelegramCode).values(expires_at=utcnow() - timedelta(seconds=1))
            )
        await staff.send(vera_chat.text(f"/link {second}"))
        assert staff.api.texts(vera_chat.user_id)[-1] == t("en", "manager_code_expired")
        assert not (await manager_row(staff, vera.id)).telegram_linked
        assert await staff.count(ManagerTelegramCode) == 0

        third = (await link_code(staff, vera_headers))["code"]
        start = vera_chat.text(f"/link {third[:5].lower()} {third[5:].lower()}")
        await staff.send(start)
        assert staff.api.texts(vera_chat.user_id)[-1] == t("ru", "manager_linked", name="Вера")
        # Telegram delivering the same update again changes nothing and answers nothing.
        await staff.send(start)
        assert len(staff.api.texts(vera_chat.user_id)) == 3
        assert (await manager_row(staff, vera.id)).telegram_chat_id == str(vera_chat.user_id)

    async def test_a_chat_linked_again_moves_to_the_new_manager(self, staff: BotHub) -> None:
        anna, anna_headers = await new_manager(staff, "Анна")
        boris, boris_headers = await new_manager(staff, "Борис")
        chat = Chat()
        await linked(staff, anna_headers, chat)
        await linked(staff, boris_headers, chat)
        assert not (await manager_row(staff, anna.id)).telegram_linked
        assert (await manager_row(staff, boris.id)).telegram_chat_id == str(chat.user_id)

    async def test_unlink_by_the_bot_and_by_the_api(self, staff: BotHub) -> None:
        anna, headers = await new_manager(staff, "Anna", "en")
        chat = Chat(language="ru")
        await linked(staff, headers, chat)
        await staff.send(chat.text("/unlink"))
        assert staff.api.texts(chat.user_id)[-1] == t("en", "manager_unlinked")
        assert (await me(staff, headers))["telegram_linked"] is False
        await staff.send(chat.text("/stop"))
        assert staff.api.texts(chat.user_id)[-1] == t("ru", "manager_not_linked")

        await linked(staff, headers, chat)
        assert (await me(staff, headers))["telegram_linked"] is True
        await link_code(staff, headers)  # a code not yet used goes with the link
        response = await staff.client.delete(LINK, headers=headers)
        assert response.status_code == 204
        row = await manager_row(staff, anna.id)
        assert not row.telegram_linked and row.telegram_chat_id is None
        assert await staff.count(ManagerTelegramCode) == 0
        assert (await staff.client.delete(LINK, headers=headers)).status_code == 204

    async def test_only_a_manager_gets_a_code(self, staff: BotHub) -> None:
        response = await staff.client.post(LINK, headers=staff.headers)  # an operator's token
        assert response.status_code == 403 and response.json()["error"] == "no_manager"
        assert (await staff.client.post(LINK)).status_code == 401
        _anna, headers = await new_manager(staff, "Анна")
        response = await staff.client.post(LINK, params={"bot": "nobot"}, headers=headers)
        assert response.status_code == 404, response.text

    async def test_without_a_managers_bot_there_is_no_code(self, hub: BotHub) -> None:
        _anna, headers = await manager_with_headers(hub.context.db, name="Анна")
        response = await hub.client.post(LINK, headers=headers)
        assert response.status_code == 409 and response.json()["error"] == "no_manager_bot"
        # The clients' bot takes /start as a client's, as before.
        chat = Chat()
        await hub.send(chat.text("/start"))
        assert hub.api.texts(chat.user_id) == [t("ru", "welcome", name="Иван")]


class TestNotifications:
    async def test_an_assignment_comes_in_the_managers_language(self, staff: BotHub) -> None:
        anna, anna_headers = await new_manager(staff, "Anna", "en")
        boris, boris_headers = await new_manager(staff, "Борис", "ru")
        anna_chat, boris_chat = Chat(language="ru"), Chat(language="en")
        await linked(staff, anna_headers, anna_chat)
        await linked(staff, boris_headers, boris_chat)
        await default_queue(staff.client, staff.headers, [anna.id], name="Продажи")
        await go_online(staff.client, anna_headers)

        conversation = await post_form(staff.client, "Нужен диван")
        await drain(staff.app)
        note = staff.api.sent("sendMessage", anna_chat.user_id)[-1]
        assert note.token == staff.token
        assert note.text.startswith(f"Conversation #{conversation} is assigned to you\n")
        assert "Queue: Продажи" in note.text
        assert f"Conversation: #{conversation}" in note.text
        assert len(staff.api.texts(boris_chat.user_id)) == 1  # only his link answer

        response = await staff.client.post(
            f"/api/v1/conversations/{conversation}/transfer",
            json={"manager_id": boris.id},
            headers=anna_headers,
        )
        assert response.status_code == 200, response.text
        await drain(staff.app)
        note = staff.api.sent("sendMessage", boris_chat.user_id)[-1]
        assert note.text.startswith(f"Вам передан разговор #{conversation}\n")
        assert "Очередь: Продажи" in note.text

    async def test_a_mention_in_a_note_comes_to_the_mentioned_manager(self, staff: BotHub) -> None:
        _anna, anna_headers = await new_manager(staff, "Анна Смирнова", "ru")
        boris, boris_headers = await new_manager(staff, "Boris Kent", "en")
        boris_chat = Chat(language="en")
        await linked(staff, boris_headers, boris_chat)
        conversation = await post_form(staff.client, "Нужен диван")
        response = await staff.client.post(
            f"/api/v1/conversations/{conversation}/messages",
            json={"text": "@Boris Kent, дайте скидку?", "note": True, "mentions": [boris.id]},
            headers=anna_headers,
        )
        assert response.status_code == 201, response.text
        await drain(staff.app)
        note = staff.api.sent("sendMessage", boris_chat.user_id)[-1]
        assert note.text.startswith(
            f"Анна Смирнова mentioned you in a note on conversation #{conversation}\n"
        )
        assert "Note: @Boris Kent, дайте скидку?" in note.text

    async def test_a_conversation_back_from_a_snooze_comes_to_its_assignee(
        self, staff: BotHub
    ) -> None:
        anna, anna_headers = await new_manager(staff, "Anna", "en")
        anna_chat = Chat(language="en")
        await linked(staff, anna_headers, anna_chat)
        await default_queue(staff.client, staff.headers, [anna.id], name="Продажи")
        await go_online(staff.client, anna_headers)
        conversation = await post_form(staff.client, "Перезвоните завтра")
        await drain(staff.app)
        response = await staff.client.post(
            f"/api/v1/conversations/{conversation}/snooze",
            json={"until": (utcnow() + timedelta(hours=1)).isoformat()},
            headers=anna_headers,
        )
        assert response.status_code == 200, response.text
        await drain(staff.app)
        before = len(staff.api.sent("sendMessage", anna_chat.user_id))
        await drain(staff.app, ahead=timedelta(hours=2))
        sent = staff.api.sent("sendMessage", anna_chat.user_id)
        assert len(sent) == before + 1
        assert sent[-1].text.startswith(f"Conversation #{conversation} is back from snooze\n")
        assert "Queue: Продажи" in sent[-1].text

    async def test_a_blocked_bot_unlinks_the_manager(self, staff: BotHub) -> None:
        anna, headers = await new_manager(staff, "Анна")
        chat = Chat()
        await linked(staff, headers, chat)
        await default_queue(staff.client, staff.headers, [anna.id])
        await go_online(staff.client, headers)

        staff.api.fail_next(BLOCKED, {"sendMessage"})
        await post_form(staff.client)
        await drain(staff.app)
        [blocked] = [c for c in staff.api.calls if c.failed == 403]
        assert blocked.chat_id == str(chat.user_id)
        assert not (await manager_row(staff, anna.id)).telegram_linked
        assert await staff.events(NotificationRetry.topic) == []

        await post_form(staff.client)  # unlinked: nothing more is sent
        await drain(staff.app)
        assert len(staff.api.sent("sendMessage", chat.user_id)) == 1  # the link answer

    async def test_another_failure_is_retried(self, staff: BotHub) -> None:
        anna, headers = await new_manager(staff, "Анна")
        chat = Chat()
        await linked(staff, headers, chat)
        await default_queue(staff.client, staff.headers, [anna.id])
        await go_online(staff.client, headers)

        staff.api.fail_next(too_many(30), {"sendMessage"})
        conversation = await post_form(staff.client)
        await drain(staff.app)
        [retry] = await staff.events(NotificationRetry.topic)
        assert retry.payload["notifier"] == "telegram"
        assert (await manager_row(staff, anna.id)).telegram_linked

        await drain(staff.app, ahead=timedelta(minutes=2))
        note = staff.api.sent("sendMessage", chat.user_id)[-1]
        assert note.text.startswith(f"Вам назначен разговор #{conversation}\n")


class TestPolling:
    async def test_a_polling_managers_bot_links_too(self, hub: BotHub) -> None:
        body = await hub.api_post(
            "/api/v1/channels/telegram",
            {
                "key": "staffpoll",
                "token": new_token(),
                "config": {
                    "api_url": hub.api.url,
                    "mode": "polling",
                    "poll_timeout_seconds": 1,
                    "audience": "managers",
                },
            },
            status=201,
        )
        anna, headers = await manager_with_headers(hub.context.db, name="Анна")
        response = await hub.client.post(LINK, headers=headers)
        assert response.status_code == 201, response.text
        assert response.json()["bot"] == "staffpoll"
        chat = Chat()
        hub.api.queue_update(chat.text(f"/start {response.json()['code']}"))

        stop = asyncio.Event()
        pollers = TelegramPollers(hub.context, PollingOptions(refresh_seconds=0.1))
        task = asyncio.create_task(pollers.run(stop))
        started = time.monotonic()
        try:
            while not hub.api.texts(chat.user_id):
                assert time.monotonic() - started < 10, "the poller took nothing in"
                await asyncio.sleep(0.05)
        finally:
            stop.set()
            await asyncio.wait_for(task, 15)

        assert hub.api.texts(chat.user_id) == [t("ru", "manager_linked", name="Анна")]
        async with hub.context.db.read() as session:
            row = await session.get(Manager, anna.id)
            assert row is not None and row.telegram_channel_id == int(body["id"])
        assert await hub.messages() == []  # nothing was taken in as a client's message
