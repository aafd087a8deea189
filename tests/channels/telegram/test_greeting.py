"""A client who writes to the bot first hears a greeting: once, in the client's language,
and out of working hours with the time the answer will come."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from channels.greeting import greet
from hub.worker import DELIVERABLE_KINDS
from routing.calendar import WEEKDAYS
from storage.models import Message, MessageDirection, MessageStatus
from storage.types import utcnow
from tests.bots.script import run
from tests.channels.telegram.flow import BotHub, Chat
from tests.telegram_api import BotApiStandIn


async def _hub(app: Any, client: httpx.AsyncClient, api: BotApiStandIn, **greeting: Any) -> BotHub:
    hub = BotHub(app, client, api)
    await hub.setup(greeting={"enabled": True, **greeting})
    return hub


async def test_the_first_message_is_greeted_once_however_often_it_comes(
    app: Any, client: httpx.AsyncClient, api: BotApiStandIn
) -> None:
    hub = await _hub(app, client, api)
    chat = Chat(language="ru")
    first = chat.text("Здравствуйте, есть ли доставка в Казань?")
    await hub.send(first)
    await hub.send(first)  # Telegram delivers the update again
    await hub.drain()
    await hub.send(chat.text("И сколько она стоит?"))  # the client writes again
    await hub.drain()
    await hub.drain()

    greetings = [t for t in api.texts(chat.user_id) if "Мы получили ваше сообщение" in t]
    assert greetings == ["Здравствуйте! Мы получили ваше сообщение, менеджер скоро ответит вам."]
    [stored] = await hub.messages(Message.direction == MessageDirection.OUTBOUND)
    assert stored.status == MessageStatus.SENT
    assert stored.meta["kind"] == "greeting"
    [conversation_id] = {m.conversation_id for m in await hub.messages()}
    assert stored.conversation_id == conversation_id


async def test_out_of_hours_the_greeting_says_when_the_answer_comes(
    app: Any, client: httpx.AsyncClient, api: BotApiStandIn
) -> None:
    # Working hours only tomorrow (UTC), so now is out of hours whatever the clock says.
    tomorrow = WEEKDAYS[(datetime.now(UTC) + timedelta(days=1)).weekday()]
    hours = {"timezone": "UTC", "week": {tomorrow: [["09:00", "18:00"]]}}
    hub = await _hub(app, client, api, working_hours=hours)
    chat = Chat(language="en", first_name="John")
    await hub.send(chat.text("Hi, do you ship to Berlin?"))
    await hub.drain()

    assert api.texts(chat.user_id) == [
        "Hello! We have received your message. We are closed now: "
        "a manager will answer you tomorrow from 09:00."
    ]


async def test_no_greeting_when_it_is_off_or_the_sender_is_a_bot(
    app: Any, client: httpx.AsyncClient, api: BotApiStandIn
) -> None:
    hub = BotHub(app, client, api)
    await hub.setup()  # greeting off by default
    chat = Chat()
    await hub.send(chat.text("Добрый день"))
    robot = Chat()
    robot.user["is_bot"] = True
    await hub.send(robot.text("I am a bot"))
    await hub.drain()

    assert api.texts(chat.user_id) == []
    assert api.texts(robot.user_id) == []
    assert await hub.messages(Message.direction == MessageDirection.OUTBOUND) == []


async def test_a_retried_event_queues_no_second_greeting(
    app: Any, client: httpx.AsyncClient, api: BotApiStandIn
) -> None:
    hub = await _hub(app, client, api)
    chat = Chat()
    await hub.send(chat.text("Добрый вечер"))
    await hub.drain()
    [opened] = await hub.events("conversation.opened")
    # The outbox runs an event again after a failure elsewhere in its transaction.
    async with hub.context.db.transaction() as session:
        again = await greet(
            session, int(opened.payload["conversation_id"]), DELIVERABLE_KINDS, utcnow()
        )
    await hub.drain()

    assert again is None
    assert len(await hub.messages(Message.direction == MessageDirection.OUTBOUND)) == 1
    assert len(api.texts(chat.user_id)) == 1


async def test_a_greeting_with_unknown_placeholders_or_no_working_time_is_refused(
    app: Any, client: httpx.AsyncClient, api: BotApiStandIn
) -> None:
    hub = BotHub(app, client, api)
    await hub.setup()
    for greeting in (
        {"enabled": True, "ru": {"in_hours": "Здравствуйте, {name}!"}},
        {"enabled": True, "working_hours": {"timezone": "Europe/Moscow", "week": {}}},
    ):
        response = await client.post(
            "/api/v1/channels/telegram",
            json={
                "key": "otherbot",
                "title": "Другой",
                "token": hub.token.replace(":", "1:", 1),
                "config": {"api_url": api.url, "greeting": greeting},
            },
            headers=hub.headers,
        )
        assert response.status_code == 422, response.text
        body = response.json()
        assert body["error"] == "invalid_input"
        assert [issue["loc"][:3] for issue in body["detail"]] == [["body", "config", "greeting"]]


async def test_a_claim_filed_in_the_bot_gets_its_own_answer_not_a_greeting(
    app: Any, client: httpx.AsyncClient, api: BotApiStandIn
) -> None:
    hub = await _hub(app, client, api)
    chat = Chat()
    await run(hub, chat, "ru")
    await hub.drain()

    [claim] = await hub.claims()
    outbound = await hub.messages(Message.direction == MessageDirection.OUTBOUND)
    assert [m for m in outbound if m.meta.get("kind") == "greeting"] == []
    assert not [t for t in api.texts(chat.user_id) if "Мы получили ваше сообщение" in t]
    assert claim.number in api.texts(chat.user_id)[-1]


async def test_a_greeting_turned_on_later_greets_the_next_new_chat(
    app: Any, client: httpx.AsyncClient, api: BotApiStandIn
) -> None:
    hub = BotHub(app, client, api)
    await hub.setup()  # greeting off
    before = Chat()
    await hub.send(before.text("Добрый день"))
    await hub.drain()
    path = f"/api/v1/channels/{hub.key}"

    refused = await client.patch(
        path, json={"config": {"greeting": {"enabled": "maybe"}}}, headers=hub.headers
    )
    changed = await client.patch(
        path,
        json={"title": "Магазин", "config": {"greeting": {"enabled": True}}},
        headers=hub.headers,
    )
    after = Chat()
    await hub.send(after.text("Добрый вечер"))
    await hub.drain()

    assert refused.status_code == 422, refused.text
    assert refused.json()["detail"][0]["loc"][:3] == ["body", "config", "greeting"]
    assert changed.status_code == 200, changed.text
    assert changed.json()["title"] == "Магазин"
    assert changed.json()["config"]["greeting"]["enabled"] is True
    assert changed.json()["config"]["api_url"] == api.url  # the other settings are kept
    assert api.texts(before.user_id) == []
    assert api.texts(after.user_id) == [
        "Здравствуйте! Мы получили ваше сообщение, менеджер скоро ответит вам."
    ]
