"""Rating a resolved claim: rated once, the comment is the next message only (for a
short while), and an update Telegram delivers again is handled once whatever route
takes it."""

from __future__ import annotations

import asyncio

from bots.texts import t
from channels.telegram.polling import BotPoller, PollingOptions
from storage.models import Claim, Lead, MessageDirection
from tests.bots.script import filed_and_resolved
from tests.channels.telegram.flow import BotHub, Chat


async def claim_of(hub: BotHub, claim_id: int) -> Claim:
    async with hub.context.db.read() as session:
        claim = await session.get(Claim, claim_id)
        assert claim is not None
        return claim


async def inbound_texts(hub: BotHub) -> list[str]:
    return [m.text for m in await hub.messages() if m.direction == MessageDirection.INBOUND]


async def test_a_redelivered_rating_comment_is_handled_once(hub: BotHub) -> None:
    chat = Chat(language="ru")
    claim_id = await filed_and_resolved(hub, chat, "ru")
    await hub.send(chat.press(f"rate:{claim_id}:5"))
    comment = chat.text("Спасибо, всё быстро")
    await hub.send(comment)
    claim = await claim_of(hub, claim_id)
    assert (claim.rating, claim.rating_comment) == (5, "Спасибо, всё быстро")
    await hub.api_post(f"/api/v1/claims/{claim_id}/status", {"status": "closed"})
    await hub.drain()
    answers, inbound, leads = len(hub.api.texts()), await inbound_texts(hub), await hub.count(Lead)

    # Telegram did not get the 200 in time and delivers the comment again.
    await hub.send(comment)

    assert await inbound_texts(hub) == inbound
    assert await hub.count(Lead) == leads
    assert len(hub.api.texts()) == answers


async def test_a_redelivered_update_taken_in_is_not_handled_by_a_dialogue(hub: BotHub) -> None:
    chat = Chat(language="en")
    question = chat.text("Do you deliver on Sundays?")
    await hub.send(question)
    await hub.send(chat.press("menu:claim"))
    answers = len(hub.api.texts())

    await hub.send(question)  # now in the claim dialogue: it must not be read as a reason

    assert len(hub.api.texts()) == answers
    assert await inbound_texts(hub) == ["Do you deliver on Sundays?"]


async def test_polling_takes_an_update_handled_by_the_webhook_once(hub: BotHub) -> None:
    polled = BotHub(hub.app, hub.client, hub.api)
    polled.key = "pollbot"
    await polled.setup(mode="polling", poll_timeout_seconds=0)
    chat = Chat(language="ru")
    claim_id = await filed_and_resolved(polled, chat, "ru")
    await polled.send(chat.press(f"rate:{claim_id}:4"))
    comment = chat.text("Хорошо")
    await polled.send(comment)
    answers, inbound = len(hub.api.texts()), await inbound_texts(hub)

    # The channel moved to long polling; Telegram hands out the unconfirmed update again.
    hub.api.queue_update(comment)
    await BotPoller(hub.context, polled.channel_id, PollingOptions()).poll_once()

    assert hub.api.sent("getUpdates")
    assert await inbound_texts(hub) == inbound
    assert len(hub.api.texts()) == answers
    assert (await claim_of(hub, claim_id)).rating_comment == "Хорошо"


async def test_only_the_next_message_can_be_the_comment(hub: BotHub) -> None:
    chat = Chat(language="ru")
    claim_id = await filed_and_resolved(hub, chat, "ru")
    await hub.send(chat.press(f"rate:{claim_id}:3"))
    prompt = hub.api.sent("sendMessage", chat.user_id)[-1]
    assert prompt.text == t("ru", "rating_thanks", rating=3)
    assert prompt.buttons() == ["rate:skip"]
    hub.api.add_file("receipt", b"\xff\xd8\xff\xe0receipt")
    await hub.send(chat.photo("receipt", 12, caption="Чек"))  # not a comment
    await hub.send(chat.text("Когда придут деньги?"))

    assert (await claim_of(hub, claim_id)).rating_comment is None
    assert (await inbound_texts(hub))[-2:] == ["Чек", "Когда придут деньги?"]


async def test_a_message_after_the_comment_window_goes_to_the_conversation(
    hub: BotHub,
) -> None:
    quick = BotHub(hub.app, hub.client, hub.api)
    quick.key = "quickbot"
    await quick.setup(rating_comment_seconds=1)
    chat = Chat(language="en")
    claim_id = await filed_and_resolved(quick, chat, "en")
    await quick.send(chat.press(f"rate:{claim_id}:2"))
    await asyncio.sleep(1.2)
    await quick.send(chat.text("When will the money come?"))

    claim = await claim_of(hub, claim_id)
    assert (claim.rating, claim.rating_comment) == (2, None)
    assert (await inbound_texts(hub))[-1] == "When will the money come?"


async def test_a_claim_is_rated_once(hub: BotHub) -> None:
    chat = Chat(language="en")
    claim_id = await filed_and_resolved(hub, chat, "en")
    await hub.send(chat.press(f"rate:{claim_id}:5", message_id=77))
    await hub.send(chat.press(f"rate:{claim_id}:skip"))
    # The notice's buttons are taken away once it is rated.
    [removed] = hub.api.sent("editMessageReplyMarkup", chat.user_id)
    assert int(removed.params["message_id"]) == 77 and removed.markup == {}
    answers = len(hub.api.texts(chat.user_id))

    # The same buttons, still shown on another device, pressed later.
    await hub.send(chat.press(f"rate:{claim_id}:1", message_id=77))

    assert (await claim_of(hub, claim_id)).rating == 5
    assert hub.api.sent("answerCallbackQuery")[-1].params["text"] == t(
        "en", "rating_already", rating=5
    )
    assert len(hub.api.texts(chat.user_id)) == answers
