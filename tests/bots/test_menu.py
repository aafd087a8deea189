"""The menu: the client's language from Telegram, switchable, kept on the contact."""

from __future__ import annotations

from sqlalchemy import select

from bots.texts import t
from storage.models import Contact
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
