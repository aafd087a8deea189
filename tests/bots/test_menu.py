"""The menu: the client's language from Telegram, switchable, kept on the contact."""

from __future__ import annotations

from sqlalchemy import select

from bots.texts import t
from storage.models import Contact
from tests.bots.script import filed_and_resolved
from tests.channels.telegram.flow import BotHub, Chat


async def test_language_is_switched_and_remembered(hub: BotHub) -> None:
    chat = Chat(language="de")  # neither Russian nor English: the channel's language
    await hub.send(chat.text("/start"))
    assert hub.api.texts(chat.user_id) == [t("ru", "welcome", name="Иван")]
    menu = hub.api.sent("sendMessage", chat.user_id)[-1]
    assert menu.buttons() == ["menu:ask", "menu:claim", "menu:claims", "menu:lang"]

    await hub.send(chat.press("menu:lang"))
    assert hub.api.sent("answerCallbackQuery")[-1].params["text"] == t("en", "language_set")
    assert hub.api.texts(chat.user_id)[-1] == t("en", "welcome", name="Иван")
    await hub.send(chat.press("menu:ask"))
    assert hub.api.texts(chat.user_id)[-1] == t("en", "ask_prompt")
    await hub.send(chat.press("menu:claims"))
    assert hub.api.texts(chat.user_id)[-1] == t("en", "my_claims_empty")

    async with hub.context.db.read() as session:
        [contact] = (await session.scalars(select(Contact))).all()
    assert contact.language == "en"
    assert contact.attributes["telegram_username"] == f"client{chat.user_id}"


async def test_help_explains_the_bot(hub: BotHub) -> None:
    chat = Chat(language="ru")
    await hub.send(chat.text("/help"))
    [help_call] = hub.api.sent("sendMessage", chat.user_id)
    assert help_call.text == t("ru", "help")
    assert help_call.buttons() == ["menu:ask", "menu:claim", "menu:claims", "menu:lang"]
    assert await hub.messages() == []  # a command to the bot, not a message to managers
    # Inside a dialogue too, and the dialogue goes on.
    await hub.send(chat.press("menu:claim"))
    await hub.send(chat.text("/help"))
    assert hub.api.texts(chat.user_id)[-1] == t("ru", "help")
    await hub.send(chat.press("claim:reason:quality"))
    assert hub.api.texts(chat.user_id)[-1] == t("ru", "claim_order")


async def test_every_screen_leads_back(hub: BotHub) -> None:
    chat = Chat(language="en")
    claim_id = await filed_and_resolved(hub, chat, "en")
    await hub.send(chat.press("menu:claims"))
    assert "menu:start" in hub.api.sent("sendMessage", chat.user_id)[-1].buttons()
    await hub.send(chat.press(f"claims:show:{claim_id}"))
    history = hub.api.sent("sendMessage", chat.user_id)[-1]
    assert history.text.startswith("Claim ")
    assert history.buttons() == ["menu:claims", "menu:start"]
    await hub.send(chat.press("menu:start"))
    assert hub.api.texts(chat.user_id)[-1] == t("en", "welcome", name="Иван")
    await hub.send(chat.press(f"rate:{claim_id}:4"))
    await hub.send(chat.press("rate:skip"))
    assert "menu:start" in hub.api.sent("sendMessage", chat.user_id)[-1].buttons()
